"""Spec strings -> kernel numbers."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from llmos.spec import (
    CAPABILITIES,
    NAMESPACE_FLAGS,
    MountOptions,
    SpecError,
    capability_mask,
    capability_number,
    device_file_type,
    makedev,
    namespace_flag,
    parse_mount_options,
    rootfs_propagation_flags,
)
from llmos.spec import tables as t

CAPABILITY_HEADER = Path("/usr/include/linux/capability.h")


def test_all_41_capabilities_are_numbered_0_to_40() -> None:
    assert len(CAPABILITIES) == 41
    assert sorted(CAPABILITIES.values()) == list(range(41))
    assert capability_number("CAP_CHOWN") == 0
    assert capability_number("CAP_SYS_ADMIN") == 21
    assert capability_number("CAP_SYS_RESOURCE") == 24
    assert capability_number("CAP_CHECKPOINT_RESTORE") == t.CAP_LAST_CAP == 40


@pytest.mark.skipif(not CAPABILITY_HEADER.exists(), reason="no kernel headers")
def test_capabilities_match_the_kernel_header() -> None:
    found = dict(
        (name, int(num))
        for name, num in re.findall(r"#define\s+(CAP_\w+)\s+(\d+)\b", CAPABILITY_HEADER.read_text())
    )
    assert found == dict(CAPABILITIES)


def test_unknown_capability_is_named() -> None:
    with pytest.raises(SpecError) as err:
        capability_number("CAP_FLY", "process.capabilities.bounding[2]")
    assert str(err.value) == 'process.capabilities.bounding[2]: unknown capability "CAP_FLY"'


def test_capability_mask() -> None:
    assert capability_mask([]) == 0
    assert capability_mask(["CAP_CHOWN", "CAP_KILL", "CAP_CHECKPOINT_RESTORE"]) == (
        1 | 1 << 5 | 1 << 40
    )
    with pytest.raises(SpecError, match=r'^process.capabilities\[1\]: unknown capability "X"'):
        capability_mask(["CAP_KILL", "X"], "process.capabilities")


def test_namespace_flags() -> None:
    # linux/sched.h
    assert namespace_flag("pid") == 0x20000000
    assert namespace_flag("network") == 0x40000000
    assert namespace_flag("mount") == 0x00020000
    assert namespace_flag("ipc") == 0x08000000
    assert namespace_flag("uts") == 0x04000000
    assert namespace_flag("user") == 0x10000000
    assert namespace_flag("cgroup") == 0x02000000
    assert namespace_flag("time") == 0x00000080
    assert set(NAMESPACE_FLAGS) == set(t.NAMESPACE_PROC_NAMES)
    with pytest.raises(SpecError, match=r'^linux\.namespaces\[0\]\.type: unknown namespace "x"'):
        namespace_flag("x", "linux.namespaces[0].type")


@pytest.mark.parametrize(
    ("option", "flag"),
    [
        ("ro", t.MS_RDONLY),
        ("nosuid", t.MS_NOSUID),
        ("nodev", t.MS_NODEV),
        ("noexec", t.MS_NOEXEC),
        ("sync", t.MS_SYNCHRONOUS),
        ("remount", t.MS_REMOUNT),
        ("mand", t.MS_MANDLOCK),
        ("dirsync", t.MS_DIRSYNC),
        ("nosymfollow", t.MS_NOSYMFOLLOW),
        ("noatime", t.MS_NOATIME),
        ("nodiratime", t.MS_NODIRATIME),
        ("bind", t.MS_BIND),
        ("rbind", t.MS_BIND | t.MS_REC),
        ("silent", t.MS_SILENT),
        ("relatime", t.MS_RELATIME),
        ("iversion", t.MS_I_VERSION),
        ("strictatime", t.MS_STRICTATIME),
        ("lazytime", t.MS_LAZYTIME),
    ],
)
def test_setting_options(option: str, flag: int) -> None:
    opts = parse_mount_options([option])
    assert opts.flags == flag
    assert opts.clear_flags == 0 and opts.data == ""


@pytest.mark.parametrize(
    ("option", "flag"),
    [
        ("rw", t.MS_RDONLY),
        ("suid", t.MS_NOSUID),
        ("dev", t.MS_NODEV),
        ("exec", t.MS_NOEXEC),
        ("async", t.MS_SYNCHRONOUS),
        ("nomand", t.MS_MANDLOCK),
        ("atime", t.MS_NOATIME),
        ("diratime", t.MS_NODIRATIME),
        ("norelatime", t.MS_RELATIME),
        ("nostrictatime", t.MS_STRICTATIME),
        ("symfollow", t.MS_NOSYMFOLLOW),
        ("loud", t.MS_SILENT),
        ("noiversion", t.MS_I_VERSION),
        ("nolazytime", t.MS_LAZYTIME),
    ],
)
def test_clearing_options(option: str, flag: int) -> None:
    opts = parse_mount_options([option])
    assert opts.flags == 0
    assert opts.clear_flags == flag


def test_kernel_mount_flag_values() -> None:
    # Spot checks against the values in linux/mount.h (and Python's os module).
    assert t.MS_RDONLY == os.ST_RDONLY == 1
    assert t.MS_NOSUID == os.ST_NOSUID == 2
    assert (t.MS_BIND, t.MS_REC, t.MS_PRIVATE, t.MS_SLAVE, t.MS_SHARED) == (
        4096,
        16384,
        1 << 18,
        1 << 19,
        1 << 20,
    )


def test_later_options_win() -> None:
    assert parse_mount_options(["ro", "rw"]).flags == 0
    assert parse_mount_options(["ro", "rw"]).clear_flags == t.MS_RDONLY
    assert parse_mount_options(["rw", "ro"]).flags == t.MS_RDONLY
    assert parse_mount_options(["rw", "ro"]).clear_flags == 0


def test_docker_devpts_mount() -> None:
    opts = parse_mount_options(
        ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
    )
    assert opts == MountOptions(
        flags=t.MS_NOSUID | t.MS_NOEXEC, data="newinstance,ptmxmode=0666,mode=0620,gid=5"
    )


def test_bind_mount_with_propagation() -> None:
    opts = parse_mount_options(["rbind", "ro", "rprivate", "defaults"])
    assert opts.bind and opts.recursive
    assert opts.flags == t.MS_BIND | t.MS_REC | t.MS_RDONLY
    assert opts.propagation_flags == (t.MS_PRIVATE | t.MS_REC,)
    assert not parse_mount_options(["ro"]).bind


@pytest.mark.parametrize(
    ("option", "flag"),
    [
        ("private", t.MS_PRIVATE),
        ("rprivate", t.MS_PRIVATE | t.MS_REC),
        ("shared", t.MS_SHARED),
        ("rshared", t.MS_SHARED | t.MS_REC),
        ("slave", t.MS_SLAVE),
        ("rslave", t.MS_SLAVE | t.MS_REC),
        ("unbindable", t.MS_UNBINDABLE),
        ("runbindable", t.MS_UNBINDABLE | t.MS_REC),
    ],
)
def test_propagation_options(option: str, flag: int) -> None:
    opts = parse_mount_options([option])
    assert opts.propagation_flags == (flag,)
    assert opts.flags == 0


def test_several_propagation_changes_keep_their_order() -> None:
    opts = parse_mount_options(["shared", "rslave"])
    assert opts.propagation_flags == (t.MS_SHARED, t.MS_SLAVE | t.MS_REC)


def test_recursive_attributes() -> None:
    opts = parse_mount_options(["rbind", "rro", "rnosuid", "rnodev", "rnoexec", "rnosymfollow"])
    assert opts.recursive_set == (
        t.MOUNT_ATTR_RDONLY
        | t.MOUNT_ATTR_NOSUID
        | t.MOUNT_ATTR_NODEV
        | t.MOUNT_ATTR_NOEXEC
        | t.MOUNT_ATTR_NOSYMFOLLOW
    )
    assert opts.recursive_clear == 0
    opts = parse_mount_options(["rro", "rrw", "rdev", "rexec", "rsuid", "rdiratime"])
    assert opts.recursive_set == 0
    assert opts.recursive_clear == (
        t.MOUNT_ATTR_RDONLY
        | t.MOUNT_ATTR_NODEV
        | t.MOUNT_ATTR_NOEXEC
        | t.MOUNT_ATTR_NOSUID
        | t.MOUNT_ATTR_NODIRATIME
    )


def test_recursive_atime_modes_clear_the_whole_atime_field() -> None:
    opts = parse_mount_options(["rnoatime"])
    assert opts.recursive_set == t.MOUNT_ATTR_NOATIME
    assert opts.recursive_clear == t.MOUNT_ATTR__ATIME
    opts = parse_mount_options(["rnoatime", "rstrictatime"])
    assert opts.recursive_set == t.MOUNT_ATTR_STRICTATIME
    opts = parse_mount_options(["rstrictatime", "rrelatime"])
    assert opts.recursive_set == t.MOUNT_ATTR_RELATIME == 0
    assert opts.recursive_clear == t.MOUNT_ATTR__ATIME


def test_llmos_extensions() -> None:
    opts = parse_mount_options(["tmpcopyup", "idmap"])
    assert opts.tmpcopyup and opts.idmap and not opts.recursive_idmap
    assert opts.data == ""
    opts = parse_mount_options(["ridmap"])
    assert opts.idmap and opts.recursive_idmap


def test_unknown_options_are_filesystem_data() -> None:
    opts = parse_mount_options(["mode=755", "size=65536k", "nosuid", "lowerdir=/a:/b"])
    assert opts.flags == t.MS_NOSUID
    assert opts.data == "mode=755,size=65536k,lowerdir=/a:/b"


def test_rootfs_propagation() -> None:
    assert rootfs_propagation_flags(None) == t.MS_SLAVE | t.MS_REC
    assert rootfs_propagation_flags("") == t.MS_SLAVE | t.MS_REC
    assert rootfs_propagation_flags("private") == t.MS_PRIVATE | t.MS_REC
    assert rootfs_propagation_flags("rshared") == t.MS_SHARED | t.MS_REC
    assert rootfs_propagation_flags("slave") == t.MS_SLAVE | t.MS_REC
    assert rootfs_propagation_flags("unbindable") == t.MS_UNBINDABLE | t.MS_REC
    with pytest.raises(SpecError, match=r'^linux\.rootfsPropagation: unknown propagation "x"'):
        rootfs_propagation_flags("x")


def test_device_types() -> None:
    assert device_file_type("c") == stat.S_IFCHR
    assert device_file_type("u") == stat.S_IFCHR
    assert device_file_type("b") == stat.S_IFBLK
    assert device_file_type("p") == stat.S_IFIFO
    with pytest.raises(SpecError, match=r'^linux\.devices\[0\]\.type: unknown device type "a"'):
        device_file_type("a", "linux.devices[0].type")


@pytest.mark.parametrize(("major", "minor"), [(1, 3), (5, 2), (136, 0), (259, 65536), (4096, 7)])
def test_makedev_matches_libc(major: int, minor: int) -> None:
    assert makedev(major, minor) == os.makedev(major, minor)
