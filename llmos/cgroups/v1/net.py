"""v1 net_cls and net_prio: a class id for tc/iptables and per-interface priorities."""

from __future__ import annotations

from ..fs import CgroupFs
from ..resources import Resources
from .base import V1Controller

__all__ = ["NetCls", "NetPrio"]


class NetCls(V1Controller):
    """net_cls.classid."""

    name = "net_cls"
    field = "linux.resources.network.classID"

    def needed(self, r: Resources) -> bool:
        return r.network_class_id is not None

    def apply(self, fs: CgroupFs, path: str, r: Resources) -> None:
        if r.network_class_id is not None:
            fs.write(self.file(path, "net_cls.classid"), str(r.network_class_id))


class NetPrio(V1Controller):
    """net_prio.ifpriomap, one write per interface."""

    name = "net_prio"
    field = "linux.resources.network.priorities"

    def needed(self, r: Resources) -> bool:
        return bool(r.network_priorities)

    def apply(self, fs: CgroupFs, path: str, r: Resources) -> None:
        for prio in r.network_priorities:
            fs.write(self.file(path, "net_prio.ifpriomap"), f"{prio.name} {prio.priority}")
