"""``linux.resources``: the cgroup limits of a container, typed and checked.

The cgroup drivers read ``Resources.raw`` (the JSON form, unknown keys included) so that a
field the typed model does not know still reaches the driver, which then reports it as
unsupported instead of llmos dropping it silently.
"""

# ruff: noqa: RUF009  (req/opt/many return dataclasses.field() objects, as field() does)

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmos.spec._node import (
    INT64,
    STR,
    STR_MAP,
    UINT16,
    UINT32,
    UINT64,
    Bool,
    Int,
    ListOf,
    MapOf,
    Node,
    Obj,
    Str,
    many,
    opt,
    req,
)
from llmos.spec.errors import SpecError


def _access(value: str) -> str | None:
    if not value or set(value) - set("rwm"):
        return f'must be a combination of "r", "w" and "m", not "{value}"'
    return None


@dataclass(kw_only=True)
class DeviceCgroup(Node):
    """One device-cgroup rule: allow or deny access to (a class of) device numbers.

    ``major``/``minor`` of None mean any (``*``); ``type`` of None or "a" means all types.
    """

    allow: bool = req("allow", Bool())
    type: str | None = opt("type", Str(choices=("a", "b", "c"), label="device type"))
    major: int | None = opt("major", INT64)
    minor: int | None = opt("minor", INT64)
    access: str | None = opt("access", Str(check=_access, expected='a string of "rwm"'))

    def rule(self) -> str:
        """The rule in devices.allow syntax, e.g. ``c 1:3 rwm`` (cgroup v1 and for logs)."""
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type or 'a'} {major}:{minor} {self.access or 'rwm'}"


@dataclass(kw_only=True)
class Memory(Node):
    """Memory limits in bytes; -1 means unlimited, as the spec says for limit and swap."""

    limit: int | None = opt("limit", INT64)
    reservation: int | None = opt("reservation", INT64)
    swap: int | None = opt("swap", INT64)
    kernel: int | None = opt("kernel", INT64)
    kernel_tcp: int | None = opt("kernelTCP", INT64)
    swappiness: int | None = opt("swappiness", Int(0, 100, "a number from 0 to 100"))
    disable_oom_killer: bool | None = opt("disableOOMKiller", Bool())
    use_hierarchy: bool | None = opt("useHierarchy", Bool())
    check_before_update: bool | None = opt("checkBeforeUpdate", Bool())


@dataclass(kw_only=True)
class CPU(Node):
    """CPU shares/quota/period (microseconds), realtime budget, cpuset and idle."""

    shares: int | None = opt("shares", UINT64)
    quota: int | None = opt("quota", INT64)
    burst: int | None = opt("burst", UINT64)
    period: int | None = opt("period", UINT64)
    realtime_runtime: int | None = opt("realtimeRuntime", INT64)
    realtime_period: int | None = opt("realtimePeriod", UINT64)
    cpus: str | None = opt("cpus", STR)
    mems: str | None = opt("mems", STR)
    idle: int | None = opt("idle", INT64)


@dataclass(kw_only=True)
class Pids(Node):
    """The pids controller: at most ``limit`` tasks (-1 or 0 mean no limit)."""

    limit: int = req("limit", INT64)


@dataclass(kw_only=True)
class WeightDevice(Node):
    """A per-device block I/O weight."""

    major: int = req("major", INT64)
    minor: int = req("minor", INT64)
    weight: int | None = opt("weight", UINT16)
    leaf_weight: int | None = opt("leafWeight", UINT16)


@dataclass(kw_only=True)
class ThrottleDevice(Node):
    """A per-device block I/O rate limit (bytes or operations per second)."""

    major: int = req("major", INT64)
    minor: int = req("minor", INT64)
    rate: int = req("rate", UINT64)


_THROTTLES = ListOf(Obj(ThrottleDevice), expected="a list of device throttles")


@dataclass(kw_only=True)
class BlockIO(Node):
    """Block I/O weights and throttles."""

    weight: int | None = opt("weight", UINT16)
    leaf_weight: int | None = opt("leafWeight", UINT16)
    weight_device: list[WeightDevice] = many(
        "weightDevice", ListOf(Obj(WeightDevice), expected="a list of device weights")
    )
    throttle_read_bps_device: list[ThrottleDevice] = many("throttleReadBpsDevice", _THROTTLES)
    throttle_write_bps_device: list[ThrottleDevice] = many("throttleWriteBpsDevice", _THROTTLES)
    throttle_read_iops_device: list[ThrottleDevice] = many("throttleReadIOPSDevice", _THROTTLES)
    throttle_write_iops_device: list[ThrottleDevice] = many("throttleWriteIOPSDevice", _THROTTLES)


@dataclass(kw_only=True)
class HugepageLimit(Node):
    """A hugetlb limit for one page size ("2MB", "1GB")."""

    page_size: str = req("pageSize", Str(nonempty=True))
    limit: int = req("limit", UINT64)


@dataclass(kw_only=True)
class InterfacePriority(Node):
    """A net_prio priority for one network interface."""

    name: str = req("name", Str(nonempty=True))
    priority: int = req("priority", UINT32)


@dataclass(kw_only=True)
class Network(Node):
    """net_cls class id and net_prio priorities."""

    class_id: int | None = opt("classID", UINT32)
    priorities: list[InterfacePriority] = many(
        "priorities", ListOf(Obj(InterfacePriority), expected="a list of interface priorities")
    )


@dataclass(kw_only=True)
class Rdma(Node):
    """RDMA limits for one device."""

    hca_handles: int | None = opt("hcaHandles", UINT32)
    hca_objects: int | None = opt("hcaObjects", UINT32)


@dataclass(kw_only=True)
class Resources(Node):
    """``linux.resources``; ``raw`` is the same data as JSON for the cgroup drivers."""

    devices: list[DeviceCgroup] = many(
        "devices", ListOf(Obj(DeviceCgroup), expected="a list of device cgroup rules")
    )
    memory: Memory | None = opt("memory", Obj(Memory))
    cpu: CPU | None = opt("cpu", Obj(CPU))
    pids: Pids | None = opt("pids", Obj(Pids))
    block_io: BlockIO | None = opt("blockIO", Obj(BlockIO))
    hugepage_limits: list[HugepageLimit] = many(
        "hugepageLimits", ListOf(Obj(HugepageLimit), expected="a list of hugepage limits")
    )
    network: Network | None = opt("network", Obj(Network))
    rdma: dict[str, Rdma] = many("rdma", MapOf(Obj(Rdma)))
    unified: dict[str, str] = many("unified", STR_MAP)

    @property
    def raw(self) -> dict[str, Any]:
        """The validated ``linux.resources`` object as JSON, unknown keys included."""
        return self.to_dict()

    def check(self, path: str) -> None:
        for key in self.unified:
            if not key or "/" in key:
                raise SpecError(f'{path}.unified["{key}"]', "must be a cgroup file name")
