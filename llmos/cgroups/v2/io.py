"""v2 io: proportional weight (BFQ's io.bfq.weight, else io.weight converted) and io.max."""

from __future__ import annotations

from ..convert import convert_blkio_weight_to_io_weight
from ..errors import UnsupportedResource
from ..fs import CgroupFs
from ..resources import Resources
from .base import V2Controller

__all__ = ["Io"]

_FIELD = "linux.resources.blockIO"


class Io(V2Controller):
    """The io controller.

    io.bfq.weight takes the OCI range (1..1000) as is; io.weight (blk-iocost) has 1..10000 and
    gets crun's linear conversion. BFQ is tried first, as crun does.
    """

    name = "io"
    field = _FIELD

    def needed(self, r: Resources) -> bool:
        return r.blkio_asked()

    def _weight_file(self, fs: CgroupFs, path: str, field: str) -> tuple[str, bool]:
        """(file, converts) for weights: BFQ's raw range, else io.weight's converted one."""
        bfq = self.file(path, "io.bfq.weight")
        if fs.exists(bfq):
            return bfq, False
        plain = self.file(path, "io.weight")
        if fs.exists(plain):
            return plain, True
        raise UnsupportedResource(
            f"{field}: neither io.bfq.weight nor io.weight exists in {path} "
            "(no proportional-weight IO policy on this kernel)"
        )

    def apply(self, fs: CgroupFs, path: str, r: Resources) -> None:
        if r.blkio_leaf_weight:
            raise UnsupportedResource(f"{_FIELD}.leafWeight: cgroup v2 has no leaf weight")
        if r.blkio_weight:
            target, convert = self._weight_file(fs, path, f"{_FIELD}.weight")
            weight = r.blkio_weight
            fs.write(target, str(convert_blkio_weight_to_io_weight(weight) if convert else weight))
        for i, wdev in enumerate(r.blkio_weight_devices):
            where = f"{_FIELD}.weightDevice[{i}]"
            if wdev.leaf_weight is not None:
                raise UnsupportedResource(f"{where}.leafWeight: cgroup v2 has no leaf weight")
            if wdev.weight is not None:
                target, convert = self._weight_file(fs, path, f"{where}.weight")
                value = convert_blkio_weight_to_io_weight(wdev.weight) if convert else wdev.weight
                fs.write(target, f"{wdev.major}:{wdev.minor} {value}")
        for _, key, devices in r.throttles():
            for dev in devices:
                # OCI rate 0 means "no limit" (v1 semantics); io.max spells that "max".
                rate = "max" if dev.rate == 0 else str(dev.rate)
                fs.write(self.file(path, "io.max"), f"{dev.major}:{dev.minor} {key}={rate}")
