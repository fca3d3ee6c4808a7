"""Spec -> plan: every decision about a container, made in Python, as plain data.

The C executor (native/) carries a Plan out between clone and execve and decides nothing. So
everything that can be wrong about a config is found here, with the field named, before any
process exists; and tests inspect plans without root.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos.errors import ConfigError

# Namespace types (OCI names) -> CLONE_NEW* flags.
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

NAMESPACE_FLAGS: dict[str, int] = {
    "mount": CLONE_NEWNS,
    "cgroup": CLONE_NEWCGROUP,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "user": CLONE_NEWUSER,
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "time": CLONE_NEWTIME,
}

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20

PER_LINUX = 0x0000
PER_LINUX32 = 0x0008

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class MountStep:
    """One mount(2) the child performs; target is resolved inside the rootfs."""

    target: str
    source: str | None = None
    fstype: str | None = None
    flags: int = 0
    data: str | None = None
    propagation: int = 0
    remount_flags: int = 0
    is_file: bool = False


@dataclass(frozen=True)
class DeviceNode:
    path: str
    mode: int
    major: int
    minor: int
    uid: int = 0
    gid: int = 0
    bind: bool = False


@dataclass(frozen=True)
class Capabilities:
    bounding: int = 0
    effective: int = 0
    permitted: int = 0
    inheritable: int = 0
    ambient: int = 0


@dataclass
class Plan:
    """Everything the C executor needs, and nothing it has to decide."""

    argv: list[str]
    env: list[str]
    cwd: str = "/"
    exec_path: str | None = None
    umask: int | None = None
    clone_flags: int = 0
    join: list[tuple[str, int]] = field(default_factory=list)
    uid_map: str | None = None
    gid_map: str | None = None
    deny_setgroups: bool = False
    cgroup_v2_dir: str | None = None
    cgroup_procs: list[str] = field(default_factory=list)
    hostname: str | None = None
    domainname: str | None = None
    root_propagation: int = MS_REC | MS_SLAVE
    rootfs: str | None = None
    rootfs_mounts: list[MountStep] = field(default_factory=list)
    rootfs_mount_cwd: str | None = None
    mounts: list[MountStep] = field(default_factory=list)
    devices: list[DeviceNode] = field(default_factory=list)
    symlinks: list[tuple[str, str]] = field(default_factory=list)
    rootfs_propagation: int = 0
    masked_paths: list[str] = field(default_factory=list)
    readonly_paths: list[str] = field(default_factory=list)
    readonly_root: bool = False
    sysctls: list[tuple[str, str]] = field(default_factory=list)
    oom_score_adj: int | None = None
    rlimits: list[tuple[int, int, int]] = field(default_factory=list)
    personality: int = -1
    uid: int = 0
    gid: int = 0
    groups: list[int] = field(default_factory=list)
    capabilities: Capabilities | None = None
    no_new_privs: bool = False
    seccomp: bytes = b""
    seccomp_flags: int = 0
    stdio: tuple[int, int, int] = (-1, -1, -1)
    console_socket: str | None = None
    console_to_monitor: bool = False
    attach_socket: str | None = None
    console_size: tuple[int, int] = (0, 0)
    exec_fifo: str | None = None
    hooks_sync: bool = False
    loopback_up: bool = False
    preserve_fds: int = 0
    shim_path: str | None = None
    exit_file: str | None = None
    log_file: str | None = None
    join_pid: int = 0


@dataclass(frozen=True)
class Overlay:
    """An overlayfs root: read-only layer directories (topmost first) under a writable upper."""

    lower: Sequence[str]
    upper: str
    work: str


# Devices every container gets (the OCI runtime spec's list), as (path, major, minor).
DEFAULT_DEVICES: tuple[tuple[str, int, int], ...] = (
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
)

DEFAULT_SYMLINKS: tuple[tuple[str, str], ...] = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
)


def overlay_mounts(overlay: Overlay, target: str) -> tuple[list[MountStep], str | None]:
    """The overlay mount for the rootfs, keeping its option string within one page.

    The kernel copies at most a page of mount data. With many layers the absolute lowerdir
    paths exceed that, so when they share a parent directory the child first chdirs there and
    the paths become short relative ones (containerd does the same).
    """
    lower = list(overlay.lower)
    if not lower:
        raise ConfigError("overlay: at least one lower directory is needed")
    data = f"lowerdir={':'.join(lower)},upperdir={overlay.upper},workdir={overlay.work}"
    cwd: str | None = None
    if len(data) > 4000:
        common = os.path.commonpath([*lower, overlay.upper, overlay.work])
        rel = [os.path.relpath(p, common) for p in lower]
        data = (
            f"lowerdir={':'.join(rel)},upperdir={os.path.relpath(overlay.upper, common)},"
            f"workdir={os.path.relpath(overlay.work, common)}"
        )
        cwd = common
        if len(data) > 4000:
            raise ConfigError(f"overlay: {len(lower)} layers do not fit in one mount")
    return [MountStep(target=target, source="overlay", fstype="overlay", data=data)], cwd


def _get(d: Mapping[str, Any], key: str, default: Any = None) -> Any:
    v = d.get(key, default)
    return default if v is None else v


def plan_namespaces(linux: Mapping[str, Any]) -> tuple[int, list[tuple[str, int]]]:
    flags = 0
    join: list[tuple[str, int]] = []
    seen: set[str] = set()
    for i, ns in enumerate(_get(linux, "namespaces", [])):
        typ = ns.get("type")
        if typ not in NAMESPACE_FLAGS:
            raise ConfigError(f"linux.namespaces[{i}].type: unknown namespace {typ!r}")
        if typ in seen:
            raise ConfigError(f"linux.namespaces[{i}].type: namespace {typ!r} given twice")
        seen.add(typ)
        path = ns.get("path")
        if path:
            join.append((str(path), NAMESPACE_FLAGS[typ]))
        else:
            flags |= NAMESPACE_FLAGS[typ]
    return flags, join


def id_map_text(maps: Sequence[Mapping[str, Any]]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)


def plan_mount(
    index: int, m: Mapping[str, Any], bundle: Path, parse_options: Any
) -> list[MountStep]:
    """One OCI mount entry -> mount steps (a bind with flags becomes mount + remount)."""
    where = f"mounts[{index}]"
    dest = m.get("destination")
    if not isinstance(dest, str) or not dest.startswith("/"):
        raise ConfigError(f"{where}.destination: must be an absolute path, got {dest!r}")
    fstype = m.get("type") or None
    source = m.get("source")
    opts = parse_options(list(m.get("options") or []))
    # Each propagation option is its own mount(2) call; the last one is what stays.
    propagation = opts.propagation_flags[-1] if opts.propagation_flags else 0
    is_bind = fstype == "bind" or bool(opts.flags & MS_BIND)
    if is_bind:
        if not source:
            raise ConfigError(f"{where}.source: a bind mount needs a source")
        src = Path(source) if os.path.isabs(source) else bundle / source
        try:
            st = os.stat(src)
        except OSError as e:
            raise ConfigError(f"{where}.source: {src}: {e.strerror}") from None
        rec = opts.flags & MS_REC
        extra = opts.flags & ~(MS_BIND | MS_REC | MS_REMOUNT)
        return [
            MountStep(
                target=dest,
                source=str(src),
                fstype=None,
                flags=MS_BIND | rec,
                propagation=propagation,
                remount_flags=extra,
                is_file=not stat.S_ISDIR(st.st_mode),
            )
        ]
    return [
        MountStep(
            target=dest,
            source=source or fstype,
            fstype=fstype,
            flags=opts.flags,
            data=opts.data or None,
            propagation=propagation,
        )
    ]


@dataclass(frozen=True)
class CgroupHierarchy:
    """A cgroup mount as the host has it, to be recreated inside the container."""

    mountpoint: str  # e.g. /sys/fs/cgroup/cpu,cpuacct
    fstype: str  # cgroup or cgroup2
    options: str  # controllers for v1 (e.g. "cpu,cpuacct"), "" for cgroup2


def cgroup_mount_steps(dest: str, flags: int, hierarchies: Sequence[CgroupHierarchy]) -> list[
    MountStep
]:
    """The OCI `cgroup` mount, made for the host's layout.

    On a pure v2 host it is one cgroup2 mount. On v1 and hybrid hosts (like our development
    machines) a tmpfs holds one mount per hierarchy, as runc does; with a cgroup namespace each
    shows the container's own cgroup as its root. The tmpfs is made read-only last, once its
    mount points exist.
    """
    ro = flags & MS_RDONLY
    base = flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if any(h.fstype == "cgroup2" and h.mountpoint == "/sys/fs/cgroup" for h in hierarchies) or (
        not hierarchies
    ):
        return [MountStep(target=dest, source="cgroup", fstype="cgroup2", flags=flags)]
    steps = [
        MountStep(target=dest, source="tmpfs", fstype="tmpfs", flags=base, data="mode=755")
    ]
    for h in hierarchies:
        name = os.path.relpath(h.mountpoint, "/sys/fs/cgroup")
        if name.startswith("..") or "/" in name:
            continue
        steps.append(
            MountStep(
                target=f"{dest.rstrip('/')}/{name}",
                source="cgroup",
                fstype=h.fstype,
                flags=base | ro,
                data=h.options or None,
            )
        )
    if ro:
        steps.append(MountStep(target=dest, flags=MS_REMOUNT | MS_BIND | MS_RDONLY | base))
    return steps


def host_cgroup_hierarchies(mountinfo: str) -> list[CgroupHierarchy]:
    """Parse /proc/self/mountinfo for the cgroup mounts under /sys/fs/cgroup."""
    out: list[CgroupHierarchy] = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        rf = right.split()
        if len(fields) < 5 or len(rf) < 3:
            continue
        mountpoint, fstype, super_opts = fields[4], rf[0], rf[2]
        if fstype not in ("cgroup", "cgroup2") or not mountpoint.startswith("/sys/fs/cgroup"):
            continue
        opts = ""
        if fstype == "cgroup":
            known = [o for o in super_opts.split(",") if o not in ("rw", "ro")]
            opts = ",".join(o for o in known if "=" not in o or o.startswith("name="))
        out.append(CgroupHierarchy(mountpoint, fstype, opts))
    return out


@dataclass
class PlanContext:
    """Facts from outside the config that shape the plan (host, cgroup, files)."""

    bundle: Path
    overlay: Overlay | None = None
    cgroup_procs: Sequence[str] = ()
    cgroup_v2_dir: str | None = None
    cgroup_hierarchies: Sequence[CgroupHierarchy] = ()
    exec_fifo: str | None = None
    console_socket: str | None = None
    attach_socket: str | None = None  # a terminal held by llmos-shim, served here
    stdio: tuple[int, int, int] = (-1, -1, -1)
    preserve_fds: int = 0
    shim_path: str | None = None
    exit_file: str | None = None
    log_file: str | None = None
    seccomp: bytes = b""


def plan_container(config: Mapping[str, Any], ctx: PlanContext) -> Plan:
    """The whole container plan from a validated OCI config (as its JSON dict)."""
    from llmos.spec import tables

    process = _get(config, "process", {})
    linux = _get(config, "linux", {})
    root = _get(config, "root", {})
    if not process.get("args"):
        raise ConfigError("process.args: must be a non-empty list of strings")
    clone_flags, join = plan_namespaces(linux)
    user = _get(process, "user", {})
    env = list(_get(process, "env", []))
    if not any(e.startswith("PATH=") for e in env):
        env.append(f"PATH={DEFAULT_PATH}")
    plan = Plan(
        argv=list(process["args"]),
        env=env,
        cwd=_get(process, "cwd", "/"),
        clone_flags=clone_flags,
        join=join,
        uid=int(_get(user, "uid", 0)),
        gid=int(_get(user, "gid", 0)),
        groups=[int(g) for g in _get(user, "additionalGids", [])],
        umask=user.get("umask"),
        no_new_privs=bool(process.get("noNewPrivileges")),
        oom_score_adj=process.get("oomScoreAdj"),
        stdio=ctx.stdio,
        exec_fifo=ctx.exec_fifo,
        preserve_fds=ctx.preserve_fds,
        shim_path=ctx.shim_path,
        exit_file=ctx.exit_file,
        log_file=ctx.log_file,
        cgroup_procs=list(ctx.cgroup_procs),
        cgroup_v2_dir=ctx.cgroup_v2_dir,
        seccomp=ctx.seccomp,
    )
    if not plan.cwd.startswith("/"):
        raise ConfigError(f"process.cwd: must be an absolute path, got {plan.cwd!r}")
    if process.get("terminal"):
        if ctx.attach_socket:
            plan.console_to_monitor = True
            plan.attach_socket = ctx.attach_socket
        elif not ctx.console_socket:
            raise ConfigError("process.terminal: a terminal needs a console socket")
        else:
            plan.console_socket = ctx.console_socket
        size = _get(process, "consoleSize", {})
        plan.console_size = (int(size.get("height", 0)), int(size.get("width", 0)))
    if clone_flags & CLONE_NEWUTS:
        plan.hostname = config.get("hostname") or None
        plan.domainname = config.get("domainname") or None
    elif config.get("hostname"):
        raise ConfigError("hostname: setting a hostname needs a new uts namespace")
    if clone_flags & CLONE_NEWUSER:
        plan.uid_map = id_map_text(_get(linux, "uidMappings", []))
        plan.gid_map = id_map_text(_get(linux, "gidMappings", []))
        plan.deny_setgroups = False
    caps = process.get("capabilities")
    if caps is not None:
        plan.capabilities = Capabilities(
            bounding=tables.capability_mask(_get(caps, "bounding", []), "process.capabilities"),
            effective=tables.capability_mask(_get(caps, "effective", []), "process.capabilities"),
            permitted=tables.capability_mask(_get(caps, "permitted", []), "process.capabilities"),
            inheritable=tables.capability_mask(
                _get(caps, "inheritable", []), "process.capabilities"
            ),
            ambient=tables.capability_mask(_get(caps, "ambient", []), "process.capabilities"),
        )
    plan.rlimits = plan_rlimits(_get(process, "rlimits", []))
    pers = linux.get("personality")
    if pers:
        domain = pers.get("domain")
        if domain not in ("LINUX", "LINUX32"):
            raise ConfigError(f"linux.personality.domain: unsupported {domain!r}")
        plan.personality = PER_LINUX32 if domain == "LINUX32" else PER_LINUX
    plan.sysctls = [(k.replace(".", "/"), str(v)) for k, v in _get(linux, "sysctl", {}).items()]

    if clone_flags & CLONE_NEWNS or any(t == CLONE_NEWNS for _, t in join):
        rootfs = root.get("path")
        if not rootfs:
            raise ConfigError("root.path: a mount namespace needs a root filesystem")
        rootfs_path = Path(rootfs) if os.path.isabs(rootfs) else ctx.bundle / rootfs
        if not rootfs_path.is_dir():
            raise ConfigError(f"root.path: {rootfs_path} is not a directory")
        plan.rootfs = str(rootfs_path.resolve())
        plan.readonly_root = bool(root.get("readonly"))
        if ctx.overlay is not None:
            plan.rootfs_mounts, plan.rootfs_mount_cwd = overlay_mounts(ctx.overlay, plan.rootfs)
        plan.rootfs_propagation = tables.rootfs_propagation_flags(linux.get("rootfsPropagation"))
        if plan.rootfs_propagation:
            plan.root_propagation = plan.rootfs_propagation
        for i, m in enumerate(_get(config, "mounts", [])):
            if m.get("type") == "cgroup":
                opts = tables.parse_mount_options(list(m.get("options") or []))
                plan.mounts.extend(
                    cgroup_mount_steps(m["destination"], opts.flags, ctx.cgroup_hierarchies)
                )
            else:
                plan.mounts.extend(plan_mount(i, m, ctx.bundle, tables.parse_mount_options))
        plan.devices, plan.symlinks = plan_devices(linux, bool(clone_flags & CLONE_NEWUSER))
        if any(m.target == "/proc" for m in plan.mounts):
            plan.symlinks.append(("/proc/kcore", "/dev/core"))
        plan.masked_paths = list(_get(linux, "maskedPaths", []))
        plan.readonly_paths = list(_get(linux, "readonlyPaths", []))
    return plan


def plan_devices(
    linux: Mapping[str, Any], userns: bool
) -> tuple[list[DeviceNode], list[tuple[str, str]]]:
    """The spec's devices plus the defaults every container must have.

    In a user namespace mknod is not allowed, so the host's nodes are bind-mounted instead.
    """
    from llmos.spec import tables

    devices: dict[str, DeviceNode] = {}
    for path, major, minor in DEFAULT_DEVICES:
        devices[path] = DeviceNode(path, stat.S_IFCHR | 0o666, major, minor, bind=userns)
    for i, d in enumerate(_get(linux, "devices", [])):
        path = d.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError(f"linux.devices[{i}].path: must be an absolute path")
        ftype = tables.device_file_type(d.get("type", ""), f"linux.devices[{i}].type")
        mode = d.get("fileMode")
        perm = 0o666 if mode is None else int(mode) & 0o7777
        devices[path] = DeviceNode(
            path,
            ftype | perm,
            int(d.get("major", 0)),
            int(d.get("minor", 0)),
            int(d.get("uid") or 0),
            int(d.get("gid") or 0),
            bind=userns,
        )
    return list(devices.values()), list(DEFAULT_SYMLINKS)


def plan_rlimits(rlimits: Sequence[Mapping[str, Any]]) -> list[tuple[int, int, int]]:
    from llmos.spec.rlimits import rlimit_number

    out = []
    for i, r in enumerate(rlimits):
        number = rlimit_number(str(r.get("type")), f"process.rlimits[{i}].type")
        soft, hard = int(r.get("soft", 0)), int(r.get("hard", 0))
        if soft > hard:
            raise ConfigError(
                f"process.rlimits[{i}]: soft limit {soft} is above the hard limit {hard}"
            )
        out.append((number, soft, hard))
    return out
