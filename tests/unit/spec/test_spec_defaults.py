"""default_spec: Docker's defaults, as a valid config."""

from __future__ import annotations

import os

import pytest

from llmos.spec import (
    DEFAULT_CAPABILITIES,
    DEFAULT_DEVICE_CGROUP_RULES,
    DEFAULT_DEVICES,
    DEFAULT_MASKED_PATHS,
    DEFAULT_READONLY_PATHS,
    DEV_SYMLINKS,
    Spec,
    compile_seccomp,
    default_spec,
    parse_mount_options,
    tables,
)

DOCKER_CAPS = {
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
}


def test_default_spec_is_a_valid_config_that_round_trips() -> None:
    spec = default_spec()
    assert Spec.from_dict(spec.to_dict()) == spec
    assert Spec.from_dict(default_spec(rootless=True).to_dict()) == default_spec(rootless=True)


def test_process_defaults() -> None:
    spec = default_spec(["nginx", "-g", "daemon off;"])
    p = spec.process
    assert p is not None
    assert p.args == ["nginx", "-g", "daemon off;"]
    assert p.cwd == "/"
    assert (p.user.uid, p.user.gid) == (0, 0)
    assert p.no_new_privileges is True
    assert p.terminal is False
    assert p.env == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert [(r.type, r.soft, r.hard) for r in p.rlimits] == [("RLIMIT_NOFILE", 1024, 1024)]
    assert default_spec().process.args == ["sh"]  # type: ignore[union-attr]


def test_terminal_adds_term() -> None:
    p = default_spec(terminal=True).process
    assert p is not None and p.terminal
    assert "TERM=xterm" in p.env


def test_the_14_docker_capabilities() -> None:
    assert len(DEFAULT_CAPABILITIES) == 14 and set(DEFAULT_CAPABILITIES) == DOCKER_CAPS
    caps = default_spec().process.capabilities  # type: ignore[union-attr]
    assert caps is not None
    assert set(caps.bounding) == set(caps.effective) == set(caps.permitted) == DOCKER_CAPS
    assert caps.inheritable == [] and caps.ambient == []
    assert "CAP_SYS_ADMIN" not in caps.bounding


def test_masked_and_readonly_paths() -> None:
    linux = default_spec().linux
    assert linux is not None
    for path in (
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/acpi",
        "/proc/scsi",
        "/sys/firmware",
        "/proc/interrupts",
        "/sys/devices/virtual/powercap",
        "/proc/asound",
        "/proc/latency_stats",
        "/proc/timer_stats",
    ):
        assert path in linux.masked_paths
    assert linux.masked_paths[: len(DEFAULT_MASKED_PATHS)] == list(DEFAULT_MASKED_PATHS)
    extra = linux.masked_paths[len(DEFAULT_MASKED_PATHS) :]
    assert all(p.endswith("/thermal_throttle") and os.path.isdir(p) for p in extra)
    assert (
        linux.readonly_paths
        == list(DEFAULT_READONLY_PATHS)
        == [
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ]
    )


def test_mounts() -> None:
    mounts = {m.destination: m for m in default_spec().mounts}
    assert list(mounts) == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/sys",
        "/sys/fs/cgroup",
        "/dev/mqueue",
        "/dev/shm",
    ]
    assert mounts["/proc"].type == "proc"
    dev = parse_mount_options(mounts["/dev"].options)
    assert mounts["/dev"].type == "tmpfs"
    assert dev.flags == tables.MS_NOSUID | tables.MS_STRICTATIME
    assert dev.data == "mode=755,size=65536k"
    pts = mounts["/dev/pts"]
    assert pts.type == "devpts"
    assert {"newinstance", "ptmxmode=0666", "mode=0620", "gid=5"} <= set(pts.options)
    shm = mounts["/dev/shm"]
    assert shm.type == "tmpfs" and "size=65536k" in shm.options and "mode=1777" in shm.options
    assert mounts["/dev/mqueue"].type == "mqueue"
    ro_nosuid = tables.MS_RDONLY | tables.MS_NOSUID | tables.MS_NOEXEC | tables.MS_NODEV
    assert mounts["/sys"].type == "sysfs"
    assert parse_mount_options(mounts["/sys"].options).flags == ro_nosuid
    assert mounts["/sys/fs/cgroup"].type == "cgroup"
    assert parse_mount_options(mounts["/sys/fs/cgroup"].options).flags == ro_nosuid


