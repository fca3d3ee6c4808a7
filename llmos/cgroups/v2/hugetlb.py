"""v2 hugetlb: hugetlb.<size>.max and, when the kernel has it, hugetlb.<size>.rsvd.max."""

from __future__ import annotations

from ..errors import UnsupportedResource
from ..fs import CgroupFs
from ..resources import Resources
from .base import V2Controller

__all__ = ["Hugetlb"]


class Hugetlb(V2Controller):
    """The hugetlb controller (also used for hybrid hosts that delegate it on cgroup2)."""

    name = "hugetlb"
    field = "linux.resources.hugepageLimits"

    def needed(self, r: Resources) -> bool:
        return bool(r.hugepage_limits)

    def apply(self, fs: CgroupFs, path: str, r: Resources) -> None:
        for i, (size, limit) in enumerate(r.hugepage_limits):
            target = self.file(path, f"hugetlb.{size}.max")
            if not fs.exists(target):
                raise UnsupportedResource(
                    f"linux.resources.hugepageLimits[{i}].pageSize: no {size} huge pages on "
                    f"this host ({target} does not exist)"
                )
            rsvd = self.file(path, f"hugetlb.{size}.rsvd.max")
            if fs.exists(rsvd):
                fs.write(rsvd, str(limit))
            fs.write(target, str(limit))
