"""v1 memory: limit, memory+swap, soft limit, swappiness, kernel TCP, OOM killer, stats."""

from __future__ import annotations

from ..convert import format_v1_limit
from ..errors import CgroupError, UnsupportedResource
from ..fs import CgroupFs, parse_int, read_int, read_keyed
from ..resources import Resources, Stats
from .base import V1Controller

__all__ = ["UNLIMITED_FLOOR", "Memory", "oom_kill_count"]

# v1 reports "unlimited" as PAGE_COUNTER_MAX * PAGE_SIZE (9223372036854771712 with 4 KiB
# pages); anything this large is no real limit whatever the page size.
UNLIMITED_FLOOR = 1 << 62


def oom_kill_count(fs: CgroupFs, path: str) -> int:
    """The ``oom_kill`` line of memory.oom_control (kernel 4.13+), 0 if absent."""
    return read_keyed(fs, V1Controller.file(path, "memory.oom_control")).get("oom_kill", 0)


class Memory(V1Controller):
    """memory.limit_in_bytes and friends."""

    name = "memory"
    field = "linux.resources.memory"

    def needed(self, r: Resources) -> bool:
        return r.memory_asked()

    def apply(self, fs: CgroupFs, path: str, r: Resources) -> None:
        if r.memory_use_hierarchy is False:
            raise UnsupportedResource(
                "linux.resources.memory.useHierarchy: false is not supported "
                "(the kernel accounts memory hierarchically)"
            )
        if r.memory_check_before_update and r.memory_limit is not None and r.memory_limit > 0:
            usage = read_int(fs, self.file(path, "memory.usage_in_bytes")) or 0
            if r.memory_limit < usage:
                raise CgroupError(
                    f"linux.resources.memory.limit: {r.memory_limit} is below the current "
                    f"usage {usage} (checkBeforeUpdate)"
                )
        self._limit_and_swap(fs, path, r)
        if r.memory_reservation is not None:
            fs.write(
                self.file(path, "memory.soft_limit_in_bytes"),
                format_v1_limit(r.memory_reservation),
            )
        if r.memory_swappiness is not None:
            fs.write(self.file(path, "memory.swappiness"), str(r.memory_swappiness))
        if r.memory_kernel is not None:
            kmem = self.file(path, "memory.kmem.limit_in_bytes")
            fs.write(kmem, format_v1_limit(r.memory_kernel))
        if r.memory_kernel_tcp is not None:
            fs.write(
                self.file(path, "memory.kmem.tcp.limit_in_bytes"),
                format_v1_limit(r.memory_kernel_tcp),
            )
        if r.memory_disable_oom_killer:
            fs.write(self.file(path, "memory.oom_control"), "1")

    def _limit_and_swap(self, fs: CgroupFs, path: str, r: Resources) -> None:
        """Write limit and memory+swap in the order the kernel accepts.

        v1 insists memsw >= limit at every moment, so when raising, memsw goes first and when
        lowering, the limit goes first (runc's rule, decided from the current limit).
        """
        limit = r.memory_limit
        swap = r.memory_swap if r.memory_swap != 0 else None
        memsw = self.file(path, "memory.memsw.limit_in_bytes")
        has_memsw = fs.exists(memsw)
        if limit == -1 and swap is None and has_memsw:
            swap = -1  # "unlimited memory" lifts the memory+swap cap too, as runc does
        if swap is not None and not has_memsw:
            if swap != -1:
                raise UnsupportedResource(
                    f"linux.resources.memory.swap: swap accounting is off ({memsw} does not "
                    "exist; the kernel needs swapaccount=1)"
                )
            swap = None  # nothing to lift: without accounting swap is not limited
        if swap is not None and swap != -1 and limit is not None and 0 <= swap < limit:
            raise CgroupError(
                f"linux.resources.memory.swap: memory+swap {swap} is below the memory limit {limit}"
            )
        limit_file = self.file(path, "memory.limit_in_bytes")
        if limit is not None and swap is not None:
            current = parse_int(fs.read(limit_file), limit_file)
            if swap == -1 or current is None or current < swap:
                fs.write(memsw, format_v1_limit(swap))
                fs.write(limit_file, format_v1_limit(limit))
            else:
                fs.write(limit_file, format_v1_limit(limit))
                fs.write(memsw, format_v1_limit(swap))
        elif limit is not None:
            fs.write(limit_file, format_v1_limit(limit))
        elif swap is not None:
            fs.write(memsw, format_v1_limit(swap))

    def stats(self, fs: CgroupFs, path: str, out: Stats) -> None:
        out.memory_usage = read_int(fs, self.file(path, "memory.usage_in_bytes")) or 0
        limit = read_int(fs, self.file(path, "memory.limit_in_bytes"))
        out.memory_limit = None if limit is None or limit >= UNLIMITED_FLOOR else limit
        out.memory_max_usage = read_int(fs, self.file(path, "memory.max_usage_in_bytes"))
        memsw = self.file(path, "memory.memsw.usage_in_bytes")
        if fs.exists(memsw):
            out.memory_swap_usage = max(0, (read_int(fs, memsw) or 0) - out.memory_usage)
        stat = read_keyed(fs, self.file(path, "memory.stat"))
        if "total_cache" in stat or "cache" in stat:
            out.memory_cache = stat.get("total_cache", stat.get("cache", 0))
        oom = read_keyed(fs, self.file(path, "memory.oom_control"))
        out.oom_kills = oom.get("oom_kill", 0)
        out.memory_limit_hits = read_int(fs, self.file(path, "memory.failcnt")) or 0
