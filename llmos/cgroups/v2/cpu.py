"""v2 cpu: cpu.weight (from OCI shares), cpu.max (quota period), cpu.max.burst, cpu.idle."""

from __future__ import annotations

from ..convert import convert_shares_to_weight
from ..errors import UnsupportedResource
from ..fs import CgroupFs, read_keyed
from ..resources import Resources, Stats
from .base import V2Controller

__all__ = ["Cpu", "cpu_stats"]

_FIELD = "linux.resources.cpu"


def cpu_stats(fs: CgroupFs, path: str, out: Stats) -> None:
    """cpu.stat exists in every cgroup2 cgroup (usage even without the cpu controller)."""
    stat = read_keyed(fs, V2Controller.file(path, "cpu.stat"))
    out.cpu_usage_ns = stat.get("usage_usec", 0) * 1000
    out.cpu_user_ns = stat.get("user_usec", 0) * 1000
    out.cpu_system_ns = stat.get("system_usec", 0) * 1000
    out.cpu_periods = stat.get("nr_periods", 0)
    out.cpu_throttled_periods = stat.get("nr_throttled", 0)
    out.cpu_throttled_ns = stat.get("throttled_usec", 0) * 1000


class Cpu(V2Controller):
    """The cpu controller."""

    name = "cpu"
    field = _FIELD

    def needed(self, r: Resources) -> bool:
        return r.cpu_asked()

    def apply(self, fs: CgroupFs, path: str, r: Resources) -> None:
        if r.cpu_realtime_runtime or r.cpu_realtime_period:
            which = "realtimeRuntime" if r.cpu_realtime_runtime else "realtimePeriod"
            raise UnsupportedResource(f"{_FIELD}.{which}: cgroup v2 has no realtime CPU budget")
        if r.cpu_shares:  # 0 means unset
            weight = convert_shares_to_weight(r.cpu_shares)
            fs.write(self.file(path, "cpu.weight"), str(weight))
        max_value = self._max_value(fs, path, r)
        if max_value is not None:
            fs.write(self.file(path, "cpu.max"), max_value)
        if r.cpu_burst is not None:
            fs.write(self.file(path, "cpu.max.burst"), str(r.cpu_burst))
        if r.cpu_idle is not None:
            fs.write(self.file(path, "cpu.idle"), str(r.cpu_idle))

    def _max_value(self, fs: CgroupFs, path: str, r: Resources) -> str | None:
        """``$QUOTA $PERIOD`` for cpu.max, keeping the current quota when only the period
        changes (runc would reset it to max)."""
        quota = r.cpu_quota if r.cpu_quota != 0 else None
        period = r.cpu_period or None
        if quota is None and period is None:
            return None
        if quota is None:
            text = fs.read(self.file(path, "cpu.max")).split()
            quota_text = text[0] if text else "max"
        else:
            quota_text = "max" if quota < 0 else str(quota)
        return quota_text if period is None else f"{quota_text} {period}"
