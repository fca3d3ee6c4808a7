"""unsupported_fields: valid configs llmos must refuse rather than half-honour."""

from __future__ import annotations

from typing import Any

import pytest

from llmos.spec import HostSecurity, Spec, unsupported_fields

BARE = HostSecurity(apparmor=False, selinux=False)
LSMS = HostSecurity(apparmor=True, selinux=True)


def spec(process: dict[str, Any] | None = None, linux: dict[str, Any] | None = None) -> Spec:
    config: dict[str, Any] = {
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/", **(process or {})},
    }
    if linux is not None:
        config["linux"] = linux
    return Spec.from_dict(config)


def test_a_plain_config_is_supported() -> None:
    assert unsupported_fields(spec(linux={"personality": {"domain": "LINUX32"}}), BARE) == []


@pytest.mark.parametrize(
    ("process", "linux", "host", "expected"),
    [
        (
            {"apparmorProfile": "p"},
            None,
            BARE,
            "process.apparmorProfile: AppArmor is not enabled on this host",
        ),
        (
            {"apparmorProfile": "p"},
            None,
            LSMS,
            "process.apparmorProfile: llmos does not apply AppArmor profiles yet",
        ),
        (
            {"selinuxLabel": "l"},
            None,
            BARE,
            "process.selinuxLabel: SELinux is not enabled on this host",
        ),
        (
            {"ioPriority": {"class": "IOPRIO_CLASS_RT"}},
            None,
            BARE,
            "process.ioPriority: llmos does not set I/O priorities yet",
        ),
        (
            {"scheduler": {"policy": "SCHED_FIFO"}},
            None,
            BARE,
            "process.scheduler: llmos does not set scheduling policies yet",
        ),
        (
            {"execCPUAffinity": {"final": "1"}},
            None,
            BARE,
            "process.execCPUAffinity: llmos does not set CPU affinity for exec yet",
        ),
        (
            None,
            {"intelRdt": {"closID": "x"}},
            LSMS,
            "linux.intelRdt: llmos does not support Intel RDT (resctrl)",
        ),
        (None, {"mountLabel": "l"}, BARE, "linux.mountLabel: SELinux is not enabled on this host"),
        (
            None,
            {"personality": {"domain": "LINUX", "flags": ["X"]}},
            BARE,
            "linux.personality.flags: no personality flags are supported",
        ),
        (
            None,
            {"seccomp": {"defaultAction": "SCMP_ACT_NOTIFY"}},
            BARE,
            "linux.seccomp: SCMP_ACT_NOTIFY and listenerPath (seccomp agents) are not supported "
            "by llmos",
        ),
        (
            None,
            {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock"}},
            BARE,
            "linux.seccomp: SCMP_ACT_NOTIFY and listenerPath (seccomp agents) are not "
            "supported by llmos",
        ),
        (
            None,
            {"timeOffsets": {"boottime": {"secs": 1}}},
            BARE,
            "linux.timeOffsets: llmos does not set time namespace offsets yet",
        ),
        (
            None,
            {"netDevices": {"eth1": {}}},
            BARE,
            "linux.netDevices: llmos does not move network devices into containers yet",
        ),
        (
            None,
            {"memoryPolicy": {"mode": "MPOL_LOCAL"}},
            BARE,
            "linux.memoryPolicy: llmos does not set NUMA memory policies yet",
        ),
    ],
)
def test_each_unsupported_field_is_named(
    process: dict[str, Any] | None, linux: dict[str, Any] | None, host: HostSecurity, expected: str
) -> None:
    assert unsupported_fields(spec(process, linux), host) == [expected]


def test_selinux_labels_are_fine_where_selinux_runs() -> None:
    s = spec({"selinuxLabel": "l"}, {"mountLabel": "m"})
    assert unsupported_fields(s, LSMS) == []


def test_all_problems_are_listed_together() -> None:
    s = spec({"apparmorProfile": "p", "selinuxLabel": "l"}, {"intelRdt": {}})
    assert len(unsupported_fields(s, BARE)) == 3


def test_host_probe_runs() -> None:
    host = HostSecurity.probe()
    assert isinstance(host.apparmor, bool) and isinstance(host.selinux, bool)
