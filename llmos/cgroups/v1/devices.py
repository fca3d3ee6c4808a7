"""v1 devices: the OCI rule list written in order to devices.allow / devices.deny."""

from __future__ import annotations

from ..fs import CgroupFs
from ..resources import Resources
from .base import V1Controller

__all__ = ["Devices"]


class Devices(V1Controller):
    """devices.allow, devices.deny.

    Rules are written in spec order, as the spec defines them (a leading ``deny a`` then the
    allowed devices is the usual shape). They are applied before the container's first
    process runs, so the transient deny-all is never seen by it.
    """

    name = "devices"
    field = "linux.resources.devices"

    def needed(self, r: Resources) -> bool:
        return bool(r.devices)

    def apply(self, fs: CgroupFs, path: str, r: Resources) -> None:
        for rule in r.devices:
            target = "devices.allow" if rule.allow else "devices.deny"
            fs.write(self.file(path, target), rule.v1_line())
