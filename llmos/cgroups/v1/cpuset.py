"""v1 cpuset: a new v1 cpuset cgroup starts with empty cpus/mems and refuses tasks, so every
level we create gets its parent's masks copied before anything is placed in it."""

from __future__ import annotations

import os

from ..fs import CgroupFs
from ..resources import Resources
from .base import V1Controller

__all__ = ["Cpuset"]

_MASKS = ("cpuset.cpus", "cpuset.mems")


class Cpuset(V1Controller):
    """cpuset.cpus and cpuset.mems."""

    name = "cpuset"
    field = "linux.resources.cpu.cpus"

    def needed(self, r: Resources) -> bool:
        return r.cpuset_asked()

    def inherit(self, fs: CgroupFs, path: str) -> None:
        """Copy the parent's masks into ``path`` when they are empty (clone_children off)."""
        parent = os.path.dirname(path)
        for mask in _MASKS:
            own = self.file(path, mask)
            if fs.read(own).strip():
                continue
            fs.write(own, fs.read(self.file(parent, mask)).strip())

    def apply(self, fs: CgroupFs, path: str, r: Resources) -> None:
        # Empty strings mean "unset" (as in runc): an empty mask would evict every task.
        if r.cpuset_cpus:
            fs.write(self.file(path, "cpuset.cpus"), r.cpuset_cpus)
        if r.cpuset_mems:
            fs.write(self.file(path, "cpuset.mems"), r.cpuset_mems)
