"""Container state on disk, and the status re-derived from the kernel rather than trusted.

A state file is written to a temporary name and renamed, so a reader never sees half of one.
It records the pid together with the process start time (field 22 of /proc/<pid>/stat): a pid
that the kernel has since reused for another process is then never mistaken for the container.
"""

from __future__ import annotations

import enum
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos.errors import NotFound, RuntimeError_

STATE_FILE = "state.json"
CONFIG_FILE = "config.json"
EXIT_FILE = "exit"
FIFO_FILE = "exec.fifo"


class Status(enum.Enum):
    """OCI runtime-spec statuses, plus `paused` as runc reports it."""

    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"

    def can_start(self) -> bool:
        return self is Status.CREATED

    def can_kill(self) -> bool:
        return self in (Status.CREATED, Status.RUNNING, Status.PAUSED)

    def can_delete(self) -> bool:
        return self in (Status.STOPPED, Status.CREATING)

    def can_exec(self) -> bool:
        return self is Status.RUNNING

    def can_pause(self) -> bool:
        return self is Status.RUNNING

    def can_resume(self) -> bool:
        return self is Status.PAUSED


@dataclass
class ExitStatus:
    """What the shim recorded when the container's first process ended."""

    code: int
    signal: int
    finished_ns: int


@dataclass
class State:
    """What llmos remembers about one container between commands."""

    id: str
    bundle: str
    pid: int = 0
    pid_start: int = 0
    shim_pid: int = 0
    created_ns: int = 0
    started: bool = False
    cgroup: str = ""
    cgroup_root: str = "/sys/fs/cgroup"
    log_file: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    oom_killed: bool = False
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        # The config is immutable and large (a seccomp profile): it lives in its own file,
        # written once, so that each state change stays a small write.
        small = {k: v for k, v in self.__dict__.items() if k != "config"}
        return json.dumps(small, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> State:
        data = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def process_start_time(pid: int) -> int | None:
    """Start time in clock ticks since boot, or None if no such process exists."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(b")") + 2 :].split()
    return int(rest[19])


def process_state_letter(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(b")") + 2 :].split()[0].decode()


class StateDir:
    """The directory of one container under the runtime root."""

    def __init__(self, root: Path, container_id: str) -> None:
        self.root = root
        self.id = container_id
        self.path = root / container_id

    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    @property
    def exit_file(self) -> Path:
        return self.path / EXIT_FILE

    @property
    def fifo(self) -> Path:
        return self.path / FIFO_FILE

    def exists(self) -> bool:
        return self.state_file.exists()

    def load(self, *, config: bool = True) -> State:
        """The state; `config=False` skips parsing the (large) config for status queries."""
        try:
            state = State.from_json(self.state_file.read_text())
            if config:
                try:
                    state.config = json.loads((self.path / CONFIG_FILE).read_text())
                except FileNotFoundError:
                    pass
            return state
        except FileNotFoundError:
            raise NotFound(f"container {self.id!r} does not exist") from None
        except (ValueError, TypeError) as e:
            raise RuntimeError_(f"container {self.id!r}: corrupt state file: {e}") from None

    def save(self, state: State) -> None:
        tmp = self.path / f"{STATE_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "w") as f:
            f.write(state.to_json())
        os.replace(tmp, self.state_file)

    def save_config(self, config: dict[str, Any], text: str | None = None) -> None:
        """Keep the config beside the state; `text` is its JSON when the caller has it."""
        tmp = self.path / (CONFIG_FILE + ".tmp")
        with open(tmp, "w") as f:
            f.write(text if text is not None else json.dumps(config, separators=(",", ":")))
        os.replace(tmp, self.path / CONFIG_FILE)

    def exit_status(self) -> ExitStatus | None:
        try:
            code, sig, ns = self.exit_file.read_text().split()
        except (FileNotFoundError, ValueError):
            return None
        return ExitStatus(int(code), int(sig), int(ns))


def derive_status(sd: StateDir, state: State, frozen: bool | None = None) -> Status:
    """Ask the kernel, not the file: is the recorded process still the container's?"""
    if state.pid == 0:
        return Status.CREATING
    if sd.exit_file.exists():
        return Status.STOPPED
    start = process_start_time(state.pid)
    if start is None or start != state.pid_start:
        return Status.STOPPED
    if process_state_letter(state.pid) == "Z":
        return Status.STOPPED
    if not state.started and sd.fifo.exists():
        return Status.CREATED
    if frozen:
        return Status.PAUSED
    return Status.RUNNING
