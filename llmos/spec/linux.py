"""The ``linux`` object of config.json: namespaces, id maps, devices, seccomp and the rest."""

# ruff: noqa: RUF009  (req/opt/many return dataclasses.field() objects, as field() does)

from __future__ import annotations

from dataclasses import dataclass

from llmos.spec._node import (
    ABS_PATHS,
    INT64,
    STR,
    STR_MAP,
    STRS,
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
from llmos.spec.resources import Resources
from llmos.spec.tables import NAMESPACE_FLAGS, PROPAGATION_FLAGS

NAMESPACE_TYPES = tuple(NAMESPACE_FLAGS)

SECCOMP_ACTIONS = (
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
)
SECCOMP_ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
"""The actions that carry a return code; errnoRet on any other is an error (spec: MUST)."""

SECCOMP_OPERATORS = (
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
)
SECCOMP_ARCHES = (
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
)
SECCOMP_FLAGS = (
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
)
PERSONALITY_DOMAINS = ("LINUX", "LINUX32")
MEMORY_POLICY_MODES = (
    "MPOL_DEFAULT",
    "MPOL_BIND",
    "MPOL_INTERLEAVE",
    "MPOL_WEIGHTED_INTERLEAVE",
    "MPOL_PREFERRED",
    "MPOL_PREFERRED_MANY",
    "MPOL_LOCAL",
)
MEMORY_POLICY_FLAGS = ("MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES")
TIME_OFFSET_CLOCKS = ("boottime", "monotonic")


@dataclass(kw_only=True)
class Namespace(Node):
    """A namespace to create, or to join when ``path`` names an existing one."""

    type: str = req("type", Str(choices=NAMESPACE_TYPES, label="namespace"))
    path: str | None = opt("path", Str(absolute=True))


@dataclass(kw_only=True)
class IDMapping(Node):
    """``size`` ids from ``container_id`` inside map to ``host_id`` outside."""

    container_id: int = req("containerID", UINT32)
    host_id: int = req("hostID", UINT32)
    size: int = req("size", UINT32)


@dataclass(kw_only=True)
class TimeOffset(Node):
    """A time-namespace clock offset."""

    secs: int | None = opt("secs", INT64)
    nanosecs: int | None = opt("nanosecs", UINT32)


@dataclass(kw_only=True)
class Device(Node):
    """A device node to create in the container's /dev."""

    type: str = req("type", Str(choices=("c", "b", "u", "p"), label="device type"))
    path: str = req("path", Str(absolute=True))
    major: int | None = opt("major", INT64)
    minor: int | None = opt("minor", INT64)
    file_mode: int | None = opt("fileMode", Int(0, 0o7777, "a file mode from 0 to 0o7777"))
    uid: int | None = opt("uid", UINT32)
    gid: int | None = opt("gid", UINT32)

    def check(self, path: str) -> None:
        # A FIFO has no device number; every other kind needs both.
        if self.type != "p":
            for name, value in (("major", self.major), ("minor", self.minor)):
                if value is None:
                    raise SpecError(
                        f"{path}.{name}", f'is required for a device of type "{self.type}"'
                    )


@dataclass(kw_only=True)
class SeccompArg(Node):
    """A comparison on one syscall argument (``index`` 0-5)."""

    index: int = req("index", Int(0, 5, "an argument index from 0 to 5"))
    value: int = req("value", UINT64)
    value_two: int | None = opt("valueTwo", UINT64)
    op: str = req("op", Str(choices=SECCOMP_OPERATORS, label="operator"))


@dataclass(kw_only=True)
class SeccompSyscall(Node):
    """A rule: these syscalls (when all ``args`` match) get ``action``."""

    names: list[str] = req("names", ListOf(Str(nonempty=True), nonempty=True))
    action: str = req("action", Str(choices=SECCOMP_ACTIONS, label="seccomp action"))
    errno_ret: int | None = opt("errnoRet", UINT32)
    args: list[SeccompArg] = many("args", ListOf(Obj(SeccompArg), expected="a list of args"))

    def check(self, path: str) -> None:
        if self.errno_ret is not None and self.action not in SECCOMP_ERRNO_ACTIONS:
            raise SpecError(
                f"{path}.errnoRet",
                f"is only allowed with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {self.action}",
            )


@dataclass(kw_only=True)
class Seccomp(Node):
    """A seccomp profile: the default action and the rules that override it."""

    default_action: str = req("defaultAction", Str(choices=SECCOMP_ACTIONS, label="action"))
    default_errno_ret: int | None = opt("defaultErrnoRet", UINT32)
    architectures: list[str] = many(
        "architectures", ListOf(Str(choices=SECCOMP_ARCHES, label="architecture"))
    )
    flags: list[str] = many("flags", ListOf(Str(choices=SECCOMP_FLAGS, label="seccomp flag")))
    listener_path: str | None = opt("listenerPath", Str(absolute=True))
    listener_metadata: str | None = opt("listenerMetadata", STR)
    syscalls: list[SeccompSyscall] = many(
        "syscalls", ListOf(Obj(SeccompSyscall), expected="a list of syscall rules")
    )

    def check(self, path: str) -> None:
        if self.default_errno_ret is not None and self.default_action not in SECCOMP_ERRNO_ACTIONS:
            raise SpecError(
                f"{path}.defaultErrnoRet",
                f"is only allowed with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {self.default_action}",
            )


@dataclass(kw_only=True)
class Personality(Node):
    """The execution domain set with personality(2)."""

    domain: str = req("domain", Str(choices=PERSONALITY_DOMAINS, label="personality domain"))
    flags: list[str] = many("flags", STRS)


@dataclass(kw_only=True)
class IntelRdt(Node):
    """Intel RDT (resctrl) class of service and schemata."""

    clos_id: str | None = opt("closID", STR)
    l3_cache_schema: str | None = opt("l3CacheSchema", STR)
    mem_bw_schema: str | None = opt("memBwSchema", STR)
    schemata: list[str] = many("schemata", STRS)
    enable_monitoring: bool | None = opt("enableMonitoring", Bool())
    enable_cmt: bool | None = opt("enableCMT", Bool())
    enable_mbm: bool | None = opt("enableMBM", Bool())


@dataclass(kw_only=True)
class NetDevice(Node):
    """A host network device moved into the container (``name`` renames it there)."""

    name: str | None = opt("name", STR)


@dataclass(kw_only=True)
class MemoryPolicy(Node):
    """The NUMA memory policy set with set_mempolicy(2)."""

    mode: str = req("mode", Str(choices=MEMORY_POLICY_MODES, label="memory policy mode"))
    nodes: str | None = opt("nodes", STR)
    flags: list[str] = many(
        "flags", ListOf(Str(choices=MEMORY_POLICY_FLAGS, label="memory policy flag"))
    )


@dataclass(kw_only=True)
class Linux(Node):
    """``linux``: everything Linux-specific about the container."""

    namespaces: list[Namespace] = many(
        "namespaces", ListOf(Obj(Namespace), expected="a list of namespaces")
    )
    uid_mappings: list[IDMapping] = many(
        "uidMappings", ListOf(Obj(IDMapping), expected="a list of id mappings")
    )
    gid_mappings: list[IDMapping] = many(
        "gidMappings", ListOf(Obj(IDMapping), expected="a list of id mappings")
    )
    time_offsets: dict[str, TimeOffset] = many(
        "timeOffsets", MapOf(Obj(TimeOffset), keys=TIME_OFFSET_CLOCKS, label="clock")
    )
    devices: list[Device] = many("devices", ListOf(Obj(Device), expected="a list of devices"))
    cgroups_path: str | None = opt("cgroupsPath", STR)
    resources: Resources | None = opt("resources", Obj(Resources))
    intel_rdt: IntelRdt | None = opt("intelRdt", Obj(IntelRdt))
    sysctl: dict[str, str] = many("sysctl", STR_MAP)
    seccomp: Seccomp | None = opt("seccomp", Obj(Seccomp))
    rootfs_propagation: str | None = opt(
        "rootfsPropagation", Str(choices=tuple(PROPAGATION_FLAGS), label="propagation")
    )
    masked_paths: list[str] = many("maskedPaths", ABS_PATHS)
    readonly_paths: list[str] = many("readonlyPaths", ABS_PATHS)
    mount_label: str | None = opt("mountLabel", STR)
    personality: Personality | None = opt("personality", Obj(Personality))
    net_devices: dict[str, NetDevice] = many("netDevices", MapOf(Obj(NetDevice)))
    memory_policy: MemoryPolicy | None = opt("memoryPolicy", Obj(MemoryPolicy))

    def namespace(self, ns_type: str) -> Namespace | None:
        """The entry for one namespace type, if the container has it."""
        return next((ns for ns in self.namespaces if ns.type == ns_type), None)

    def check(self, path: str) -> None:
        seen: set[str] = set()
        for i, ns in enumerate(self.namespaces):
            if ns.type in seen:
                # The spec: a runtime MUST error when a namespace type appears twice.
                raise SpecError(f"{path}.namespaces[{i}].type", f'duplicate namespace "{ns.type}"')
            seen.add(ns.type)
