"""v1 rdma: rdma.max, one line per device (same format as cgroup v2)."""

from __future__ import annotations

from ..fs import CgroupFs
from ..resources import Resources
from .base import V1Controller

__all__ = ["Rdma"]


class Rdma(V1Controller):
    """rdma.max."""

    name = "rdma"
    field = "linux.resources.rdma"

    def needed(self, r: Resources) -> bool:
        return bool(r.rdma)

    def apply(self, fs: CgroupFs, path: str, r: Resources) -> None:
        for device, limit in r.rdma.items():
            fs.write(self.file(path, "rdma.max"), limit.line(device))
