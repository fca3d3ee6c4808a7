"""Execs with a terminal (`llmos exec -t`), after the request that started them.

Each runs under an llmos-shim of its own (Runtime.exec_monitored), which outlives the call
that made it and the daemon too, so an exec's state is a directory, as a container's is:

    CONTAINER_DIR/exec/ID/state.json   pids (with start times: a pid alone may be reused)
                          attach.sock  the terminal, served by the shim
                          start        the FIFO the process waits on until it is released
                          exit         "CODE SIGNAL NS", written by the shim

Inside the container's directory, so that removing the container removes its execs'
leftovers too; `end_all` first stops their processes and waits for their shims.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from llmos.errors import NotFound
from llmos.runtime.state import process_start_time, process_state_letter

_ID_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class ExecState:
    container: str
    pid: int
    pid_start: int
    shim_pid: int
    shim_start: int

    @classmethod
    def of(cls, container: str, pid: int, shim_pid: int) -> ExecState:
        return cls(container, pid, process_start_time(pid) or 0, shim_pid,
                   process_start_time(shim_pid) or 0)


def new_id() -> str:
    return secrets.token_hex(32)


def exec_dir(container_dir: Path, exec_id: str) -> Path:
    return container_dir / "exec" / exec_id


def save(d: Path, st: ExecState) -> None:
    tmp = d / "state.json.tmp"
    tmp.write_text(json.dumps(asdict(st)))
    os.replace(tmp, d / "state.json")


def load(d: Path) -> ExecState | None:
    try:
        return ExecState(**json.loads((d / "state.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def find(containers_root: Path, exec_id: str) -> tuple[Path, ExecState]:
    """An exec by id alone (Docker's exec ids are global), whichever container it is in."""
    if _ID_RE.match(exec_id):
        for d in containers_root.glob(f"*/exec/{exec_id}"):
            st = load(d)
            if st is not None:
                return d, st
    raise NotFound(f"no such exec: {exec_id}")


def _alive(pid: int, start: int) -> bool:
    """Still running: a zombie has finished (init reaps the shims, whose parent exits)."""
    return (pid > 0 and process_start_time(pid) == start
            and process_state_letter(pid) not in (None, "Z", "X"))


def exit_code(d: Path) -> int | None:
    try:
        return int((d / "exit").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


STDIO = ("stdin", "stdout", "stderr")


def stdio_fifos(d: Path) -> tuple[int, int, int]:
    """Stdio for an exec without a terminal: FIFOs in its directory (containerd's way), so
    the process gets real pipes whose other ends the client opens by path. Returns the
    process's ends.

    Opening a FIFO's write end needs a reader: stand-ins are opened for that and closed
    at once. The process is held until the client has its ends open, so nothing is written
    while no reader is there.
    """
    for name in STDIO:
        os.mkfifo(d / name, 0o600)
    fin = os.open(d / "stdin", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    os.set_blocking(fin, True)  # the process's stdin, which it reads as any pipe
    stand_ins = [os.open(d / name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                 for name in STDIO[1:]]
    fds = [fin]
    try:
        for name in STDIO[1:]:
            fds.append(os.open(d / name, os.O_WRONLY | os.O_CLOEXEC))
        return fds[0], fds[1], fds[2]
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    finally:
        for fd in stand_ins:
            os.close(fd)


def wait_socket(d: Path, st: ExecState, timeout: float = 10.0) -> None:
    """The shim serves the attach socket a moment after the process got its terminal: a
    client told the path must be able to connect (a bound socket not yet listening refuses).
    The probe sends no request, which the shim just closes."""
    deadline = time.monotonic() + timeout
    dfd = os.open(d, os.O_PATH | os.O_DIRECTORY)  # sun_path is short; d may be long
    try:
        while _alive(st.shim_pid, st.shim_start) and time.monotonic() < deadline:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                try:
                    s.connect(f"/proc/self/fd/{dfd}/attach.sock")
                    return
                except (FileNotFoundError, ConnectionRefusedError):
                    pass
            time.sleep(0.002)
    finally:
        os.close(dfd)


def wait(d: Path, st: ExecState, timeout: float | None = None) -> int:
    """The exec's exit code, once its shim has recorded it and is gone; then its files go.

    A shim that vanished without a record (killed) gives 255, as a container's would.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    fds = []
    if _alive(st.shim_pid, st.shim_start):
        try:
            fds.append(os.pidfd_open(st.shim_pid))
        except ProcessLookupError:
            pass
    try:
        while _alive(st.shim_pid, st.shim_start):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if left == 0.0:
                raise TimeoutError(f"exec {d.name} is still running")
            select.select(fds, [], [], min(left, 0.5) if left is not None else 0.5)
    finally:
        for fd in fds:
            os.close(fd)
    code = exit_code(d)
    shutil.rmtree(d, ignore_errors=True)
    return 255 if code is None else code


def abandon(d: Path, st: ExecState | None, shim_pid: int = 0) -> None:
    """Stop an exec nobody will wait for, wait for its shim, remove its files."""
    if st is not None and process_start_time(st.pid) == st.pid_start:
        try:
            os.kill(st.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shim, start = ((st.shim_pid, st.shim_start) if st is not None
                   else (shim_pid, process_start_time(shim_pid) or 0))
    deadline = time.monotonic() + 5
    while _alive(shim, start) and time.monotonic() < deadline:
        time.sleep(0.005)
    shutil.rmtree(d, ignore_errors=True)


def end_all(container_dir: Path) -> None:
    """Every exec of a container that is being removed: no shim may outlive it."""
    root = container_dir / "exec"
    try:
        dirs = list(root.iterdir())
    except FileNotFoundError:
        return
    for d in dirs:
        abandon(d, load(d))
    shutil.rmtree(root, ignore_errors=True)
