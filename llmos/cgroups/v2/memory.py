"""v2 memory: memory.max, memory.swap.max (OCI swap is memory+swap), memory.low, stats."""

from __future__ import annotations

from ..convert import convert_memory_swap_to_v2, format_v2_limit
from ..errors import CgroupError, UnsupportedResource
from ..fs import CgroupFs, read_int, read_keyed
from ..resources import Resources, Stats
from .base import V2Controller

__all__ = ["Memory"]

_FIELD = "linux.resources.memory"


class Memory(V2Controller):
    """The memory controller."""

    name = "memory"
    field = _FIELD

    def needed(self, r: Resources) -> bool:
        return r.memory_asked()

    def _refuse_v1_only(self, r: Resources) -> None:
        """Knobs cgroup v2 does not have are errors, never silently dropped (runtime spec)."""
        if r.memory_swappiness is not None:
            raise UnsupportedResource(
                f"{_FIELD}.swappiness: cgroup v2 has no per-cgroup swappiness"
            )
        if r.memory_kernel is not None:
            raise UnsupportedResource(
                f"{_FIELD}.kernel: cgroup v2 has no separate kernel memory limit "
                "(kernel memory counts against memory.max)"
            )
        if r.memory_kernel_tcp is not None:
            raise UnsupportedResource(f"{_FIELD}.kernelTCP: cgroup v2 has no TCP memory limit")
        if r.memory_disable_oom_killer:
            raise UnsupportedResource(
                f"{_FIELD}.disableOOMKiller: cgroup v2 cannot disable the OOM killer"
            )
        if r.memory_use_hierarchy is False:
            raise UnsupportedResource(f"{_FIELD}.useHierarchy: cgroup v2 is always hierarchical")

    def apply(self, fs: CgroupFs, path: str, r: Resources) -> None:
        self._refuse_v1_only(r)
        if r.memory_check_before_update and r.memory_limit is not None and r.memory_limit > 0:
            usage = read_int(fs, self.file(path, "memory.current")) or 0
            if r.memory_limit < usage:
                raise CgroupError(
                    f"{_FIELD}.limit: {r.memory_limit} is below the current usage {usage} "
                    "(checkBeforeUpdate)"
                )
        try:
            swap = convert_memory_swap_to_v2(r.memory_swap, r.memory_limit)
        except ValueError as exc:
            raise CgroupError(f"{_FIELD}.swap: {exc}") from None
        if swap is not None:
            swap_file = self.file(path, "memory.swap.max")
            if fs.exists(swap_file):
                fs.write(swap_file, format_v2_limit(swap))
            elif swap != -1:
                raise UnsupportedResource(
                    f"{_FIELD}.swap: swap accounting is off ({swap_file} does not exist)"
                )
        if r.memory_limit is not None:
            fs.write(self.file(path, "memory.max"), format_v2_limit(r.memory_limit))
        if r.memory_reservation is not None:
            fs.write(self.file(path, "memory.low"), format_v2_limit(r.memory_reservation))

    def stats(self, fs: CgroupFs, path: str, out: Stats) -> None:
        current = self.file(path, "memory.current")
        if not fs.exists(current):
            return  # controller not enabled for this cgroup
        out.memory_usage = read_int(fs, current) or 0
        out.memory_limit = read_int(fs, self.file(path, "memory.max"))
        peak = self.file(path, "memory.peak")
        if fs.exists(peak):
            out.memory_max_usage = read_int(fs, peak)
        swap = self.file(path, "memory.swap.current")
        if fs.exists(swap):
            out.memory_swap_usage = read_int(fs, swap)
        stat = read_keyed(fs, self.file(path, "memory.stat"))
        if "file" in stat:
            out.memory_cache = stat["file"]
        events = read_keyed(fs, self.file(path, "memory.events"))
        out.oom_kills = events.get("oom_kill", 0)
        out.memory_limit_hits = events.get("max", 0)
