"""Where the cgroup hierarchies are: parsed from /proc/self/mountinfo, relative to a root.

Only mounts at or below the given root count, so tests (and hosts that mount cgroups elsewhere)
point the factory at another directory. When mountinfo has nothing under the root (a plain
temporary directory in unit tests), the layout is read from the directory itself: a
``cgroup.controllers`` file marks cgroup2, other subdirectories holding ``cgroup.procs`` are v1
hierarchies named after their controllers (``cpu,cpuacct``).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from .errors import CgroupError

__all__ = ["V1_CONTROLLERS", "Layout", "Mode", "detect_mode", "discover", "parse_mountinfo"]

Mode = Literal["v2", "hybrid", "v1"]

# The v1 controllers llmos creates cgroups in; named hierarchies (name=systemd) are not ours.
V1_CONTROLLERS = frozenset(
    {
        "blkio",
        "cpu",
        "cpuacct",
        "cpuset",
        "devices",
        "freezer",
        "hugetlb",
        "memory",
        "net_cls",
        "net_prio",
        "perf_event",
        "pids",
        "rdma",
        "misc",
    }
)


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo, reduced to what cgroup discovery needs."""

    mount_point: str
    fstype: str
    super_options: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    """The cgroup hierarchies under one root: v1 controller -> mount point, and cgroup2."""

    root: str
    v1: Mapping[str, str] = field(default_factory=dict)
    unified: str | None = None

    @property
    def mode(self) -> Mode:
        """v2 when the root itself is cgroup2 or nothing else exists; hybrid when both."""
        if self.unified is not None and (self.unified == self.root or not self.v1):
            return "v2"
        if self.unified is not None:
            return "hybrid"
        return "v1"


_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040)."""
    if "\\" not in text:
        return text
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), text)


def parse_mountinfo(text: str) -> list[Mount]:
    """Parse the cgroup mounts of mountinfo, dropping those hidden by a later mount.

    Hiding matters: running crun on this kind of host means a private tmpfs over the cgroup2
    mount, and the hidden cgroup2 must not be used. Only cgroup mounts are kept, so the
    shadowing check stays cheap on hosts with many mounts.
    """
    mounts: list[Mount] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split(" ", 5)
        rest = right.split(" ", 3)
        if len(fields) < 5 or len(rest) < 3:
            continue
        point = _unescape(fields[4])
        if mounts and point != "/":
            prefix = point.rstrip("/") + "/"
            mounts = [
                m for m in mounts if m.mount_point != point and not m.mount_point.startswith(prefix)
            ]
        if rest[0] in ("cgroup", "cgroup2"):
            mounts.append(Mount(point, rest[0], tuple(rest[2].strip().split(","))))
    return mounts


def _under(path: str, root: str) -> bool:
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root if root == "/" else root + "/")


@functools.lru_cache(maxsize=16)
def _from_mountinfo(root: str, text: str) -> Layout | None:
    """Cached on the text: every container start reads mountinfo, few ever see it change."""
    v1: dict[str, str] = {}
    unified: str | None = None
    found = False
    for m in parse_mountinfo(text):
        if not _under(m.mount_point, root):
            continue
        if m.fstype == "cgroup2":
            found = True
            # Prefer the root itself, then the shallowest cgroup2 mount.
            if unified is None or len(m.mount_point) < len(unified):
                unified = m.mount_point
        elif m.fstype == "cgroup":
            found = True
            for ctrl in m.super_options:
                if ctrl in V1_CONTROLLERS:
                    v1.setdefault(ctrl, m.mount_point)
    return Layout(root, MappingProxyType(v1), unified) if found else None


def _from_directory(root: str) -> Layout:
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return Layout(root, {}, root)
    v1: dict[str, str] = {}
    unified: str | None = None
    try:
        names = sorted(os.listdir(root))
    except OSError as exc:
        raise CgroupError(f"list {root}: {exc.strerror}", path=root, errno=exc.errno) from exc
    for name in names:
        path = os.path.join(root, name)
        if os.path.islink(path) or not os.path.isdir(path):
            continue  # cpu -> cpu,cpuacct style aliases point at a real hierarchy
        if os.path.exists(os.path.join(path, "cgroup.controllers")):
            unified = unified or path
        elif os.path.exists(os.path.join(path, "cgroup.procs")):
            for ctrl in name.split(","):
                if ctrl in V1_CONTROLLERS:
                    v1.setdefault(ctrl, path)
    return Layout(root, v1, unified)


def discover(root: str = "/sys/fs/cgroup", mountinfo: str = "/proc/self/mountinfo") -> Layout:
    """Find the hierarchies under ``root`` (mountinfo first, then the directory itself)."""
    root = os.path.normpath(root)
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError:
        text = ""
    layout = _from_mountinfo(root, text)
    if layout is None:
        layout = _from_directory(root)
    if not layout.v1 and layout.unified is None:
        raise CgroupError(f"no cgroup hierarchy found under {root}", path=root)
    return layout


def detect_mode(root: str = "/sys/fs/cgroup") -> Mode:
    """Whether the host under ``root`` is pure cgroup v2, hybrid (v1 + cgroup2) or v1 only."""
    return discover(root).mode
