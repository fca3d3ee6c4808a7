"""What the store holds, as dataclasses, and the rules a record must follow to be stored.

The store validates on the way in, so a bad name or an unknown status is refused with a message
naming the field, instead of becoming a row that recovery later trips over.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from llmos.daemon.errors import InvalidArgument

__all__ = [
    "RESTART_POLICIES",
    "STATUSES",
    "ContainerRecord",
    "EventRecord",
    "VolumeRecord",
    "check_container",
    "check_volume",
    "new_id",
]

STATUSES: tuple[str, ...] = (
    "creating", "created", "running", "paused", "restarting", "removing", "exited", "dead",
)
RESTART_POLICIES: tuple[str, ...] = ("no", "on-failure", "always", "unless-stopped")

_ID = re.compile(r"[0-9a-f]{64}")
# Docker's rule for container and volume names (at least two characters).
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


def new_id() -> str:
    """A fresh container id: 64 hex digits whose 12-digit short form is not all digits, so
    it is never mistaken for a number (Docker's rule)."""
    while True:
        cid = secrets.token_hex(32)
        if not cid[:12].isdigit():
            return cid


@dataclass
class ContainerRecord:
    """One container's row; `volumes` are the named volumes it mounts."""

    id: str
    name: str
    image: str
    created: float = field(default_factory=time.time)
    status: str = "created"
    config: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    restart_policy: str = "no"
    restart_max: int = 0
    restart_count: int = 0
    exit_code: int | None = None
    started: float | None = None
    finished: float | None = None
    volumes: tuple[str, ...] = ()


@dataclass
class VolumeRecord:
    """A named volume; `mountpoint` is its directory under the daemon's root."""

    name: str
    mountpoint: str
    driver: str = "local"
    created: float = field(default_factory=time.time)
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EventRecord:
    """One event, in Docker's terms: `type` (container, volume, ...), `action` (create, die,
    ...), `actor` (an id or name) and string `attributes` (name, image, exitCode, ...)."""

    seq: int
    time: float
    type: str
    action: str
    actor: str
    attributes: dict[str, str]


def check_container(rec: ContainerRecord) -> None:
    """Raise InvalidArgument naming the first field of `rec` that cannot be stored."""
    if not _ID.fullmatch(rec.id):
        raise InvalidArgument(f"container id {rec.id!r}: must be 64 lowercase hex digits")
    if not _NAME.fullmatch(rec.name):
        raise InvalidArgument(
            f"container name {rec.name!r}: must match [a-zA-Z0-9][a-zA-Z0-9_.-]+"
        )
    if not rec.image:
        raise InvalidArgument(f"container {rec.name}: image must not be empty")
    if rec.status not in STATUSES:
        raise InvalidArgument(
            f"container {rec.name}: status {rec.status!r} is not one of {', '.join(STATUSES)}"
        )
    if rec.restart_policy not in RESTART_POLICIES:
        raise InvalidArgument(
            f"container {rec.name}: restart policy {rec.restart_policy!r} is not one of "
            f"{', '.join(RESTART_POLICIES)}"
        )
    if rec.restart_max < 0 or rec.restart_count < 0:
        raise InvalidArgument(f"container {rec.name}: restart counts must not be negative")
    for v in rec.volumes:
        if not isinstance(v, str):
            raise InvalidArgument(f"container {rec.name}: volume names must be strings")


def check_volume(rec: VolumeRecord) -> None:
    """Raise InvalidArgument naming the first field of `rec` that cannot be stored."""
    if not _NAME.fullmatch(rec.name):
        raise InvalidArgument(
            f"volume name {rec.name!r}: must match [a-zA-Z0-9][a-zA-Z0-9_.-]+"
        )
    if not rec.mountpoint:
        raise InvalidArgument(f"volume {rec.name}: mountpoint must not be empty")
