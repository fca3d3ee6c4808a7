"""Finding the hierarchies: mountinfo parsing, directory probing, mode detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos.cgroups import CgroupError, V1Manager, V2Manager, detect_mode, discover, open_cgroup
from llmos.cgroups.mounts import parse_mountinfo

from .conftest import Host, make_v2

# This machine's cgroup lines (a hybrid host), with one unrelated mount.
HYBRID = """\
22 1 0:21 / /proc rw,nosuid - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

COMBINED = """\
25 18 0:22 / /sys/fs/cgroup rw shared:9 - tmpfs tmpfs ro,mode=755
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:11 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid shared:12 - cgroup cgroup rw,memory
"""

PURE_V2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "mountinfo"
    path.write_text(text)
    return str(path)


def test_this_hybrid_host_layout(tmp_path: Path) -> None:
    layout = discover("/sys/fs/cgroup", write(tmp_path, HYBRID))
    assert layout.mode == "hybrid"
    assert layout.unified == "/sys/fs/cgroup/unified"
    assert layout.v1 == {
        c: f"/sys/fs/cgroup/{c}"
        for c in ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")
    }
    assert "systemd" not in layout.v1 and "name=systemd" not in layout.v1


def test_combined_mount_and_optional_fields(tmp_path: Path) -> None:
    layout = discover("/sys/fs/cgroup", write(tmp_path, COMBINED))
    assert layout.mode == "v1"
    assert layout.v1["cpu"] == layout.v1["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"


def test_pure_v2(tmp_path: Path) -> None:
    layout = discover("/sys/fs/cgroup", write(tmp_path, PURE_V2))
    assert layout.mode == "v2" and layout.unified == "/sys/fs/cgroup" and not layout.v1


def test_only_mounts_under_the_root_count(tmp_path: Path) -> None:
    layout = discover("/sys/fs/cgroup/unified", write(tmp_path, HYBRID))
    assert layout.mode == "v2" and layout.unified == "/sys/fs/cgroup/unified"


def test_a_hidden_cgroup2_mount_is_ignored(tmp_path: Path) -> None:
    """crun on this host needs a tmpfs over the cgroup2 mount; then the host looks v1."""
    hidden = HYBRID + "99 41 0:90 / /sys/fs/cgroup/unified rw - tmpfs x rw\n"
    layout = discover("/sys/fs/cgroup", write(tmp_path, hidden))
    assert layout.mode == "v1" and layout.unified is None


def test_escaped_mount_points() -> None:
    (m,) = parse_mountinfo("1 0 0:1 / /a\\040b rw - cgroup2 cgroup2 rw\n")
    assert m.mount_point == "/a b"


def test_directory_probing_for_temporary_roots(host: Host) -> None:
    layout = discover(str(host.root), str(host.root / "absent"))
    assert layout.mode == host.mode
    assert detect_mode(str(host.root)) == host.mode  # real mountinfo has nothing there


def test_empty_root_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CgroupError, match="no cgroup hierarchy found"):
        discover(str(tmp_path), str(tmp_path / "absent"))


def test_mode_override(hybrid_host: Host, tmp_path: Path) -> None:
    root = str(hybrid_host.root)
    m = open_cgroup("llmos/x", root, "v1", mountinfo="/nonexistent")
    assert isinstance(m, V1Manager) and m.unified_dir() is None
    assert isinstance(open_cgroup("llmos/x", root, "v2", mountinfo="/nonexistent"), V2Manager)
    with pytest.raises(CgroupError, match="must be one of"):
        open_cgroup("llmos/x", root, "v3", mountinfo="/nonexistent")
    with pytest.raises(CgroupError, match="no cgroup v1 hierarchy"):
        v2 = make_v2(tmp_path / "other")
        open_cgroup("llmos/x", str(v2.root), "hybrid", mountinfo="/nonexistent")