def test_namespaces_and_root() -> None:
    spec = default_spec()
    assert spec.linux is not None
    assert {ns.type for ns in spec.linux.namespaces} == {
        "pid",
        "network",
        "ipc",
        "uts",
        "mount",
        "cgroup",
    }
    assert all(ns.path is None for ns in spec.linux.namespaces)
    assert spec.root.path == "rootfs" and spec.root.readonly is False  # writable, as Docker
    assert spec.hostname == "llmos"


def test_device_cgroup_rules() -> None:
    linux = default_spec().linux
    assert linux is not None and linux.resources is not None
    rules = [r.rule() for r in linux.resources.devices]
    assert rules[0] == "a *:* rwm" and not linux.resources.devices[0].allow
    allowed = {r.rule() for r in linux.resources.devices[1:] if r.allow}
    assert {
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:1 rwm",
        "c 5:2 rwm",
        "c 136:* rwm",
        "c *:* m",
        "b *:* m",
    } == allowed
    assert linux.resources.devices == list(DEFAULT_DEVICE_CGROUP_RULES)
    assert linux.resources.raw["devices"][0] == {"allow": False, "access": "rwm"}


def test_default_devices() -> None:
    assert {(d.path, d.major, d.minor) for d in DEFAULT_DEVICES} == {
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    }
    assert all(d.type == "c" and d.file_mode == 0o666 for d in DEFAULT_DEVICES)
    assert dict((link, target) for target, link in DEV_SYMLINKS) == {
        "/dev/fd": "/proc/self/fd",
        "/dev/stdin": "/proc/self/fd/0",
        "/dev/stdout": "/proc/self/fd/1",
        "/dev/stderr": "/proc/self/fd/2",
        "/dev/ptmx": "pts/ptmx",
        "/dev/core": "/proc/kcore",
    }


def test_seccomp_is_dockers_allowlist() -> None:
    linux = default_spec().linux
    assert linux is not None and linux.seccomp is not None
    sec = linux.seccomp
    assert sec.default_action == "SCMP_ACT_ERRNO" and sec.default_errno_ret == 1
    allowed = {
        n for r in sec.syscalls if r.action == "SCMP_ACT_ALLOW" and not r.args for n in r.names
    }
    assert {"read", "write", "openat", "execve", "chroot"} <= allowed
    assert not {"mount", "unshare", "reboot", "kexec_load", "setns"} & allowed
    clone = [r for r in sec.syscalls if r.names == ["clone"]]
    assert len(clone) == 1
    assert clone[0].args[0].op == "SCMP_CMP_MASKED_EQ"
    assert clone[0].args[0].value == 0x7E020000
    assert len(compile_seccomp(sec)) > 100  # compiles for this host


def test_default_spec_objects_are_fresh() -> None:
    a, b = default_spec(), default_spec()
    a.mounts[0].options.append("ro")
    assert a.linux is not None and a.linux.resources is not None
    a.linux.resources.devices[0].access = "r"
    assert b == default_spec()


def test_rootless() -> None:
    spec = default_spec(rootless=True)
    linux = spec.linux
    assert linux is not None
    types = [ns.type for ns in linux.namespaces]
    assert "network" not in types and types.count("user") == 1
    assert [(m.container_id, m.host_id, m.size) for m in linux.uid_mappings] == [
        (0, os.geteuid(), 1)
    ]
    assert [(m.container_id, m.host_id, m.size) for m in linux.gid_mappings] == [
        (0, os.getegid(), 1)
    ]
    mounts = {m.destination: m for m in spec.mounts}
    assert mounts["/sys"].type == "none" and mounts["/sys"].source == "/sys"
    assert "rbind" in mounts["/sys"].options and "ro" in mounts["/sys"].options
    assert not any(o.startswith("gid=") for o in mounts["/dev/pts"].options)
    assert linux.resources is None


@pytest.mark.parametrize("rootless", [False, True])
def test_defaults_pass_their_own_checks(rootless: bool) -> None:
    from llmos.spec import HostSecurity, unsupported_fields

    spec = default_spec(rootless=rootless)
    assert unsupported_fields(spec, HostSecurity(apparmor=False, selinux=False)) == []
