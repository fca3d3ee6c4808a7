"""config.json <-> dataclasses: round trip, versions, extension fields, omitempty."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from llmos.spec import (
    HOOK_KINDS,
    Hook,
    Hooks,
    Linux,
    Namespace,
    Process,
    Root,
    Spec,
    SpecError,
    check_version,
    load_spec,
)


def full_config() -> dict[str, Any]:
    """A config using every Linux field of runtime-spec 1.3, each with a non-default value."""
    hook = {"path": "/usr/bin/hook", "args": ["hook", "x"], "env": ["A=1"], "timeout": 5}
    return {
        "ociVersion": "1.3.0",
        "process": {
            "terminal": True,
            "consoleSize": {"height": 25, "width": 80},
            "user": {"uid": 1000, "gid": 1000, "umask": 18, "additionalGids": [5, 6]},
            "args": ["/bin/sh", "-c", "true"],
            "env": ["PATH=/usr/bin:/bin", "TERM=xterm", "EMPTY="],
            "cwd": "/root",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL"],
                "effective": ["CAP_KILL"],
                "inheritable": ["CAP_KILL"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL"],
                "ambient": ["CAP_KILL"],
            },
            "rlimits": [
                {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024},
                {"type": "RLIMIT_CORE", "soft": 0, "hard": 18446744073709551615},
            ],
            "noNewPrivileges": True,
            "apparmorProfile": "acme_secure_profile",
            "oomScoreAdj": 100,
            "selinuxLabel": "system_u:system_r:svirt_lxc_net_t:s0:c124,c675",
            "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
            "scheduler": {
                "policy": "SCHED_DEADLINE",
                "nice": -5,
                "priority": 10,
                "flags": ["SCHED_FLAG_RESET_ON_FORK"],
                "runtime": 1000,
                "deadline": 2000,
                "period": 3000,
            },
            "execCPUAffinity": {"initial": "0-3,7", "final": "4"},
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "slartibartfast",
        "domainname": "example.org",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/data",
                "type": "bind",
                "source": "/volumes/testing",
                "options": ["rbind", "rw", "idmap"],
                "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
            },
        ],
        "hooks": {kind: [copy.deepcopy(hook)] for kind in HOOK_KINDS},
        "annotations": {"com.example.key1": "value1", "com.example.key2": "value2"},
        "linux": {
            "namespaces": [
                {"type": "pid"},
                {"type": "network", "path": "/var/run/netns/neta"},
                {"type": "mount"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "user"},
                {"type": "cgroup"},
                {"type": "time"},
            ],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 32000}],
            "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 32000}],
            "timeOffsets": {"monotonic": {"secs": 100, "nanosecs": 5}, "boottime": {"secs": -1}},
            "devices": [
                {
                    "path": "/dev/fuse",
                    "type": "c",
                    "major": 10,
                    "minor": 229,
                    "fileMode": 438,
                    "uid": 0,
                    "gid": 0,
                },
                {"path": "/dev/myfifo", "type": "p"},
            ],
            "cgroupsPath": "/myRuntime/myContainer",
            "resources": {
                "devices": [
                    {"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
                ],
                "memory": {
                    "limit": 536870912,
                    "reservation": 536870912,
                    "swap": -1,
                    "kernel": 0,
                    "kernelTCP": 0,
                    "swappiness": 0,
                    "disableOOMKiller": False,
                    "useHierarchy": True,
                    "checkBeforeUpdate": True,
                },
                "cpu": {
                    "shares": 1024,
                    "quota": 1000000,
                    "burst": 10000,
                    "period": 500000,
                    "realtimeRuntime": 950000,
                    "realtimePeriod": 1000000,
                    "cpus": "2-3",
                    "mems": "0-7",
                    "idle": 0,
                },
                "pids": {"limit": 32771},
                "blockIO": {
                    "weight": 10,
                    "leafWeight": 10,
                    "weightDevice": [
                        {"major": 8, "minor": 0, "weight": 500, "leafWeight": 300},
                        {"major": 8, "minor": 16, "weight": 500},
                    ],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                    "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                    "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 300}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 300}],
                },
                "hugepageLimits": [{"pageSize": "2MB", "limit": 9223372036854772000}],
                "network": {
                    "classID": 1048577,
                    "priorities": [
                        {"name": "eth0", "priority": 500},
                        {"name": "eth1", "priority": 1000},
                    ],
                },
                "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
                "unified": {"io.weight": "default 100", "memory.high": "max"},
            },
            "intelRdt": {
                "closID": "guaranteed_group",
                "l3CacheSchema": "L3:0=7f0;1=1f",
                "memBwSchema": "MB:0=20;1=70",
                "schemata": ["L2:0=ff"],
                "enableMonitoring": True,
            },
            "sysctl": {"net.ipv4.ip_forward": "1", "net.core.somaxconn": "256"},
            "seccomp": {
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 1,
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "flags": ["SECCOMP_FILTER_FLAG_LOG"],
                "listenerPath": "/run/seccomp-agent.socket",
                "listenerMetadata": "metadata",
                "syscalls": [
                    {"names": ["getcwd", "chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
                    {
                        "names": ["personality"],
                        "action": "SCMP_ACT_ALLOW",
                        "args": [
                            {"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"},
                        ],
                    },
                ],
            },
            "rootfsPropagation": "slave",
            "maskedPaths": ["/proc/kcore", "/proc/keys"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"],
            "mountLabel": "system_u:object_r:svirt_sandbox_file_t:s0:c715,c811",
            "personality": {"domain": "LINUX32", "flags": []},
            "netDevices": {"eth1": {"name": "eth0"}, "ens4": {}},
            "memoryPolicy": {
                "mode": "MPOL_INTERLEAVE",
                "nodes": "0-3",
                "flags": ["MPOL_F_STATIC_NODES"],
            },
        },
    }


def _without_empty(value: Any) -> Any:
    # What omitempty output looks like: the fixture's empty "flags": [] disappears.
    if isinstance(value, dict):
        return {k: _without_empty(v) for k, v in value.items() if v != []}
    if isinstance(value, list):
        return [_without_empty(v) for v in value]
    return value


def test_full_config_round_trips() -> None:
    config = full_config()
    spec = Spec.from_dict(copy.deepcopy(config))
    assert spec.to_dict() == _without_empty(config)
    # And again through JSON text, as llmos writes config.json.
    again = Spec.from_dict(json.loads(spec.to_json()))
    assert again == spec


def test_typed_access_to_loaded_fields() -> None:
    spec = Spec.from_dict(full_config())
    assert spec.process is not None and spec.linux is not None
    assert spec.process.user.additional_gids == [5, 6]
    assert spec.process.io_priority is not None
    assert spec.process.io_priority.class_ == "IOPRIO_CLASS_BE"
    assert spec.process.rlimits[1].hard == 2**64 - 1
    assert spec.mounts[1].uid_mappings[0].host_id == 1000
    assert spec.linux.namespace("network") == Namespace(type="network", path="/var/run/netns/neta")
    assert spec.linux.namespace("nope") is None
    assert spec.linux.time_offsets["monotonic"].nanosecs == 5
    assert spec.linux.seccomp is not None
    assert spec.linux.seccomp.syscalls[1].args[0].value_two == 0
    assert spec.linux.devices[1].major is None
    assert spec.linux.net_devices["eth1"].name == "eth0"
    hooks = spec.hooks
    assert hooks is not None
    assert [len(hooks.of_kind(k)) for k in HOOK_KINDS] == [1] * 6
    assert hooks.of_kind("createRuntime")[0].timeout == 5


def test_resources_raw_is_the_validated_json() -> None:
    config = full_config()
    spec = Spec.from_dict(copy.deepcopy(config))
    assert spec.linux is not None and spec.linux.resources is not None
    resources = spec.linux.resources
    assert resources.raw == config["linux"]["resources"]
    assert resources.memory is not None and resources.memory.swap == -1
    assert resources.memory.disable_oom_killer is False  # explicit false is kept
    assert resources.devices[1].rule() == "c 10:229 rw"
    assert resources.devices[0].rule() == "a *:* rwm"
    # The raw view follows edits to the typed one, so the two never disagree.
    assert resources.pids is not None
    resources.pids.limit = 5
    assert resources.raw["pids"] == {"limit": 5}


def test_unknown_fields_are_kept_at_every_level() -> None:
    config = {
        "ociVersion": "1.0.2-dev",
        "root": {"path": "rootfs", "x-root": 1},
        "process": {
            "args": ["sh"],
            "cwd": "/",
            "commandLine": "windows only",
            "user": {"uid": 0, "gid": 0, "username": "Administrator"},
        },
        "linux": {
            "namespaces": [{"type": "pid", "x-ns": [1, 2]}],
            "resources": {"memory": {"limit": 10, "x-new": True}, "x-controller": {"a": 1}},
            "x-linux": "kept",
        },
        "windows": {"layerFolders": ["C:\\layers"]},
        "vm": {"hypervisor": {"path": "/usr/bin/qemu"}},
        "org.example.extension": {"nested": [1, {"deep": True}]},
    }
    spec = Spec.from_dict(copy.deepcopy(config))
    assert spec.to_dict() == config
    assert spec.extra["windows"] == {"layerFolders": ["C:\\layers"]}
    assert spec.linux is not None and spec.linux.resources is not None
    assert spec.linux.resources.raw["x-controller"] == {"a": 1}


def test_output_omits_unset_fields_like_go_omitempty() -> None:
    config = {
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs", "readonly": False},
        "process": {
            "terminal": False,
            "args": ["sh"],
            "cwd": "/",
            "env": [],
            "user": {"uid": 0, "gid": 0},
        },
        "mounts": [],
        "annotations": {},
        "hostname": "",
    }
    out = Spec.from_dict(config).to_dict()
    assert out == {
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs"},
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
        "hostname": "",
    }


def test_null_is_absent() -> None:
    spec = Spec.from_dict(
        {"ociVersion": "1.0.0", "root": {"path": "r"}, "hostname": None, "linux": None}
    )
    assert spec.hostname is None and spec.linux is None


def test_user_is_always_written() -> None:
    # Go's Process.User is not a pointer: runc always writes it, and so do we.
    out = Spec.from_dict(
        {"ociVersion": "1.0.0", "root": {"path": "r"}, "process": {"args": ["sh"], "cwd": "/"}}
    ).to_dict()
    assert out["process"]["user"] == {"uid": 0, "gid": 0}


@pytest.mark.parametrize(
    "version",
    [
        "1.0.0",
        "1.0.1",
        "1.0.2",
        "1.0.2-dev",
        "1.1.0",
        "1.1.0-rc.1",
        "1.2.0",
        "1.2.1",
        "1.3.0",
        "1.3.7+build.5",
    ],
)
def test_versions_1_0_to_1_3_are_accepted(version: str) -> None:
    spec = Spec.from_dict({"ociVersion": version, "root": {"path": "rootfs"}})
    assert spec.oci_version == version
    assert check_version(version)[0] == 1


@pytest.mark.parametrize("version", ["0.5.0", "1.4.0", "2.0.0", "0.1.0", "10.0.0"])
def test_other_versions_are_refused(version: str) -> None:
    with pytest.raises(SpecError) as err:
        Spec.from_dict({"ociVersion": version, "root": {"path": "rootfs"}})
    assert str(err.value) == (
        f'ociVersion: unsupported version "{version}" (llmos supports 1.0.x to 1.3.x)'
    )


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "1.0.0.0", "", "01.0.0"])
def test_malformed_versions_are_refused(version: str) -> None:
    with pytest.raises(SpecError, match=r"^ociVersion: must be a semantic version"):
        Spec.from_dict({"ociVersion": version, "root": {"path": "rootfs"}})


def test_version_is_checked_before_anything_else() -> None:
    # A 2.x config may be shaped differently everywhere: the version is the one error worth
    # reporting.
    with pytest.raises(SpecError, match=r"^ociVersion: unsupported"):
        Spec.from_dict({"ociVersion": "2.0.0", "process": "a string now"})


def test_missing_version() -> None:
    with pytest.raises(SpecError, match=r"^ociVersion: is missing; it must be a version"):
        Spec.from_dict({"root": {"path": "rootfs"}})
    with pytest.raises(SpecError, match=r"^ociVersion: is not a string"):
        Spec.from_dict({"ociVersion": 1, "root": {"path": "rootfs"}})


def test_load_spec_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(full_config()))
    assert load_spec(path) == Spec.from_dict(full_config())
    assert load_spec(str(path)).hostname == "slartibartfast"


def test_load_spec_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(SpecError, match=rf"^cannot read {missing}: No such file"):
        load_spec(missing)
    broken = tmp_path / "broken.json"
    broken.write_text('{"ociVersion": "1.0.0",')
    with pytest.raises(SpecError, match=rf"^{broken} is not valid JSON"):
        load_spec(broken)
    not_object = tmp_path / "list.json"
    not_object.write_text("[]")
    with pytest.raises(SpecError, match="must hold a JSON object"):
        load_spec(not_object)


def test_objects_built_in_python_serialise() -> None:
    spec = Spec(
        root=Root(path="rootfs"),
        process=Process(args=["true"], no_new_privileges=True),
        hostname="h",
        hooks=Hooks(poststop=[Hook(path="/bin/cleanup", timeout=3)]),
        linux=Linux(namespaces=[Namespace(type="uts")]),
    )
    out = spec.to_dict()
    assert out["ociVersion"] == "1.3.0"
    assert out["process"] == {
        "user": {"uid": 0, "gid": 0},
        "args": ["true"],
        "cwd": "/",
        "noNewPrivileges": True,
    }
    assert out["hooks"] == {"poststop": [{"path": "/bin/cleanup", "timeout": 3}]}
    assert Spec.from_dict(out) == spec


def test_hooks_of_kind_refuses_unknown_kinds() -> None:
    with pytest.raises(SpecError, match='unknown hook kind "prestop"'):
        Hooks().of_kind("prestop")
