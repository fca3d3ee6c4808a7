"""v2 freezer: cgroup.freeze asks, cgroup.events ``frozen 1`` confirms (kernel 5.2+)."""

from __future__ import annotations

import os

from ..errors import CgroupBusy, UnsupportedResource
from ..fs import CgroupFs, read_keyed
from ..manager import wait_until

__all__ = ["can_freeze", "freeze", "is_frozen", "thaw"]


def can_freeze(fs: CgroupFs, path: str) -> bool:
    """Whether this kernel has the v2 freezer."""
    return fs.exists(os.path.join(path, "cgroup.freeze"))


def is_frozen(fs: CgroupFs, path: str) -> bool:
    """True once every task has stopped (a requested but incomplete freeze is not frozen)."""
    return read_keyed(fs, os.path.join(path, "cgroup.events")).get("frozen", 0) == 1


def _set(fs: CgroupFs, path: str, frozen: bool, timeout: float) -> None:
    target = os.path.join(path, "cgroup.freeze")
    if not fs.exists(target):
        raise UnsupportedResource(f"{target} does not exist (the v2 freezer needs Linux 5.2+)")
    fs.write(target, "1" if frozen else "0")
    if not wait_until(lambda: is_frozen(fs, path) == frozen, timeout):
        if frozen:
            fs.write(target, "0")  # do not leave it half frozen
        word = "frozen" if frozen else "thawed"
        raise CgroupBusy(f"{path}: not {word} after {timeout:.1f}s", path=target)


def freeze(fs: CgroupFs, path: str, timeout: float) -> None:
    """Freeze and wait for cgroup.events to confirm."""
    _set(fs, path, True, timeout)


def thaw(fs: CgroupFs, path: str, timeout: float) -> None:
    """Thaw and wait for cgroup.events to confirm."""
    _set(fs, path, False, timeout)
