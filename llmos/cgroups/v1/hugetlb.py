"""v1 hugetlb: hugetlb.<size>.limit_in_bytes (and the reservation limit when present)."""

from __future__ import annotations

from ..errors import UnsupportedResource
from ..fs import CgroupFs
from ..resources import Resources
from .base import V1Controller

__all__ = ["Hugetlb"]


class Hugetlb(V1Controller):
    """Per page size limits."""

    name = "hugetlb"
    field = "linux.resources.hugepageLimits"

    def needed(self, r: Resources) -> bool:
        return bool(r.hugepage_limits)

    def apply(self, fs: CgroupFs, path: str, r: Resources) -> None:
        for i, (size, limit) in enumerate(r.hugepage_limits):
            target = self.file(path, f"hugetlb.{size}.limit_in_bytes")
            if not fs.exists(target):
                raise UnsupportedResource(
                    f"linux.resources.hugepageLimits[{i}].pageSize: no {size} huge pages on "
                    f"this host ({target} does not exist)"
                )
            # Limit reservations too (as runc does), or a mapping can reserve past the limit.
            rsvd = self.file(path, f"hugetlb.{size}.rsvd.limit_in_bytes")
            if fs.exists(rsvd):
                fs.write(rsvd, str(limit))
            fs.write(target, str(limit))
