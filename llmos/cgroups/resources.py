"""The resources a cgroup is asked to enforce, with OCI ``linux.resources`` semantics.

:class:`Resources` is driver-neutral data: ``None`` means "not asked for, leave the kernel's
value alone", so the same object serves create and update. :meth:`Resources.from_oci` reads the
runtime-spec JSON dict and rejects unknown keys and wrong types with the dotted field name,
because the spec wants resources that cannot be applied to be errors, never silently dropped.
Whether a valid field can be applied on this host is the driver's call (``apply`` raises
:class:`UnsupportedResource`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidResources

__all__ = [
    "DeviceRule",
    "NetworkPriority",
    "RdmaLimit",
    "Resources",
    "Stats",
    "ThrottleDevice",
    "WeightDevice",
]

_PAGE_SIZE = re.compile(r"^[0-9]+[KMG]B$")
_PREFIX = "linux.resources"


@dataclass(frozen=True)
class DeviceRule:
    """One device-cgroup rule (OCI ``linux.resources.devices[]``); None major/minor = ``*``."""

    allow: bool
    type: str = "a"
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"

    def v1_line(self) -> str:
        """The line devices.allow / devices.deny parse: ``c 1:3 rwm``."""
        major = "*" if self.major is None or self.major < 0 else str(self.major)
        minor = "*" if self.minor is None or self.minor < 0 else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"


@dataclass(frozen=True)
class WeightDevice:
    """A per-device block IO weight (OCI ``blockIO.weightDevice[]``)."""

    major: int
    minor: int
    weight: int | None = None
    leaf_weight: int | None = None


@dataclass(frozen=True)
class ThrottleDevice:
    """A per-device rate limit (OCI ``blockIO.throttle*Device[]``), bytes or IOs per second."""

    major: int
    minor: int
    rate: int


@dataclass(frozen=True)
class NetworkPriority:
    """One ``net_prio.ifpriomap`` entry."""

    name: str
    priority: int


@dataclass(frozen=True)
class RdmaLimit:
    """Limits for one RDMA device (OCI ``linux.resources.rdma.<device>``)."""

    hca_handles: int | None = None
    hca_objects: int | None = None

    def line(self, device: str) -> str:
        """The ``rdma.max`` line; an unset field stays ``max``."""
        handles = "max" if self.hca_handles is None else str(self.hca_handles)
        objects = "max" if self.hca_objects is None else str(self.hca_objects)
        return f"{device} hca_handle={handles} hca_object={objects}"


@dataclass
class Resources:
    """What to enforce, in OCI units; None (or an empty list/dict) leaves the kernel value.

    The first block is the interface the runtime codes against; the rest covers the remaining
    runtime-spec fields so none of them has to be ignored.
    """

    memory_limit: int | None = None  # bytes; -1 = unlimited
    memory_reservation: int | None = None
    memory_swap: int | None = None  # OCI: memory+swap total bytes; -1 unlimited; 0 unset
    memory_swappiness: int | None = None
    cpu_shares: int | None = None  # v1 units; v2 converts to cpu.weight (crun's formula)
    cpu_quota: int | None = None  # microseconds per period; -1 unlimited
    cpu_period: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None  # <=0 unlimited
    blkio_weight: int | None = None
    hugepage_limits: list[tuple[str, int]] = field(default_factory=list)  # ("2MB", bytes)
    unified: dict[str, str] = field(default_factory=dict)  # linux.resources.unified (v2 only)

    memory_kernel: int | None = None
    memory_kernel_tcp: int | None = None
    memory_disable_oom_killer: bool | None = None
    memory_use_hierarchy: bool | None = None
    memory_check_before_update: bool | None = None
    cpu_burst: int | None = None  # microseconds
    cpu_realtime_runtime: int | None = None
    cpu_realtime_period: int | None = None
    cpu_idle: int | None = None
    blkio_leaf_weight: int | None = None
    blkio_weight_devices: list[WeightDevice] = field(default_factory=list)
    blkio_throttle_read_bps: list[ThrottleDevice] = field(default_factory=list)
    blkio_throttle_write_bps: list[ThrottleDevice] = field(default_factory=list)
    blkio_throttle_read_iops: list[ThrottleDevice] = field(default_factory=list)
    blkio_throttle_write_iops: list[ThrottleDevice] = field(default_factory=list)
    devices: list[DeviceRule] = field(default_factory=list)
    network_class_id: int | None = None
    network_priorities: list[NetworkPriority] = field(default_factory=list)
    rdma: dict[str, RdmaLimit] = field(default_factory=dict)

    @classmethod
    def from_oci(cls, resources: Mapping[str, Any]) -> Resources:
        """Build from the OCI ``linux.resources`` JSON dict (as loaded by ``json.load``).

        Unknown keys and wrong types raise :class:`InvalidResources` naming the field, e.g.
        ``linux.resources.memory.limt: unknown field``.
        """
        return _Parser().resources(resources)

    def memory_asked(self) -> bool:
        """Whether any memory-controller knob is set (drivers check the controller exists)."""
        return any(
            v is not None
            for v in (
                self.memory_limit,
                self.memory_reservation,
                self.memory_swap,
                self.memory_swappiness,
                self.memory_kernel,
                self.memory_kernel_tcp,
                self.memory_disable_oom_killer,
                self.memory_use_hierarchy,
            )
        )

    def cpu_asked(self) -> bool:
        """Whether any cpu-controller knob is set."""
        return any(
            v is not None
            for v in (
                self.cpu_shares,
                self.cpu_quota,
                self.cpu_period,
                self.cpu_burst,
                self.cpu_realtime_runtime,
                self.cpu_realtime_period,
                self.cpu_idle,
            )
        )

    def cpuset_asked(self) -> bool:
        """Whether cpus or mems are pinned (empty strings count as unset, as in runc)."""
        return bool(self.cpuset_cpus) or bool(self.cpuset_mems)

    def blkio_asked(self) -> bool:
        """Whether any block IO knob is set."""
        return (
            self.blkio_weight is not None
            or self.blkio_leaf_weight is not None
            or bool(self.blkio_weight_devices)
            or bool(self.blkio_throttle_read_bps)
            or bool(self.blkio_throttle_write_bps)
            or bool(self.blkio_throttle_read_iops)
            or bool(self.blkio_throttle_write_iops)
        )

    def throttles(self) -> list[tuple[str, str, list[ThrottleDevice]]]:
        """(v1 file suffix, v2 io.max key, devices) for the four throttle lists."""
        return [
            ("read_bps_device", "rbps", self.blkio_throttle_read_bps),
            ("write_bps_device", "wbps", self.blkio_throttle_write_bps),
            ("read_iops_device", "riops", self.blkio_throttle_read_iops),
            ("write_iops_device", "wiops", self.blkio_throttle_write_iops),
        ]


@dataclass
class Stats:
    """A snapshot of a cgroup's usage; fields a host cannot report stay 0 or None."""

    memory_usage: int = 0
    memory_limit: int | None = None  # None = unlimited
    memory_max_usage: int | None = None  # v1 max_usage_in_bytes, v2 memory.peak
    cpu_usage_ns: int = 0
    pids_current: int = 0
    oom_kills: int = 0
    memory_swap_usage: int | None = None  # v1: memsw usage minus usage; v2: memory.swap.current
    memory_cache: int | None = None  # page cache (v1 "cache", v2 "file")
    cpu_user_ns: int = 0
    cpu_system_ns: int = 0
    cpu_periods: int = 0
    cpu_throttled_periods: int = 0
    cpu_throttled_ns: int = 0
    pids_limit: int | None = None  # None = unlimited
    memory_limit_hits: int = 0  # times usage hit the limit (v1 memory.failcnt, v2 events "max")


