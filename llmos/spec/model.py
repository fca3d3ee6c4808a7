"""The OCI runtime-spec config.json (versions 1.0 to 1.3) as typed, checked dataclasses.

``Spec.from_dict`` checks every field the spec defines for Linux and raises ``SpecError`` with
the JSON path of the first bad field; ``to_dict`` writes it back. Keys the model does not know
(extensions, other platforms' objects) are kept in each object's ``extra`` and written back
unchanged. Output follows Go's ``omitempty``, as runc's does: unset optional fields, empty
lists and maps, and false booleans that default to false are left out.
"""

# ruff: noqa: RUF009  (req/opt/many/obj return dataclasses.field() objects, as field() does)

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Self

from llmos.spec._node import (
    INT32,
    STR,
    STR_MAP,
    STRS,
    UINT32,
    UINT64,
    Bool,
    Int,
    ListOf,
    Node,
    Obj,
    Str,
    many,
    obj,
    opt,
    req,
)
from llmos.spec.errors import SpecError
from llmos.spec.linux import (
    Device,
    IDMapping,
    IntelRdt,
    Linux,
    MemoryPolicy,
    Namespace,
    NetDevice,
    Personality,
    Seccomp,
    SeccompArg,
    SeccompSyscall,
    TimeOffset,
)
from llmos.spec.resources import (
    CPU,
    BlockIO,
    DeviceCgroup,
    HugepageLimit,
    InterfacePriority,
    Memory,
    Network,
    Pids,
    Rdma,
    Resources,
    ThrottleDevice,
    WeightDevice,
)
from llmos.spec.rlimits import RLIMITS
from llmos.spec.tables import CAPABILITIES

OCI_VERSION = "1.3.0"
"""The spec version llmos writes."""

SUPPORTED_VERSIONS = "1.0.x to 1.3.x"
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$"
)

HOOK_KINDS = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)
"""The hook lists in config.json, in the order the lifecycle reaches them."""

SCHEDULER_POLICIES = (
    "SCHED_OTHER",
    "SCHED_FIFO",
    "SCHED_RR",
    "SCHED_BATCH",
    "SCHED_ISO",
    "SCHED_IDLE",
    "SCHED_DEADLINE",
)
SCHEDULER_FLAGS = (
    "SCHED_FLAG_RESET_ON_FORK",
    "SCHED_FLAG_RECLAIM",
    "SCHED_FLAG_DL_OVERRUN",
    "SCHED_FLAG_KEEP_POLICY",
    "SCHED_FLAG_KEEP_PARAMS",
    "SCHED_FLAG_UTIL_CLAMP_MIN",
    "SCHED_FLAG_UTIL_CLAMP_MAX",
)
IOPRIO_CLASSES = ("IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE")


def check_version(version: str, path: str = "ociVersion") -> tuple[int, int, int]:
    """Parse ``ociVersion`` and refuse versions llmos does not implement (1.0.x to 1.3.x)."""
    m = _SEMVER.match(version)
    if not m:
        raise SpecError(path, f'must be a semantic version like "1.2.0", not "{version}"')
    major, minor, patch = (int(g) for g in m.groups())
    if major != 1 or minor > 3:
        raise SpecError(
            path, f'unsupported version "{version}" (llmos supports {SUPPORTED_VERSIONS})'
        )
    return major, minor, patch


def _env_entry(value: str) -> str | None:
    # The same rules runc applies before execve: "KEY=value", a non-empty KEY, no NUL.
    if "=" not in value:
        return f'must be "KEY=value", not "{value}"'
    if value.startswith("="):
        return f'has an empty variable name: "{value}"'
    if "\0" in value:
        return "must not contain a NUL byte"
    return None


_CPU_LIST = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def _cpu_list(value: str) -> str | None:
    if value and not _CPU_LIST.match(value):
        return f'must be a CPU list like "0-3,7", not "{value}"'
    return None


ENV = ListOf(Str(check=_env_entry, expected='a "KEY=value" string'))
CAP_NAMES = ListOf(Str(choices=CAPABILITIES, label="capability"))


@dataclass(kw_only=True)
class ConsoleSize(Node):
    """The initial terminal size when ``process.terminal`` is true."""

    height: int = req("height", UINT64)
    width: int = req("width", UINT64)


@dataclass(kw_only=True)
class User(Node):
    """Who the process runs as, in the container's user namespace."""

    uid: int = req("uid", UINT32, default=0)
    gid: int = req("gid", UINT32, default=0)
    umask: int | None = opt("umask", Int(0, 0o777, "a umask from 0 to 0o777"))
    additional_gids: list[int] = many("additionalGids", ListOf(UINT32))


