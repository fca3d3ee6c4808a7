"""Spec strings -> kernel numbers, as pure tables and functions.

The C executor decides nothing: everything it passes to a syscall is a number computed here
from the spec's strings (capability names, mount options, namespace types, device types), so
each conversion is unit-tested in Python, as crun does with its ``mount_flags`` table.
Numbers are the Linux UAPI values (linux/capability.h, linux/mount.h, linux/sched.h), which are
the same on every architecture llmos supports.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from llmos.spec.errors import SpecError

# --- capabilities (linux/capability.h) ----------------------------------------------------

CAPABILITIES: Final[Mapping[str, int]] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
CAP_LAST_CAP: Final = 40


def capability_number(name: str, path: str = "") -> int:
    """The bit number of a ``CAP_*`` name; unknown names are a SpecError naming them."""
    try:
        return CAPABILITIES[name]
    except KeyError:
        raise SpecError(path, f'unknown capability "{name}"') from None


def capability_mask(names: Iterable[str], path: str = "") -> int:
    """The 64-bit set (bit n = capability n) for capget/capset and the bounding-set loop."""
    mask = 0
    for i, name in enumerate(names):
        mask |= 1 << capability_number(name, f"{path}[{i}]" if path else "")
    return mask


# --- namespaces (linux/sched.h) -------------------------------------------------------------

CLONE_NEWTIME: Final = 0x00000080
CLONE_NEWNS: Final = 0x00020000
CLONE_NEWCGROUP: Final = 0x02000000
CLONE_NEWUTS: Final = 0x04000000
CLONE_NEWIPC: Final = 0x08000000
CLONE_NEWUSER: Final = 0x10000000
CLONE_NEWPID: Final = 0x20000000
CLONE_NEWNET: Final = 0x40000000

NAMESPACE_FLAGS: Final[Mapping[str, int]] = {
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "mount": CLONE_NEWNS,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "user": CLONE_NEWUSER,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}
"""OCI namespace type -> CLONE_NEW* flag (for clone3/unshare/setns)."""

NAMESPACE_PROC_NAMES: Final[Mapping[str, str]] = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
    "time": "time",
}
"""OCI namespace type -> file name under /proc/<pid>/ns/ (to join a running container)."""


def namespace_flag(ns_type: str, path: str = "") -> int:
    """The CLONE_NEW* flag of an OCI namespace type."""
    try:
        return NAMESPACE_FLAGS[ns_type]
    except KeyError:
        raise SpecError(path, f'unknown namespace "{ns_type}"') from None


# --- mounts (linux/mount.h) -----------------------------------------------------------------

MS_RDONLY: Final = 0x1
MS_NOSUID: Final = 0x2
MS_NODEV: Final = 0x4
MS_NOEXEC: Final = 0x8
MS_SYNCHRONOUS: Final = 0x10
MS_REMOUNT: Final = 0x20
MS_MANDLOCK: Final = 0x40
MS_DIRSYNC: Final = 0x80
MS_NOSYMFOLLOW: Final = 0x100
MS_NOATIME: Final = 0x400
MS_NODIRATIME: Final = 0x800
MS_BIND: Final = 0x1000
MS_MOVE: Final = 0x2000
MS_REC: Final = 0x4000
MS_SILENT: Final = 0x8000
MS_UNBINDABLE: Final = 0x20000
MS_PRIVATE: Final = 0x40000
MS_SLAVE: Final = 0x80000
MS_SHARED: Final = 0x100000
MS_RELATIME: Final = 0x200000
MS_I_VERSION: Final = 0x800000
MS_STRICTATIME: Final = 0x1000000
MS_LAZYTIME: Final = 0x2000000

MOUNT_ATTR_RDONLY: Final = 0x1
MOUNT_ATTR_NOSUID: Final = 0x2
MOUNT_ATTR_NODEV: Final = 0x4
MOUNT_ATTR_NOEXEC: Final = 0x8
MOUNT_ATTR__ATIME: Final = 0x70
MOUNT_ATTR_RELATIME: Final = 0x0
MOUNT_ATTR_NOATIME: Final = 0x10
MOUNT_ATTR_STRICTATIME: Final = 0x20
MOUNT_ATTR_NODIRATIME: Final = 0x80
MOUNT_ATTR_IDMAP: Final = 0x100000
MOUNT_ATTR_NOSYMFOLLOW: Final = 0x200000

# option -> (clear?, MS_* flag). "clear" options turn a flag off (rw, suid, ...).
MOUNT_FLAGS: Final[Mapping[str, tuple[bool, int]]] = {
    "defaults": (False, 0),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "nosuid": (False, MS_NOSUID),
    "suid": (True, MS_NOSUID),
    "nodev": (False, MS_NODEV),
    "dev": (True, MS_NODEV),
    "noexec": (False, MS_NOEXEC),
    "exec": (True, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS),
    "async": (True, MS_SYNCHRONOUS),
    "dirsync": (False, MS_DIRSYNC),
    "remount": (False, MS_REMOUNT),
    "mand": (False, MS_MANDLOCK),
    "nomand": (True, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME),
    "atime": (True, MS_NOATIME),
    "nodiratime": (False, MS_NODIRATIME),
    "diratime": (True, MS_NODIRATIME),
    "relatime": (False, MS_RELATIME),
    "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "nosymfollow": (False, MS_NOSYMFOLLOW),
    "symfollow": (True, MS_NOSYMFOLLOW),
    "silent": (False, MS_SILENT),
    "loud": (True, MS_SILENT),
    "iversion": (False, MS_I_VERSION),
    "noiversion": (True, MS_I_VERSION),
    "lazytime": (False, MS_LAZYTIME),
    "nolazytime": (True, MS_LAZYTIME),
    "bind": (False, MS_BIND),
    "rbind": (False, MS_BIND | MS_REC),
}

PROPAGATION_FLAGS: Final[Mapping[str, int]] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

# Recursive mount attributes (mount_setattr with AT_RECURSIVE), as runc and crun spell them:
# option -> (clear?, MOUNT_ATTR_* bit).
RECURSIVE_MOUNT_ATTRS: Final[Mapping[str, tuple[bool, int]]] = {
    "rro": (False, MOUNT_ATTR_RDONLY),
    "rrw": (True, MOUNT_ATTR_RDONLY),
    "rnosuid": (False, MOUNT_ATTR_NOSUID),
    "rsuid": (True, MOUNT_ATTR_NOSUID),
    "rnodev": (False, MOUNT_ATTR_NODEV),
    "rdev": (True, MOUNT_ATTR_NODEV),
    "rnoexec": (False, MOUNT_ATTR_NOEXEC),
    "rexec": (True, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, MOUNT_ATTR_NODIRATIME),
    "rrelatime": (False, MOUNT_ATTR_RELATIME),
    "rnorelatime": (True, MOUNT_ATTR_RELATIME),
    "rnoatime": (False, MOUNT_ATTR_NOATIME),
    "ratime": (True, MOUNT_ATTR_NOATIME),
    "rstrictatime": (False, MOUNT_ATTR_STRICTATIME),
    "rnostrictatime": (True, MOUNT_ATTR_STRICTATIME),
    "rnosymfollow": (False, MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, MOUNT_ATTR_NOSYMFOLLOW),
}
_ATIME_MODES: Final = frozenset({"rrelatime", "rnoatime", "rstrictatime"})


@dataclass(frozen=True)
class MountOptions:
    """One mount's options split into what each syscall needs.

    ``flags`` go to mount(2); ``clear_flags`` are the MS_* bits an option explicitly turned
    off (``rw``, ``suid``...), which matters when a bind mount is remounted and would otherwise
    keep the source's bits; each of ``propagation_flags`` is its own mount(2) call, in order;
    ``data`` is the filesystem-specific rest (``mode=755,size=65536k``); ``recursive_set`` and
    ``recursive_clear`` are MOUNT_ATTR_* bits for mount_setattr(AT_RECURSIVE).
    """

    flags: int = 0
    clear_flags: int = 0
    propagation_flags: tuple[int, ...] = ()
    data: str = ""
    recursive_set: int = 0
    recursive_clear: int = 0
    tmpcopyup: bool = False
    idmap: bool = False
    recursive_idmap: bool = False

    @property
    def bind(self) -> bool:
        """Whether this is a bind mount (``bind`` or ``rbind``)."""
        return bool(self.flags & MS_BIND)

    @property
    def recursive(self) -> bool:
        """Whether a bind mount takes the submounts too (``rbind``)."""
        return bool(self.flags & MS_REC)


def parse_mount_options(options: Iterable[str]) -> MountOptions:
    """Split OCI mount options into flags, propagation, recursive attributes and fs data.

    Later options win over earlier ones (``ro`` then ``rw`` leaves the mount writable), as
    with mount(8). Options llmos does not know are filesystem options and go to ``data``.
    """
    flags = clear = rec_set = rec_clear = 0
    propagation: list[int] = []
    data: list[str] = []
    tmpcopyup = idmap = ridmap = False
    for option in options:
        if option in MOUNT_FLAGS:
            is_clear, bit = MOUNT_FLAGS[option]
            if is_clear:
                flags &= ~bit
                clear |= bit
            else:
                flags |= bit
                clear &= ~bit
        elif option in PROPAGATION_FLAGS:
            propagation.append(PROPAGATION_FLAGS[option])
        elif option in RECURSIVE_MOUNT_ATTRS:
            is_clear, bit = RECURSIVE_MOUNT_ATTRS[option]
            if option in _ATIME_MODES:
                # The atime modes share one field; the kernel wants the whole field cleared
                # whenever a mode is set.
                rec_clear |= MOUNT_ATTR__ATIME
                rec_set = (rec_set & ~MOUNT_ATTR__ATIME) | bit
            elif is_clear:
                rec_set &= ~bit
                rec_clear |= bit
            else:
                rec_set |= bit
                rec_clear &= ~bit
        elif option == "tmpcopyup":
            tmpcopyup = True
        elif option == "idmap":
            idmap = True
        elif option == "ridmap":
            idmap = ridmap = True
        else:
            data.append(option)
    return MountOptions(
        flags=flags,
        clear_flags=clear,
        propagation_flags=tuple(propagation),
        data=",".join(data),
        recursive_set=rec_set,
        recursive_clear=rec_clear,
        tmpcopyup=tmpcopyup,
        idmap=idmap,
        recursive_idmap=ridmap,
    )


ROOTFS_PROPAGATION_DEFAULT: Final = MS_SLAVE | MS_REC
"""What "/" becomes when the spec says nothing: host mounts still reach the container, but
nothing the container mounts leaks back to the host (runc and crun do the same)."""


def rootfs_propagation_flags(value: str | None, path: str = "linux.rootfsPropagation") -> int:
    """The mount(2) flags that set the propagation of the container's "/" tree.

    Always recursive, as crun does: making only "/" private while its submounts stay shared
    with the host would let the container's mounts propagate out.
    """
    if not value:
        return ROOTFS_PROPAGATION_DEFAULT
    try:
        return PROPAGATION_FLAGS[value] | MS_REC
    except KeyError:
        raise SpecError(path, f'unknown propagation "{value}"') from None


# --- devices --------------------------------------------------------------------------------

DEVICE_FILE_TYPES: Final[Mapping[str, int]] = {
    "c": stat.S_IFCHR,
    "u": stat.S_IFCHR,  # "unbuffered" character device: a character device to mknod
    "b": stat.S_IFBLK,
    "p": stat.S_IFIFO,
}
"""OCI ``linux.devices[].type`` -> the S_IF* file type bits for mknod(2)."""


def device_file_type(dev_type: str, path: str = "") -> int:
    """The S_IF* bits of an OCI device type."""
    try:
        return DEVICE_FILE_TYPES[dev_type]
    except KeyError:
        raise SpecError(path, f'unknown device type "{dev_type}"') from None


def makedev(major: int, minor: int) -> int:
    """The dev_t for mknod(2), as glibc's makedev() encodes it."""
    return (
        ((major & 0xFFFFF000) << 32)
        | ((major & 0x00000FFF) << 8)
        | ((minor & 0xFFFFFF00) << 12)
        | (minor & 0x000000FF)
    )
