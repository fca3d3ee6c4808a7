"""Every way a config can be wrong gives one SpecError naming the field and what was expected."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from llmos.spec import Spec, SpecError

DELETE = object()


def base() -> dict[str, Any]:
    """A small valid config the cases below break one field at a time."""
    return {
        "ociVersion": "1.2.0",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "cwd": "/",
            "env": ["PATH=/bin"],
            "capabilities": {"bounding": ["CAP_KILL"]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 10}],
            "consoleSize": {"height": 1, "width": 1},
            "ioPriority": {"class": "IOPRIO_CLASS_BE"},
            "scheduler": {"policy": "SCHED_OTHER"},
            "execCPUAffinity": {"initial": "0"},
        },
        "root": {"path": "rootfs"},
        "hostname": "h",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
            {
                "destination": "/data",
                "type": "bind",
                "source": "/x",
                "options": ["rbind"],
                "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
            },
        ],
        "hooks": {"prestart": [{"path": "/bin/true"}], "poststop": [{"path": "/bin/true"}]},
        "annotations": {"a": "b"},
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "uts"}, {"type": "mount"}],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
            "timeOffsets": {"monotonic": {"secs": 1}},
            "devices": [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229}],
            "resources": {
                "devices": [{"allow": False, "access": "rwm"}],
                "memory": {"limit": 1},
                "cpu": {"shares": 2},
                "pids": {"limit": 3},
                "blockIO": {"weight": 10},
                "hugepageLimits": [{"pageSize": "2MB", "limit": 1}],
                "rdma": {"mlx": {"hcaHandles": 1}},
                "unified": {"memory.high": "max"},
            },
            "seccomp": {
                "defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [
                    {
                        "names": ["read"],
                        "action": "SCMP_ACT_ALLOW",
                        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}],
                    }
                ],
            },
            "personality": {"domain": "LINUX"},
            "intelRdt": {"closID": "c"},
            "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0"},
            "netDevices": {"eth0": {"name": "eth1"}},
            "sysctl": {"kernel.shmmax": "1"},
            "maskedPaths": ["/proc/kcore"],
        },
    }


def _set(config: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """Set (or delete, for DELETE) the value at a dotted path with [i] indexes."""
    parts: list[str | int] = []
    for part in path.split("."):
        m = re.fullmatch(r"([^\[]+)((?:\[\d+\])*)", part)
        assert m, part
        parts.append(m.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    node: Any = config
    for p in parts[:-1]:
        node = node[p]
    if value is DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return config


def test_base_is_valid() -> None:
    Spec.from_dict(base())


CASES: list[tuple[str, object, str]] = [
    # process
    ("process", "sh", "process: must be an object, not a string"),
    ("process.args", [], "process.args: must be a non-empty list of strings"),
    ("process.args", "sh", "process.args: must be a non-empty list of strings"),
    ("process.args", DELETE, "process.args: is required and must be a non-empty list of strings"),
    ("process.args", ["sh", 1], "process.args[1]: must be a string, not a number"),
    ("process.cwd", "tmp", 'process.cwd: must be an absolute path, not "tmp"'),
    ("process.cwd", DELETE, "process.cwd: is required and must be an absolute path"),
    ("process.terminal", "yes", "process.terminal: must be a boolean, not a string"),
    ("process.noNewPrivileges", 1, "process.noNewPrivileges: must be a boolean, not a number"),
    ("process.env", ["NOEQ"], 'process.env[0]: must be "KEY=value", not "NOEQ"'),
    ("process.env", ["=x"], 'process.env[0]: has an empty variable name: "=x"'),
    ("process.env", ["A=\0"], "process.env[0]: must not contain a NUL byte"),
    ("process.env", "A=1", 'process.env: must be a list of "KEY=value" strings'),
    ("process.user", DELETE, ""),  # optional: defaults to root
    ("process.user.uid", -1, "process.user.uid: must be an unsigned 32-bit integer, not -1"),
    (
        "process.user.uid",
        True,
        "process.user.uid: must be an unsigned 32-bit integer, not a boolean",
    ),
    ("process.user.gid", 1.5, "process.user.gid: must be an unsigned 32-bit integer, not 1.5"),
    (
        "process.user.gid",
        DELETE,
        "process.user.gid: is required and must be an unsigned 32-bit integer",
    ),
    (
        "process.user.additionalGids",
        [2**32],
        "process.user.additionalGids[0]: must be an unsigned 32-bit integer, not 4294967296",
    ),
    ("process.user.umask", 0o1000, "process.user.umask: must be a umask from 0 to 0o777, not 512"),
    (
        "process.consoleSize",
        {"height": 1},
        "process.consoleSize.width: is required and must be an unsigned 64-bit integer",
    ),
    ("process.capabilities", "all", "process.capabilities: must be an object, not a string"),
    (
        "process.capabilities.bounding",
        ["CAP_FOO"],
        'process.capabilities.bounding[0]: unknown capability "CAP_FOO"',
    ),
    (
        "process.capabilities.ambient",
        ["KILL"],
        'process.capabilities.ambient[0]: unknown capability "KILL"',
    ),
    (
        "process.rlimits[0].type",
        "RLIMIT_FOO",
        'process.rlimits[0].type: unknown rlimit "RLIMIT_FOO"',
    ),
    (
        "process.rlimits[0].soft",
        11,
        "process.rlimits[0].soft: RLIMIT_NOFILE soft limit 11 exceeds hard limit 10",
    ),
    (
        "process.rlimits[0].hard",
        2**64,
        "process.rlimits[0].hard: must be an unsigned 64-bit integer, not 18446744073709551616",
    ),
    (
        "process.rlimits[0].hard",
        DELETE,
        "process.rlimits[0].hard: is required and must be an unsigned 64-bit integer",
    ),
    (
        "process.rlimits",
        [{"type": "RLIMIT_CORE", "soft": 0, "hard": 0}] * 2,
        'process.rlimits[1].type: duplicate rlimit "RLIMIT_CORE"',
    ),
    (
        "process.oomScoreAdj",
        1001,
        "process.oomScoreAdj: must be a number from -1000 to 1000, not 1001",
    ),
    ("process.apparmorProfile", 5, "process.apparmorProfile: must be a string, not a number"),
    ("process.selinuxLabel", [], "process.selinuxLabel: must be a string, not a list"),
    (
        "process.ioPriority.class",
        "IOPRIO_CLASS_FOO",
        'process.ioPriority.class: unknown I/O priority class "IOPRIO_CLASS_FOO" (expected one '
        "of: IOPRIO_CLASS_BE, IOPRIO_CLASS_IDLE, IOPRIO_CLASS_RT)",
    ),
    (
        "process.ioPriority.priority",
        8,
        "process.ioPriority.priority: must be a priority from 0 to 7, not 8",
    ),
    (
        "process.scheduler.policy",
        DELETE,
        "process.scheduler.policy: is required and must be a string",
    ),
    (
        "process.scheduler.nice",
        20,
        "process.scheduler.nice: must be a nice value from -20 to 19, not 20",
    ),
    (
        "process.scheduler.flags",
        ["SCHED_FLAG_X"],
        'process.scheduler.flags[0]: unknown scheduler flag "SCHED_FLAG_X"',
    ),
    (
        "process.execCPUAffinity.initial",
        "a-b",
        'process.execCPUAffinity.initial: must be a CPU list like "0-3,7", not "a-b"',
    ),
    # root, hostname, annotations
    ("root", DELETE, "root: is required and must be an object"),
    ("root.path", "", "root.path: must be a non-empty string"),
    ("root.readonly", "no", "root.readonly: must be a boolean, not a string"),
    ("hostname", 5, "hostname: must be a string, not a number"),
    ("linux.namespaces[1].type", "ipc", "hostname: needs a uts namespace in linux.namespaces"),
    ("domainname", 5, "domainname: must be a string, not a number"),
    ("annotations", {"a": 1}, 'annotations["a"]: must be a string, not a number'),
    ("annotations", {"": "x"}, 'annotations[""]: an annotation needs a non-empty key'),
    ("annotations", ["a"], "annotations: must be an object mapping names to strings, not a list"),
    # mounts
    ("mounts", {}, "mounts: must be a list of mounts"),
    (
        "mounts[3].destination",
        "data",
        'mounts[3].destination: must be an absolute path, not "data"',
    ),
    (
        "mounts[3].destination",
        DELETE,
        "mounts[3].destination: is required and must be an absolute path",
    ),
    ("mounts[0].type", 1, "mounts[0].type: must be a string, not a number"),
    ("mounts[0].options", "ro", "mounts[0].options: must be a list of strings"),
    (
        "mounts[3].uidMappings[0].size",
        DELETE,
        "mounts[3].uidMappings[0].size: is required and must be an unsigned 32-bit integer",
    ),
    # hooks
    (
        "hooks.prestart[0].path",
        "true",
        'hooks.prestart[0].path: must be an absolute path, not "true"',
    ),
    (
        "hooks.poststop[0].timeout",
        0,
        "hooks.poststop[0].timeout: must be a positive number of seconds, not 0",
    ),
    ("hooks.createRuntime", "x", "hooks.createRuntime: must be a list of hooks"),
    (
        "hooks.startContainer",
        [{"args": []}],
        "hooks.startContainer[0].path: is required and must be an absolute path",
    ),
    # linux
    ("linux", "x", "linux: must be an object, not a string"),
    (
        "linux.namespaces[2].type",
        "foo",
        'linux.namespaces[2].type: unknown namespace "foo" (expected one of: cgroup, ipc, mount, '
        "network, pid, time, user, uts)",
    ),
    ("linux.namespaces[2].type", "pid", 'linux.namespaces[2].type: duplicate namespace "pid"'),
    (
        "linux.namespaces[0].path",
        "proc/1/ns/pid",
        'linux.namespaces[0].path: must be an absolute path, not "proc/1/ns/pid"',
    ),
    ("linux.namespaces", [{}], "linux.namespaces[0].type: is required and must be a string"),
    (
        "linux.uidMappings[0].hostID",
        -1,
        "linux.uidMappings[0].hostID: must be an unsigned 32-bit integer, not -1",
    ),
    (
        "linux.timeOffsets",
        {"realtime": {"secs": 1}},
        'linux.timeOffsets: unknown clock "realtime" (expected one of: boottime, monotonic)',
    ),
    (
        "linux.timeOffsets.monotonic.nanosecs",
        -1,
        'linux.timeOffsets["monotonic"].nanosecs: must be an unsigned 32-bit integer, not -1',
    ),
    (
        "linux.devices[0].type",
        "x",
        'linux.devices[0].type: unknown device type "x" (expected one of: b, c, p, u)',
    ),
    (
        "linux.devices[0].path",
        "dev/fuse",
        'linux.devices[0].path: must be an absolute path, not "dev/fuse"',
    ),
    (
        "linux.devices[0].major",
        DELETE,
        'linux.devices[0].major: is required for a device of type "c"',
    ),
    (
        "linux.devices[0].fileMode",
        0o10000,
        "linux.devices[0].fileMode: must be a file mode from 0 to 0o7777, not 4096",
    ),
    ("linux.cgroupsPath", 5, "linux.cgroupsPath: must be a string, not a number"),
    (
        "linux.sysctl",
        {"kernel.shmmax": 1},
        'linux.sysctl["kernel.shmmax"]: must be a string, not a number',
    ),
    (
        "linux.rootfsPropagation",
        "weird",
        'linux.rootfsPropagation: unknown propagation "weird" (expected one of: private, '
        "rprivate, rshared, rslave, runbindable, shared, slave, unbindable)",
    ),
    (
        "linux.maskedPaths",
        ["proc/kcore"],
        'linux.maskedPaths[0]: must be an absolute path, not "proc/kcore"',
    ),
    ("linux.readonlyPaths", "/proc/sys", "linux.readonlyPaths: must be a list of absolute paths"),
    ("linux.mountLabel", 1, "linux.mountLabel: must be a string, not a number"),
    (
        "linux.personality.domain",
        "LINUX64",
        'linux.personality.domain: unknown personality domain "LINUX64" (expected one of: LINUX, '
        "LINUX32)",
    ),
    ("linux.intelRdt.closID", 5, "linux.intelRdt.closID: must be a string, not a number"),
    (
        "linux.memoryPolicy.mode",
        "MPOL_X",
        'linux.memoryPolicy.mode: unknown memory policy mode "MPOL_X" (expected one of: '
        "MPOL_BIND, MPOL_DEFAULT, MPOL_INTERLEAVE, MPOL_LOCAL, MPOL_PREFERRED, "
        "MPOL_PREFERRED_MANY, MPOL_WEIGHTED_INTERLEAVE)",
    ),
    (
        "linux.netDevices.eth0.name",
        5,
        'linux.netDevices["eth0"].name: must be a string, not a number',
    ),
    # linux.resources
    (
        "linux.resources.memory.limit",
        "1G",
        "linux.resources.memory.limit: must be a 64-bit integer, not a string",
    ),
    (
        "linux.resources.memory.swappiness",
        101,
        "linux.resources.memory.swappiness: must be a number from 0 to 100, not 101",
    ),
    (
        "linux.resources.devices[0].allow",
        DELETE,
        "linux.resources.devices[0].allow: is required and must be a boolean",
    ),
    (
        "linux.resources.devices[0].access",
        "rwx",
        'linux.resources.devices[0].access: must be a combination of "r", "w" and "m", not "rwx"',
    ),
    (
        "linux.resources.devices[0].type",
        "u",
        'linux.resources.devices[0].type: unknown device type "u" (expected one of: a, b, c)',
    ),
    (
        "linux.resources.pids",
        {},
        "linux.resources.pids.limit: is required and must be a 64-bit integer",
    ),
    (
        "linux.resources.cpu.shares",
        -1,
        "linux.resources.cpu.shares: must be an unsigned 64-bit integer, not -1",
    ),
    (
        "linux.resources.blockIO.weight",
        70000,
        "linux.resources.blockIO.weight: must be an unsigned 16-bit integer, not 70000",
    ),
    (
        "linux.resources.hugepageLimits[0].pageSize",
        DELETE,
        "linux.resources.hugepageLimits[0].pageSize: is required and must be a non-empty string",
    ),
    (
        "linux.resources.unified",
        {"../x": "1"},
        'linux.resources.unified["../x"]: must be a cgroup file name',
    ),
    (
        "linux.resources.rdma.mlx.hcaHandles",
        -1,
        'linux.resources.rdma["mlx"].hcaHandles: must be an unsigned 32-bit integer, not -1',
    ),
    # linux.seccomp
    (
        "linux.seccomp.defaultAction",
        DELETE,
        "linux.seccomp.defaultAction: is required and must be a string",
    ),
    (
        "linux.seccomp.defaultAction",
        "SCMP_ACT_NOPE",
        'linux.seccomp.defaultAction: unknown action "SCMP_ACT_NOPE"',
    ),
    ("linux.seccomp.defaultErrnoRet", 5, ""),  # fine with SCMP_ACT_ERRNO
    (
        "linux.seccomp.architectures",
        ["SCMP_ARCH_Z80"],
        'linux.seccomp.architectures[0]: unknown architecture "SCMP_ARCH_Z80"',
    ),
    (
        "linux.seccomp.flags",
        ["SECCOMP_FILTER_FLAG_X"],
        'linux.seccomp.flags[0]: unknown seccomp flag "SECCOMP_FILTER_FLAG_X"',
    ),
    (
        "linux.seccomp.syscalls[0].names",
        [],
        "linux.seccomp.syscalls[0].names: must be a non-empty list of non-empty strings",
    ),
    (
        "linux.seccomp.syscalls[0].action",
        "ALLOW",
        'linux.seccomp.syscalls[0].action: unknown seccomp action "ALLOW"',
    ),
    (
        "linux.seccomp.syscalls[0].errnoRet",
        1,
        "linux.seccomp.syscalls[0].errnoRet: is only allowed with SCMP_ACT_ERRNO or "
        "SCMP_ACT_TRACE, not SCMP_ACT_ALLOW",
    ),
    (
        "linux.seccomp.syscalls[0].args[0].index",
        6,
        "linux.seccomp.syscalls[0].args[0].index: must be an argument index from 0 to 5, not 6",
    ),
    (
        "linux.seccomp.syscalls[0].args[0].op",
        "SCMP_CMP_FOO",
        'linux.seccomp.syscalls[0].args[0].op: unknown operator "SCMP_CMP_FOO"',
    ),
    (
        "linux.seccomp.syscalls[0].args[0].value",
        DELETE,
        "linux.seccomp.syscalls[0].args[0].value: is required and must be an unsigned 64-bit "
        "integer",
    ),
]


@pytest.mark.parametrize(("path", "value", "message"), CASES, ids=[c[0] for c in CASES])
def test_each_bad_field_is_named(path: str, value: object, message: str) -> None:
    config = _set(base(), path, copy.deepcopy(value) if value is not DELETE else value)
    if not message:
        Spec.from_dict(config)
        return
    with pytest.raises(SpecError) as err:
        Spec.from_dict(config)
    assert str(err.value).startswith(message), str(err.value)
    assert err.value.path == message.split(":", 1)[0]


def test_default_errno_ret_needs_an_errno_action() -> None:
    config = _set(base(), "linux.seccomp.defaultAction", "SCMP_ACT_ALLOW")
    _set(config, "linux.seccomp.defaultErrnoRet", 1)
    with pytest.raises(SpecError, match=r"^linux\.seccomp\.defaultErrnoRet: is only allowed"):
        Spec.from_dict(config)


def test_domainname_needs_a_uts_namespace() -> None:
    config = _set(base(), "linux.namespaces[1].type", "ipc")
    del config["hostname"]
    config["domainname"] = "example.org"
    with pytest.raises(SpecError, match=r"^domainname: needs a uts namespace"):
        Spec.from_dict(config)


def test_a_fifo_device_needs_no_numbers() -> None:
    config = _set(base(), "linux.devices", [{"type": "p", "path": "/dev/fifo"}])
    Spec.from_dict(config)


def test_the_document_must_be_an_object() -> None:
    with pytest.raises(SpecError, match=r"config\.json must hold a JSON object"):
        Spec.from_dict(["not", "a", "config"])
