"""v2 cpuset: cpuset.cpus / cpuset.mems (v2 inherits effective masks, no copying needed)."""

from __future__ import annotations

from ..fs import CgroupFs
from ..resources import Resources
from .base import V2Controller

__all__ = ["Cpuset"]


class Cpuset(V2Controller):
    """The cpuset controller."""

    name = "cpuset"
    field = "linux.resources.cpu.cpus"

    def needed(self, r: Resources) -> bool:
        return r.cpuset_asked()

    def apply(self, fs: CgroupFs, path: str, r: Resources) -> None:
        if r.cpuset_cpus:
            fs.write(self.file(path, "cpuset.cpus"), r.cpuset_cpus)
        if r.cpuset_mems:
            fs.write(self.file(path, "cpuset.mems"), r.cpuset_mems)
