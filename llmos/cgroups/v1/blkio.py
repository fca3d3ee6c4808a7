"""v1 blkio: proportional weight (CFQ's blkio.* or BFQ's blkio.bfq.*) and throttling."""

from __future__ import annotations

from ..errors import UnsupportedResource
from ..fs import CgroupFs
from ..resources import Resources
from .base import V1Controller

__all__ = ["Blkio"]


class Blkio(V1Controller):
    """blkio.weight / blkio.bfq.weight, weight_device, leaf weight, throttle.*_device."""

    name = "blkio"
    field = "linux.resources.blockIO"

    def needed(self, r: Resources) -> bool:
        return r.blkio_asked()

    def _pick(self, fs: CgroupFs, path: str, knob: str, field: str) -> str:
        """Weights live in blkio.<knob> (CFQ, old kernels) or blkio.bfq.<knob> (BFQ)."""
        for name in (f"blkio.{knob}", f"blkio.bfq.{knob}"):
            candidate = self.file(path, name)
            if fs.exists(candidate):
                return candidate
        raise UnsupportedResource(
            f"{field}: neither blkio.{knob} nor blkio.bfq.{knob} exists in {path} "
            "(no proportional-weight IO scheduler is active)"
        )

    def apply(self, fs: CgroupFs, path: str, r: Resources) -> None:
        field = self.field
        if r.blkio_weight:
            fs.write(self._pick(fs, path, "weight", f"{field}.weight"), str(r.blkio_weight))
        if r.blkio_leaf_weight:
            leaf = self._pick(fs, path, "leaf_weight", f"{field}.leafWeight")
            fs.write(leaf, str(r.blkio_leaf_weight))
        for i, wdev in enumerate(r.blkio_weight_devices):
            where = f"{field}.weightDevice[{i}]"
            if wdev.weight is not None:
                target = self._pick(fs, path, "weight_device", f"{where}.weight")
                fs.write(target, f"{wdev.major}:{wdev.minor} {wdev.weight}")
            if wdev.leaf_weight is not None:
                target = self._pick(fs, path, "leaf_weight_device", f"{where}.leafWeight")
                fs.write(target, f"{wdev.major}:{wdev.minor} {wdev.leaf_weight}")
        for suffix, _, devices in r.throttles():
            for dev in devices:
                target = self.file(path, f"blkio.throttle.{suffix}")
                fs.write(target, f"{dev.major}:{dev.minor} {dev.rate}")