@dataclass(kw_only=True)
class Capabilities(Node):
    """The five capability sets, as ``CAP_*`` names."""

    bounding: list[str] = many("bounding", CAP_NAMES)
    effective: list[str] = many("effective", CAP_NAMES)
    inheritable: list[str] = many("inheritable", CAP_NAMES)
    permitted: list[str] = many("permitted", CAP_NAMES)
    ambient: list[str] = many("ambient", CAP_NAMES)


@dataclass(kw_only=True)
class Rlimit(Node):
    """One setrlimit(2) limit; values are unsigned 64-bit (2**64-1 is unlimited)."""

    type: str = req("type", Str(choices=RLIMITS, label="rlimit"))
    soft: int = req("soft", UINT64)
    hard: int = req("hard", UINT64)

    def check(self, path: str) -> None:
        # setrlimit(2) refuses this with a bare EINVAL; say which limit is wrong instead.
        if self.soft > self.hard:
            raise SpecError(
                f"{path}.soft", f"{self.type} soft limit {self.soft} exceeds hard limit {self.hard}"
            )


@dataclass(kw_only=True)
class IOPriority(Node):
    """The I/O scheduling class and level set with ioprio_set(2)."""

    class_: str = req("class", Str(choices=IOPRIO_CLASSES, label="I/O priority class"))
    priority: int | None = opt("priority", Int(0, 7, "a priority from 0 to 7"))


@dataclass(kw_only=True)
class Scheduler(Node):
    """The CPU scheduling policy set with sched_setattr(2)."""

    policy: str = req("policy", Str(choices=SCHEDULER_POLICIES, label="scheduler policy"))
    nice: int | None = opt("nice", Int(-20, 19, "a nice value from -20 to 19"))
    priority: int | None = opt("priority", INT32)
    flags: list[str] = many("flags", ListOf(Str(choices=SCHEDULER_FLAGS, label="scheduler flag")))
    runtime: int | None = opt("runtime", UINT64)
    deadline: int | None = opt("deadline", UINT64)
    period: int | None = opt("period", UINT64)


@dataclass(kw_only=True)
class ExecCPUAffinity(Node):
    """CPUs for ``exec``'d processes: before (``initial``) and after joining the cgroup."""

    initial: str | None = opt("initial", Str(check=_cpu_list))
    final: str | None = opt("final", Str(check=_cpu_list))


@dataclass(kw_only=True)
class Process(Node):
    """``process``: what runs in the container and with which privileges."""

    terminal: bool = opt("terminal", Bool(omit_false=True), default=False)
    console_size: ConsoleSize | None = opt("consoleSize", Obj(ConsoleSize))
    user: User = obj("user", User)
    args: list[str] = req("args", ListOf(Str(), nonempty=True))
    env: list[str] = many("env", ENV)
    cwd: str = req("cwd", Str(absolute=True), default="/")
    capabilities: Capabilities | None = opt("capabilities", Obj(Capabilities))
    rlimits: list[Rlimit] = many("rlimits", ListOf(Obj(Rlimit), expected="a list of rlimits"))
    no_new_privileges: bool = opt("noNewPrivileges", Bool(omit_false=True), default=False)
    apparmor_profile: str | None = opt("apparmorProfile", STR)
    oom_score_adj: int | None = opt("oomScoreAdj", Int(-1000, 1000, "a number from -1000 to 1000"))
    selinux_label: str | None = opt("selinuxLabel", STR)
    io_priority: IOPriority | None = opt("ioPriority", Obj(IOPriority))
    scheduler: Scheduler | None = opt("scheduler", Obj(Scheduler))
    exec_cpu_affinity: ExecCPUAffinity | None = opt("execCPUAffinity", Obj(ExecCPUAffinity))

    def check(self, path: str) -> None:
        seen: set[str] = set()
        for i, rl in enumerate(self.rlimits):
            if rl.type in seen:
                # The spec: a runtime MUST error on duplicate rlimit types.
                raise SpecError(f"{path}.rlimits[{i}].type", f'duplicate rlimit "{rl.type}"')
            seen.add(rl.type)


@dataclass(kw_only=True)
class Root(Node):
    """``root``: the container's root filesystem, relative to the bundle or absolute."""

    path: str = req("path", Str(nonempty=True))
    readonly: bool = opt("readonly", Bool(omit_false=True), default=False)


@dataclass(kw_only=True)
class Mount(Node):
    """One entry of ``mounts``, mounted in order after the root filesystem."""

    destination: str = req("destination", Str(absolute=True))
    type: str | None = opt("type", STR)
    source: str | None = opt("source", STR)
    options: list[str] = many("options", STRS)
    uid_mappings: list[IDMapping] = many(
        "uidMappings", ListOf(Obj(IDMapping), expected="a list of id mappings")
    )
    gid_mappings: list[IDMapping] = many(
        "gidMappings", ListOf(Obj(IDMapping), expected="a list of id mappings")
    )


