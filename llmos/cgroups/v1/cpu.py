"""v1 cpu: shares, CFS quota/period/burst, realtime budget, idle, throttling stats."""

from __future__ import annotations

import errno

from ..convert import format_v1_limit
from ..errors import CgroupError
from ..fs import CgroupFs, read_int, read_keyed
from ..resources import Resources, Stats
from .base import V1Controller

__all__ = ["Cpu", "CpuAcct"]


class Cpu(V1Controller):
    """cpu.shares, cpu.cfs_*, cpu.rt_*, cpu.idle."""

    name = "cpu"
    field = "linux.resources.cpu"

    def needed(self, r: Resources) -> bool:
        return r.cpu_asked()

    def apply(self, fs: CgroupFs, path: str, r: Resources) -> None:
        if r.cpu_shares:  # 0 means unset (Docker's convention, kept by runc and crun)
            shares = self.file(path, "cpu.shares")
            fs.write(shares, str(r.cpu_shares))
            # The kernel clamps out-of-range shares silently; say so instead.
            got = read_int(fs, shares)
            if got != r.cpu_shares:
                raise CgroupError(
                    f"linux.resources.cpu.shares: asked {r.cpu_shares}, the kernel set {got} "
                    f"in {shares} (range 2..262144)",
                    path=shares,
                )
        self._bandwidth(fs, path, r)
        if r.cpu_burst is not None:
            fs.write(self.file(path, "cpu.cfs_burst_us"), str(r.cpu_burst))
        # The realtime period must be in place before a runtime that only fits in it.
        if r.cpu_realtime_period:
            fs.write(self.file(path, "cpu.rt_period_us"), str(r.cpu_realtime_period))
        if r.cpu_realtime_runtime is not None:
            fs.write(self.file(path, "cpu.rt_runtime_us"), format_v1_limit(r.cpu_realtime_runtime))
        if r.cpu_idle is not None:
            fs.write(self.file(path, "cpu.idle"), str(r.cpu_idle))

    def _bandwidth(self, fs: CgroupFs, path: str, r: Resources) -> None:
        """Period first, then quota; if the kernel rejects the period against the current
        quota (EINVAL), write the new quota first and retry, as runc does."""
        quota = r.cpu_quota if r.cpu_quota != 0 else None
        period_file = self.file(path, "cpu.cfs_period_us")
        quota_file = self.file(path, "cpu.cfs_quota_us")
        if r.cpu_period:
            try:
                fs.write(period_file, str(r.cpu_period))
            except CgroupError as exc:
                if exc.errno != errno.EINVAL or quota is None:
                    raise
                fs.write(quota_file, format_v1_limit(quota))
                fs.write(period_file, str(r.cpu_period))
                return
        if quota is not None:
            fs.write(quota_file, format_v1_limit(quota))

    def stats(self, fs: CgroupFs, path: str, out: Stats) -> None:
        stat = read_keyed(fs, self.file(path, "cpu.stat"))
        out.cpu_periods = stat.get("nr_periods", 0)
        out.cpu_throttled_periods = stat.get("nr_throttled", 0)
        out.cpu_throttled_ns = stat.get("throttled_time", 0)


class CpuAcct(V1Controller):
    """cpuacct: usage counters only (its own hierarchy here, combined with cpu elsewhere)."""

    name = "cpuacct"
    field = "linux.resources.cpu"

    def stats(self, fs: CgroupFs, path: str, out: Stats) -> None:
        out.cpu_usage_ns = read_int(fs, self.file(path, "cpuacct.usage")) or 0
        user = self.file(path, "cpuacct.usage_user")
        if fs.exists(user):
            out.cpu_user_ns = read_int(fs, user) or 0
            out.cpu_system_ns = read_int(fs, self.file(path, "cpuacct.usage_sys")) or 0
