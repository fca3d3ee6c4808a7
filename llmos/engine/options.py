"""What a user asks for with `llmos run`/`create`, checked and normalised (pure code).

The same options arrive from the CLI, the Python client and the daemon's RPC, so parsing
and checking live here once, with messages that name the flag or field that was wrong.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from llmos.errors import ConfigError

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")


def parse_size(text: str | int, flag: str) -> int:
    """`64m`, `1g`, `512k`, `1048576` -> bytes, as Docker reads --memory."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(text.strip())
    if not m:
        raise ConfigError(f"{flag}: invalid size {text!r} (use e.g. 64m, 1g)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_cpus(text: str | float, flag: str = "--cpus") -> int:
    """`0.5` -> nano CPUs, as Docker stores NanoCpus."""
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{flag}: invalid number {text!r}") from None
    if value <= 0:
        raise ConfigError(f"{flag}: must be more than 0, got {text!r}")
    return int(value * 1e9)


@dataclass
class RestartPolicy:
    name: str = "no"
    maximum_retry_count: int = 0

    @classmethod
    def parse(cls, text: str) -> RestartPolicy:
        name, _, count = text.partition(":")
        if name not in RESTART_POLICIES:
            raise ConfigError(
                f"--restart: invalid policy {text!r} (use no, on-failure[:N], always, "
                "unless-stopped)"
            )
        if count and name != "on-failure":
            raise ConfigError(f"--restart: only on-failure takes a retry count, got {text!r}")
        try:
            n = int(count) if count else 0
        except ValueError:
            raise ConfigError(f"--restart: invalid retry count in {text!r}") from None
        if n < 0:
            raise ConfigError(f"--restart: retry count must be positive in {text!r}")
        return cls(name, n)


@dataclass
class Mount:
    """A bind mount (`-v /host:/ctr[:ro]`), named volume (`-v name:/ctr`) or tmpfs."""

    type: str  # bind | volume | tmpfs
    source: str
    target: str
    read_only: bool = False
    options: str = ""


def parse_volume(spec: str) -> Mount:
    parts = spec.split(":")
    if len(parts) < 2 or len(parts) > 3:
        raise ConfigError(f"-v: invalid volume spec {spec!r} (use SRC:DEST[:ro|rw])")
    src, dest = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if not dest.startswith("/"):
        raise ConfigError(f"-v: destination must be an absolute path in {spec!r}")
    ro = False
    for opt in mode.split(","):
        if opt == "ro":
            ro = True
        elif opt in ("rw", "z", "Z", ""):
            pass
        else:
            raise ConfigError(f"-v: unknown option {opt!r} in {spec!r}")
    if src.startswith("/"):
        return Mount("bind", src, dest, ro)
    if not _NAME.match(src):
        raise ConfigError(f"-v: invalid volume name {src!r} in {spec!r}")
    return Mount("volume", src, dest, ro)


def parse_tmpfs(spec: str) -> Mount:
    dest, _, opts = spec.partition(":")
    if not dest.startswith("/"):
        raise ConfigError(f"--tmpfs: destination must be an absolute path in {spec!r}")
    return Mount("tmpfs", "tmpfs", dest, False, opts)


def parse_env(items: list[str]) -> list[str]:
    out = []
    for item in items:
        if not item or item.startswith("="):
            raise ConfigError(f"-e: invalid environment variable {item!r}")
        out.append(item)
    return out


@dataclass
class RunOptions:
    """Docker's run/create options, in Docker's meanings."""

    image: str
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    name: str | None = None
    env: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    mounts: list[Mount] = field(default_factory=list)
    memory: int | None = None
    nano_cpus: int | None = None
    pids_limit: int | None = None
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    read_only: bool = False
    tty: bool = False
    tty_size: tuple[int, int] | None = None  # rows, cols of the caller's terminal
    interactive: bool = False
    auto_remove: bool = False
    network: str = "default"  # the daemon's default network (bridge, like Docker)
    network_aliases: list[str] = field(default_factory=list)  # --network-alias, user networks
    ports: list[str] = field(default_factory=list)
    publish_all: bool = False  # -P: every port the image EXPOSEs, on a random host port
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str | None = None
    stop_timeout: int | None = None

    def __post_init__(self) -> None:
        if self.name is not None and not _NAME.match(self.name):
            raise ConfigError(
                f"--name: invalid container name {self.name!r}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*"
            )
        if self.name:
            self.name = self.name.lstrip("/")
        if self.workdir is not None and not self.workdir.startswith("/"):
            raise ConfigError(f"--workdir: must be an absolute path, got {self.workdir!r}")
        if self.pids_limit is not None and self.pids_limit == 0:
            raise ConfigError("--pids-limit: 0 is not a limit (use -1 for unlimited)")
        if self.memory is not None and 0 < self.memory < 6 << 20:
            raise ConfigError("--memory: minimum memory limit is 6m")
        for alias in self.network_aliases:
            if not _NAME.match(alias):
                raise ConfigError(f"--network-alias: invalid name {alias!r}: use "
                                  "[a-zA-Z0-9][a-zA-Z0-9_.-]*")
        if self.auto_remove and self.restart.name != "no":
            raise ConfigError("--rm and --restart cannot be used together")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunOptions:
        """From the RPC/JSON form; unknown keys are an error naming them."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown run options: {', '.join(unknown)}")
        d = dict(data)
        if "image" not in d:
            raise ConfigError("run options: image is required")
        if isinstance(d.get("restart"), dict):
            d["restart"] = RestartPolicy(**d["restart"])
        elif isinstance(d.get("restart"), str):
            d["restart"] = RestartPolicy.parse(d["restart"])
        d["mounts"] = [m if isinstance(m, Mount) else Mount(**m) for m in d.get("mounts", [])]
        if d.get("tty_size") is not None:
            d["tty_size"] = tuple(d["tty_size"])
        try:
            return cls(**d)
        except TypeError as e:
            raise ConfigError(f"run options: {e}") from None
