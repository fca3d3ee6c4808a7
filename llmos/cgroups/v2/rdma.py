"""v2 rdma: rdma.max, one line per device."""

from __future__ import annotations

from ..fs import CgroupFs
from ..resources import Resources
from .base import V2Controller

__all__ = ["Rdma"]


class Rdma(V2Controller):
    """The rdma controller."""

    name = "rdma"
    field = "linux.resources.rdma"

    def needed(self, r: Resources) -> bool:
        return bool(r.rdma)

    def apply(self, fs: CgroupFs, path: str, r: Resources) -> None:
        for device, limit in r.rdma.items():
            fs.write(self.file(path, "rdma.max"), limit.line(device))
