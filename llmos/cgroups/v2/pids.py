"""v2 pids: pids.max and pids.current."""

from __future__ import annotations

from ..fs import CgroupFs, read_int
from ..resources import Resources, Stats
from ..v1.pids import pids_max_value
from .base import V2Controller

__all__ = ["Pids"]


class Pids(V2Controller):
    """The pids controller."""

    name = "pids"
    field = "linux.resources.pids"

    def needed(self, r: Resources) -> bool:
        return r.pids_limit is not None

    def apply(self, fs: CgroupFs, path: str, r: Resources) -> None:
        if r.pids_limit is not None:
            fs.write(self.file(path, "pids.max"), pids_max_value(r.pids_limit))

    def stats(self, fs: CgroupFs, path: str, out: Stats) -> None:
        current = self.file(path, "pids.current")
        if fs.exists(current):
            out.pids_current = read_int(fs, current) or 0
            out.pids_limit = read_int(fs, self.file(path, "pids.max"))
        else:
            # Without the controller, count the threads the kernel lists (what pids counts).
            out.pids_current = len(fs.read(self.file(path, "cgroup.threads")).split())
