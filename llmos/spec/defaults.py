"""The config llmos gives a container when the user says nothing: Docker's defaults.

``default_spec`` is what ``llmos runtime spec`` writes (like ``runc spec``) and what the engine
starts from. It follows Docker rather than runc where they differ, because users expect a
container to behave as under Docker: the 14 default capabilities, the masked and read-only
/proc and /sys paths, Docker's seccomp allowlist, the device cgroup allowlist,
no_new_privileges, and a writable root filesystem.
"""

from __future__ import annotations

import copy
import glob
import os
from collections.abc import Sequence
from typing import Final

from llmos.spec.linux import Device, IDMapping, Linux, Namespace
from llmos.spec.model import OCI_VERSION, Capabilities, Mount, Process, Rlimit, Root, Spec, User
from llmos.spec.resources import DeviceCgroup, Resources
from llmos.spec.rlimits import check_rlimits
from llmos.spec.seccomp_default import docker_default_seccomp

DEFAULT_CAPABILITIES: Final[tuple[str, ...]] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
"""Docker's default capabilities, in Docker's order."""

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEFAULT_MASKED_PATHS: Final[tuple[str, ...]] = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
)
"""Docker's masked paths: host information and knobs a container should not see."""

DEFAULT_READONLY_PATHS: Final[tuple[str, ...]] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)
"""Docker's read-only paths: host-wide kernel settings reachable through /proc."""

DEFAULT_NAMESPACES: Final[tuple[str, ...]] = ("pid", "network", "ipc", "uts", "mount", "cgroup")

