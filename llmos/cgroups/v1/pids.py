"""v1 pids: the process-count limit and its counter."""

from __future__ import annotations

from ..fs import CgroupFs, read_int
from ..resources import Resources, Stats
from .base import V1Controller

__all__ = ["Pids", "pids_max_value"]


def pids_max_value(limit: int) -> str:
    """OCI: a limit <= 0 is unlimited, which pids.max spells ``max`` in v1 and v2 alike."""
    return "max" if limit <= 0 else str(limit)


class Pids(V1Controller):
    """pids.max, pids.current."""

    name = "pids"
    field = "linux.resources.pids"

    def needed(self, r: Resources) -> bool:
        return r.pids_limit is not None

    def apply(self, fs: CgroupFs, path: str, r: Resources) -> None:
        if r.pids_limit is not None:
            fs.write(self.file(path, "pids.max"), pids_max_value(r.pids_limit))

    def stats(self, fs: CgroupFs, path: str, out: Stats) -> None:
        out.pids_current = read_int(fs, self.file(path, "pids.current")) or 0
        out.pids_limit = read_int(fs, self.file(path, "pids.max"))