class _Parser:
    """Walks the OCI dict keeping the dotted path, so each error names its field."""

    def resources(self, raw: Mapping[str, Any]) -> Resources:
        obj = self._obj(raw, _PREFIX)
        out = Resources()
        handlers = {
            "devices": self._devices,
            "memory": self._memory,
            "cpu": self._cpu,
            "pids": self._pids,
            "blockIO": self._block_io,
            "hugepageLimits": self._hugepages,
            "network": self._network,
            "rdma": self._rdma,
            "unified": self._unified,
        }
        for key, value in obj.items():
            path = f"{_PREFIX}.{key}"
            handler = handlers.get(key)
            if handler is None:
                raise InvalidResources(f"{path}: unknown field")
            if value is not None:
                handler(out, value, path)
        return out

    # -- containers --------------------------------------------------------------------------

    def _obj(self, value: Any, path: str, known: tuple[str, ...] | None = None) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise InvalidResources(f"{path}: must be an object")
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidResources(f"{path}: keys must be strings")
            if known is not None and key not in known:
                raise InvalidResources(f"{path}.{key}: unknown field")
            if item is not None:
                out[key] = item
        return out

    def _list(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise InvalidResources(f"{path}: must be a list")
        return value

    def _int(self, value: Any, path: str, minimum: int | None = None) -> int:
        # bool is an int subclass in Python; JSON true is not a number.
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidResources(f"{path}: must be an integer")
        if minimum is not None and value < minimum:
            raise InvalidResources(f"{path}: must be >= {minimum}, got {value}")
        return value

    def _bool(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise InvalidResources(f"{path}: must be a boolean")
        return value

    def _str(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise InvalidResources(f"{path}: must be a string")
        return value

    # -- sections ----------------------------------------------------------------------------

    def _devices(self, out: Resources, value: Any, path: str) -> None:
        known = ("allow", "type", "major", "minor", "access")
        for i, item in enumerate(self._list(value, path)):
            p = f"{path}[{i}]"
            d = self._obj(item, p, known)
            if "allow" not in d:
                raise InvalidResources(f"{p}.allow: required")
            kind = self._str(d.get("type", "a"), f"{p}.type")
            if kind not in ("a", "b", "c"):
                raise InvalidResources(f"{p}.type: must be one of a, b, c, got {kind!r}")
            access = self._str(d.get("access", "rwm"), f"{p}.access")
            if not access or set(access) - set("rwm") or len(set(access)) != len(access):
                raise InvalidResources(f"{p}.access: must be letters from 'rwm', got {access!r}")
            major = self._int(d["major"], f"{p}.major", -1) if "major" in d else None
            minor = self._int(d["minor"], f"{p}.minor", -1) if "minor" in d else None
            out.devices.append(
                DeviceRule(self._bool(d["allow"], f"{p}.allow"), kind, major, minor, access)
            )

    def _memory(self, out: Resources, value: Any, path: str) -> None:
        known = (
            "limit",
            "reservation",
            "swap",
            "kernel",
            "kernelTCP",
            "swappiness",
            "disableOOMKiller",
            "useHierarchy",
            "checkBeforeUpdate",
        )
        m = self._obj(value, path, known)
        if "limit" in m:
            out.memory_limit = self._int(m["limit"], f"{path}.limit", -1)
        if "reservation" in m:
            out.memory_reservation = self._int(m["reservation"], f"{path}.reservation", -1)
        if "swap" in m:
            out.memory_swap = self._int(m["swap"], f"{path}.swap", -1)
        if "kernel" in m:
            out.memory_kernel = self._int(m["kernel"], f"{path}.kernel", -1)
        if "kernelTCP" in m:
            out.memory_kernel_tcp = self._int(m["kernelTCP"], f"{path}.kernelTCP", -1)
        if "swappiness" in m:
            swappiness = self._int(m["swappiness"], f"{path}.swappiness", -1)
            # Docker writes -1 (and uint64 wrap-arounds of it) for "not set"; runc agrees.
            if swappiness not in (-1, 2**64 - 1):
                if swappiness > 100:
                    raise InvalidResources(f"{path}.swappiness: must be 0..100, got {swappiness}")
                out.memory_swappiness = swappiness
        if "disableOOMKiller" in m:
            out.memory_disable_oom_killer = self._bool(
                m["disableOOMKiller"], f"{path}.disableOOMKiller"
            )
        if "useHierarchy" in m:
            out.memory_use_hierarchy = self._bool(m["useHierarchy"], f"{path}.useHierarchy")
        if "checkBeforeUpdate" in m:
            out.memory_check_before_update = self._bool(
                m["checkBeforeUpdate"], f"{path}.checkBeforeUpdate"
            )

    def _cpu(self, out: Resources, value: Any, path: str) -> None:
        known = (
            "shares",
            "quota",
            "burst",
            "period",
            "realtimeRuntime",
            "realtimePeriod",
            "cpus",
            "mems",
            "idle",
        )
        c = self._obj(value, path, known)
        if "shares" in c:
            out.cpu_shares = self._int(c["shares"], f"{path}.shares", 0)
        if "quota" in c:
            out.cpu_quota = self._int(c["quota"], f"{path}.quota", -1)
        if "burst" in c:
            out.cpu_burst = self._int(c["burst"], f"{path}.burst", 0)
        if "period" in c:
            out.cpu_period = self._int(c["period"], f"{path}.period", 0)
        if "realtimeRuntime" in c:
            out.cpu_realtime_runtime = self._int(
                c["realtimeRuntime"], f"{path}.realtimeRuntime", -1
            )
        if "realtimePeriod" in c:
            out.cpu_realtime_period = self._int(c["realtimePeriod"], f"{path}.realtimePeriod", 0)
        if "cpus" in c:
            out.cpuset_cpus = self._str(c["cpus"], f"{path}.cpus")
        if "mems" in c:
            out.cpuset_mems = self._str(c["mems"], f"{path}.mems")
        if "idle" in c:
            idle = self._int(c["idle"], f"{path}.idle")
            if idle not in (0, 1):
                raise InvalidResources(f"{path}.idle: must be 0 or 1, got {idle}")
            out.cpu_idle = idle

    def _pids(self, out: Resources, value: Any, path: str) -> None:
        p = self._obj(value, path, ("limit",))
        if "limit" in p:
            out.pids_limit = self._int(p["limit"], f"{path}.limit")

    def _block_io(self, out: Resources, value: Any, path: str) -> None:
        known = (
            "weight",
            "leafWeight",
            "weightDevice",
            "throttleReadBpsDevice",
            "throttleWriteBpsDevice",
            "throttleReadIOPSDevice",
            "throttleWriteIOPSDevice",
        )
        b = self._obj(value, path, known)
        if "weight" in b:
            out.blkio_weight = self._int(b["weight"], f"{path}.weight", 0)
        if "leafWeight" in b:
            out.blkio_leaf_weight = self._int(b["leafWeight"], f"{path}.leafWeight", 0)
        for i, item in enumerate(self._list(b.get("weightDevice", []), f"{path}.weightDevice")):
            p = f"{path}.weightDevice[{i}]"
            d = self._obj(item, p, ("major", "minor", "weight", "leafWeight"))
            out.blkio_weight_devices.append(
                WeightDevice(
                    self._int(d.get("major"), f"{p}.major", 0),
                    self._int(d.get("minor"), f"{p}.minor", 0),
                    self._int(d["weight"], f"{p}.weight", 0) if "weight" in d else None,
                    self._int(d["leafWeight"], f"{p}.leafWeight", 0) if "leafWeight" in d else None,
                )
            )
        targets = {
            "throttleReadBpsDevice": out.blkio_throttle_read_bps,
            "throttleWriteBpsDevice": out.blkio_throttle_write_bps,
            "throttleReadIOPSDevice": out.blkio_throttle_read_iops,
            "throttleWriteIOPSDevice": out.blkio_throttle_write_iops,
        }
        for key, target in targets.items():
            for i, item in enumerate(self._list(b.get(key, []), f"{path}.{key}")):
                p = f"{path}.{key}[{i}]"
                d = self._obj(item, p, ("major", "minor", "rate"))
                target.append(
                    ThrottleDevice(
                        self._int(d.get("major"), f"{p}.major", 0),
                        self._int(d.get("minor"), f"{p}.minor", 0),
                        self._int(d.get("rate"), f"{p}.rate", 0),
                    )
                )

    def _hugepages(self, out: Resources, value: Any, path: str) -> None:
        for i, item in enumerate(self._list(value, path)):
            p = f"{path}[{i}]"
            h = self._obj(item, p, ("pageSize", "limit"))
            size = self._str(h.get("pageSize"), f"{p}.pageSize")
            if not _PAGE_SIZE.match(size):
                raise InvalidResources(f"{p}.pageSize: must look like 2MB or 1GB, got {size!r}")
            out.hugepage_limits.append((size, self._int(h.get("limit"), f"{p}.limit", 0)))

    def _network(self, out: Resources, value: Any, path: str) -> None:
        n = self._obj(value, path, ("classID", "priorities"))
        if "classID" in n:
            out.network_class_id = self._int(n["classID"], f"{path}.classID", 0)
        for i, item in enumerate(self._list(n.get("priorities", []), f"{path}.priorities")):
            p = f"{path}.priorities[{i}]"
            d = self._obj(item, p, ("name", "priority"))
            out.network_priorities.append(
                NetworkPriority(
                    self._str(d.get("name"), f"{p}.name"),
                    self._int(d.get("priority"), f"{p}.priority", 0),
                )
            )

    def _rdma(self, out: Resources, value: Any, path: str) -> None:
        for device, item in self._obj(value, path).items():
            p = f"{path}.{device}"
            d = self._obj(item, p, ("hcaHandles", "hcaObjects"))
            out.rdma[device] = RdmaLimit(
                self._int(d["hcaHandles"], f"{p}.hcaHandles", 0) if "hcaHandles" in d else None,
                self._int(d["hcaObjects"], f"{p}.hcaObjects", 0) if "hcaObjects" in d else None,
            )

    def _unified(self, out: Resources, value: Any, path: str) -> None:
        for key, item in self._obj(value, path).items():
            p = f"{path}.{key}"
            # A key is a file name in the cgroup directory, never a path out of it.
            if "/" in key or key in ("", ".", "..") or "." not in key:
                raise InvalidResources(f"{p}: must be a cgroup file name like memory.high")
            out.unified[key] = self._str(item, p)