DEFAULT_MOUNTS: Final[tuple[Mount, ...]] = (
    Mount(destination="/proc", type="proc", source="proc", options=["nosuid", "noexec", "nodev"]),
    Mount(
        destination="/dev",
        type="tmpfs",
        source="tmpfs",
        options=["nosuid", "strictatime", "mode=755", "size=65536k"],
    ),
    Mount(
        destination="/dev/pts",
        type="devpts",
        source="devpts",
        options=["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    ),
    Mount(
        destination="/sys",
        type="sysfs",
        source="sysfs",
        options=["nosuid", "noexec", "nodev", "ro"],
    ),
    Mount(
        destination="/sys/fs/cgroup",
        type="cgroup",
        source="cgroup",
        options=["ro", "nosuid", "noexec", "nodev"],
    ),
    Mount(
        destination="/dev/mqueue",
        type="mqueue",
        source="mqueue",
        options=["nosuid", "noexec", "nodev"],
    ),
    Mount(
        destination="/dev/shm",
        type="tmpfs",
        source="shm",
        options=["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    ),
)
"""Docker's standard mounts, in Docker's order (/dev/shm at Docker's 64 MiB)."""


def _char(path: str, major: int, minor: int) -> Device:
    return Device(type="c", path=path, major=major, minor=minor, file_mode=0o666, uid=0, gid=0)


DEFAULT_DEVICES: Final[tuple[Device, ...]] = (
    _char("/dev/null", 1, 3),
    _char("/dev/zero", 1, 5),
    _char("/dev/full", 1, 7),
    _char("/dev/random", 1, 8),
    _char("/dev/urandom", 1, 9),
    _char("/dev/tty", 5, 0),
)
"""The device nodes every container gets (the runtime spec's list); /dev/console and
/dev/ptmx come from the terminal and devpts instead."""

DEV_SYMLINKS: Final[tuple[tuple[str, str], ...]] = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
    ("/proc/kcore", "/dev/core"),
)
"""(target, link) symlinks every /dev gets; /dev/core only where /proc/kcore exists."""


def _rule(
    allow: bool, type_: str | None, major: int | None, minor: int | None, access: str
) -> DeviceCgroup:
    return DeviceCgroup(allow=allow, type=type_, major=major, minor=minor, access=access)


DEFAULT_DEVICE_CGROUP_RULES: Final[tuple[DeviceCgroup, ...]] = (
    _rule(False, None, None, None, "rwm"),  # deny everything, then allow:
    _rule(True, "c", None, None, "m"),  # mknod of any char device (it is useless without rw)
    _rule(True, "b", None, None, "m"),  # and any block device
    _rule(True, "c", 1, 3, "rwm"),  # /dev/null
    _rule(True, "c", 1, 5, "rwm"),  # /dev/zero
    _rule(True, "c", 1, 7, "rwm"),  # /dev/full
    _rule(True, "c", 1, 8, "rwm"),  # /dev/random
    _rule(True, "c", 1, 9, "rwm"),  # /dev/urandom
    _rule(True, "c", 5, 0, "rwm"),  # /dev/tty
    _rule(True, "c", 5, 1, "rwm"),  # /dev/console
    _rule(True, "c", 5, 2, "rwm"),  # /dev/ptmx
    _rule(True, "c", 136, None, "rwm"),  # /dev/pts/*
)
"""Docker's device cgroup allowlist with the entries runc appends (mknod, pts, ptmx)."""

DEFAULT_RLIMITS: Final[tuple[Rlimit, ...]] = (Rlimit(type="RLIMIT_NOFILE", soft=1024, hard=1024),)


def default_masked_paths() -> list[str]:
    """Docker's masked paths plus this host's per-CPU thermal_throttle directories.

    Docker masks those too (GHSA-6fw5-f8r9-fgfm); they only exist on some hosts.
    """
    paths = list(DEFAULT_MASKED_PATHS)
    paths += sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle"))
    return paths


def _rootless(spec: Spec) -> None:
    """Adapt a spec for an unprivileged user, the way ``runc spec --rootless`` does."""
    linux = spec.linux
    assert linux is not None
    # No network namespace (nothing could configure it) and a user namespace mapping the
    # caller to root.
    linux.namespaces = [ns for ns in linux.namespaces if ns.type not in ("network", "user")]
    linux.namespaces.append(Namespace(type="user"))
    linux.uid_mappings = [IDMapping(container_id=0, host_id=os.geteuid(), size=1)]
    linux.gid_mappings = [IDMapping(container_id=0, host_id=os.getegid(), size=1)]
    mounts: list[Mount] = []
    for m in spec.mounts:
        if m.destination == "/sys":
            # sysfs cannot be mounted without owning the network namespace: bind the host's.
            mounts.append(
                Mount(
                    destination="/sys",
                    type="none",
                    source="/sys",
                    options=["rbind", "nosuid", "noexec", "nodev", "ro"],
                )
            )
            continue
        # Only the mapped ids exist; gid=5 and friends would fail.
        m.options = [o for o in m.options if not o.startswith(("gid=", "uid="))]
        mounts.append(m)
    spec.mounts = mounts
    linux.resources = None  # an unprivileged user has no cgroup to write limits to


def default_spec(
    args: Sequence[str] = ("sh",), *, terminal: bool = False, rootless: bool = False
) -> Spec:
    """A complete config.json for running ``args`` with Docker's defaults.

    ``rootfs`` (relative to the bundle) is the root filesystem, writable as in Docker.
    ``rootless`` adapts it for an unprivileged caller (user namespace, no network namespace,
    /sys bound from the host, no cgroup limits), like ``runc spec --rootless``.
    """
    caps = list(DEFAULT_CAPABILITIES)
    env = [f"PATH={DEFAULT_PATH}"]
    if terminal:
        env.append("TERM=xterm")
    process = Process(
        terminal=terminal,
        user=User(uid=0, gid=0),
        args=list(args),
        env=env,
        cwd="/",
        capabilities=Capabilities(bounding=caps, effective=list(caps), permitted=list(caps)),
        # Our own default is clamped: a host with a lower hard limit still runs containers.
        rlimits=check_rlimits(copy.deepcopy(list(DEFAULT_RLIMITS)), clamp=True),
        no_new_privileges=True,
    )
    linux = Linux(
        namespaces=[Namespace(type=t) for t in DEFAULT_NAMESPACES],
        masked_paths=default_masked_paths(),
        readonly_paths=list(DEFAULT_READONLY_PATHS),
        resources=Resources(devices=copy.deepcopy(list(DEFAULT_DEVICE_CGROUP_RULES))),
        seccomp=docker_default_seccomp(caps),
    )
    spec = Spec(
        oci_version=OCI_VERSION,
        process=process,
        root=Root(path="rootfs", readonly=False),
        hostname="llmos",
        mounts=copy.deepcopy(list(DEFAULT_MOUNTS)),
        linux=linux,
    )
    if rootless:
        _rootless(spec)
    return spec