@dataclass(kw_only=True)
class Hook(Node):
    """A program run at a lifecycle point, with the container state on its stdin."""

    path: str = req("path", Str(absolute=True))
    args: list[str] = many("args", STRS)
    env: list[str] = many("env", ENV)
    timeout: int | None = opt("timeout", Int(1, 2**31 - 1, "a positive number of seconds"))


HOOKS = ListOf(Obj(Hook), expected="a list of hooks")


@dataclass(kw_only=True)
class Hooks(Node):
    """``hooks``: the six hook lists."""

    prestart: list[Hook] = many("prestart", HOOKS)
    create_runtime: list[Hook] = many("createRuntime", HOOKS)
    create_container: list[Hook] = many("createContainer", HOOKS)
    start_container: list[Hook] = many("startContainer", HOOKS)
    poststart: list[Hook] = many("poststart", HOOKS)
    poststop: list[Hook] = many("poststop", HOOKS)

    def of_kind(self, kind: str) -> list[Hook]:
        """The hooks of one kind, by its config.json name (``"createRuntime"``)."""
        if kind not in HOOK_KINDS:
            raise SpecError("hooks", f'unknown hook kind "{kind}"')
        return list(getattr(self, re.sub(r"([A-Z])", r"_\1", kind).lower()))


@dataclass(kw_only=True)
class Spec(Node):
    """A whole config.json."""

    oci_version: str = req("ociVersion", STR, default=OCI_VERSION)
    process: Process | None = opt("process", Obj(Process))
    root: Root = req("root", Obj(Root))
    hostname: str | None = opt("hostname", STR)
    domainname: str | None = opt("domainname", STR)
    mounts: list[Mount] = many("mounts", ListOf(Obj(Mount), expected="a list of mounts"))
    hooks: Hooks | None = opt("hooks", Obj(Hooks))
    annotations: dict[str, str] = many("annotations", STR_MAP)
    linux: Linux | None = opt("linux", Obj(Linux))

    @classmethod
    def from_dict(cls, data: object, path: str = "") -> Self:
        """Load and check a parsed config.json; raises SpecError naming the bad field."""
        if not isinstance(data, dict):
            raise SpecError(path, "config.json must hold a JSON object")
        # The version first: a config for another major version may differ everywhere.
        version = data.get("ociVersion")
        if not isinstance(version, str):
            what = "missing" if version is None else "not a string"
            raise SpecError("ociVersion", f'is {what}; it must be a version like "1.2.0"')
        check_version(version)
        return cls.from_json(data, path)

    def check(self, path: str) -> None:
        check_version(self.oci_version)
        namespaces = {ns.type for ns in self.linux.namespaces} if self.linux else set()
        # The spec: setting these without a UTS namespace of the container's own is an error
        # (they would rename the host).
        for key, value in (("hostname", self.hostname), ("domainname", self.domainname)):
            if value and "uts" not in namespaces:
                raise SpecError(key, "needs a uts namespace in linux.namespaces")
        if "" in self.annotations:
            raise SpecError('annotations[""]', "an annotation needs a non-empty key")

    def to_json(self, *, indent: int | None = 2) -> str:
        """config.json text (what ``llmos runtime spec`` writes)."""
        return json.dumps(self.to_dict(), indent=indent) + "\n"


def load_spec(path: str | os.PathLike[str]) -> Spec:
    """Read and check a config.json file."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise SpecError("", f"cannot read {os.fspath(path)}: {e.strerror}") from e
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError("", f"{os.fspath(path)} is not valid JSON: {e}") from e
    return Spec.from_dict(data)


__all__ = [
    "CPU",
    "HOOK_KINDS",
    "OCI_VERSION",
    "BlockIO",
    "Capabilities",
    "ConsoleSize",
    "Device",
    "DeviceCgroup",
    "ExecCPUAffinity",
    "Hook",
    "Hooks",
    "HugepageLimit",
    "IDMapping",
    "IOPriority",
    "IntelRdt",
    "InterfacePriority",
    "Linux",
    "Memory",
    "MemoryPolicy",
    "Mount",
    "Namespace",
    "NetDevice",
    "Network",
    "Personality",
    "Pids",
    "Process",
    "Rdma",
    "Resources",
    "Rlimit",
    "Root",
    "Scheduler",
    "Seccomp",
    "SeccompArg",
    "SeccompSyscall",
    "Spec",
    "ThrottleDevice",
    "TimeOffset",
    "User",
    "WeightDevice",
    "check_version",
    "load_spec",
]
