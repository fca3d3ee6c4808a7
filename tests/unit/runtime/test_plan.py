"""The plan is pure data: check what a config turns into, without root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmos.errors import ConfigError
from llmos.plan import (
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    MS_BIND,
    MS_RDONLY,
    MS_REC,
    CgroupHierarchy,
    Overlay,
    PlanContext,
    cgroup_mount_steps,
    host_cgroup_hierarchies,
    overlay_mounts,
    plan_container,
)


def _config(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    from llmos.spec import default_spec

    (tmp_path / "rootfs").mkdir(exist_ok=True)
    cfg = default_spec(["sh", "-c", "true"]).to_dict()
    cfg["root"] = {"path": "rootfs"}
    cfg.update(changes)
    return cfg


def test_default_plan(tmp_path: Path) -> None:
    plan = plan_container(_config(tmp_path), PlanContext(bundle=tmp_path))
    assert plan.argv == ["sh", "-c", "true"]
    assert plan.clone_flags & CLONE_NEWNS and plan.clone_flags & CLONE_NEWPID
    assert plan.clone_flags & CLONE_NEWNET
    assert plan.rootfs == str((tmp_path / "rootfs").resolve())
    assert [m.target for m in plan.mounts][:2] == ["/proc", "/dev"]
    assert "/proc/kcore" in plan.masked_paths
    assert plan.no_new_privs is True
    caps = plan.capabilities
    assert caps is not None and caps.bounding == caps.effective
    assert any(d.path == "/dev/null" and d.major == 1 and d.minor == 3 for d in plan.devices)
    assert ("pts/ptmx", "/dev/ptmx") in plan.symlinks
    assert any(e.startswith("PATH=") for e in plan.env)


def test_bind_mount_becomes_mount_and_remount(tmp_path: Path) -> None:
    src = tmp_path / "data"
    src.mkdir()
    cfg = _config(tmp_path)
    cfg["mounts"].append({"destination": "/data", "type": "bind", "source": str(src),
                          "options": ["rbind", "ro", "nosuid"]})
    plan = plan_container(cfg, PlanContext(bundle=tmp_path))
    m = plan.mounts[-1]
    assert m.flags == MS_BIND | MS_REC
    assert m.remount_flags & MS_RDONLY
    assert m.is_file is False


def test_bind_source_missing_names_field(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    cfg["mounts"].append({"destination": "/x", "type": "bind", "source": "/nonexistent-src",
                          "options": ["bind"]})
    with pytest.raises(ConfigError, match=r"mounts\[\d+\]\.source: /nonexistent-src"):
        plan_container(cfg, PlanContext(bundle=tmp_path))


def test_relative_mount_destination_refused(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    cfg["mounts"].append({"destination": "rel", "type": "tmpfs", "source": "tmpfs"})
    with pytest.raises(ConfigError, match="destination: must be an absolute path"):
        plan_container(cfg, PlanContext(bundle=tmp_path))


def test_terminal_needs_console_socket(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    cfg["process"]["terminal"] = True
    with pytest.raises(ConfigError, match="console socket"):
        plan_container(cfg, PlanContext(bundle=tmp_path))


def test_overlay_long_lowerdir_uses_relative_paths() -> None:
    lower = [f"/var/lib/llmos/snapshots/{i:04d}/fs" for i in range(200)]
    steps, cwd = overlay_mounts(
        Overlay(lower=lower, upper="/var/lib/llmos/snapshots/up/fs",
                work="/var/lib/llmos/snapshots/up/work"),
        "/rootfs",
    )
    assert cwd == "/var/lib/llmos/snapshots"
    assert steps[0].data is not None and len(steps[0].data) < 4096
    assert steps[0].data.startswith("lowerdir=0000/fs:0001/fs")


def test_cgroup_mount_on_hybrid_host() -> None:
    hier = [
        CgroupHierarchy("/sys/fs/cgroup/memory", "cgroup", "memory"),
        CgroupHierarchy("/sys/fs/cgroup/cpu,cpuacct", "cgroup", "cpu,cpuacct"),
        CgroupHierarchy("/sys/fs/cgroup/unified", "cgroup2", ""),
    ]
    steps = cgroup_mount_steps("/sys/fs/cgroup", MS_RDONLY, hier)
    assert steps[0].fstype == "tmpfs"
    assert [s.target for s in steps[1:4]] == [
        "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/unified"]
    assert steps[1].data == "memory" and steps[1].flags & MS_RDONLY
    assert steps[-1].flags & MS_RDONLY and steps[-1].fstype is None


def test_cgroup_mount_on_v2_host() -> None:
    steps = cgroup_mount_steps(
        "/sys/fs/cgroup", MS_RDONLY, [CgroupHierarchy("/sys/fs/cgroup", "cgroup2", "")]
    )
    assert len(steps) == 1 and steps[0].fstype == "cgroup2"


def test_mountinfo_parse() -> None:
    text = (
        "35 25 0:30 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n"
        "36 25 0:31 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
        "30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n"
        "22 1 0:5 / /proc rw - proc proc rw\n"
    )
    h = host_cgroup_hierarchies(text)
    assert [(x.mountpoint, x.options) for x in h] == [
        ("/sys/fs/cgroup/memory", "memory"),
        ("/sys/fs/cgroup/systemd", "xattr,name=systemd"),
        ("/sys/fs/cgroup/unified", ""),
    ]


def test_rlimit_soft_above_hard(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]
    with pytest.raises(ConfigError, match=r"rlimits\[0\]: soft limit 10 is above"):
        plan_container(cfg, PlanContext(bundle=tmp_path))
