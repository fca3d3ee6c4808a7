"""The v1 driver's exact writes, on fake v1 and hybrid hosts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmos.cgroups import (
    CgroupError,
    DeviceRule,
    Resources,
    ThrottleDevice,
    UnsupportedResource,
    V1Manager,
    WeightDevice,
)
from llmos.cgroups.mounts import discover

from .conftest import Host
from .fakekernel import FakeKernel


def created(host: Host, name: str = "llmos/c1") -> V1Manager:
    m = host.open(name)
    assert isinstance(m, V1Manager)
    m.create()
    return m


def writes(host: Host, since: int = 0) -> list[tuple[str, str]]:
    return host.kernel.writes[since:]


def test_create_copies_cpuset_masks_into_every_new_level(v1_host: Host) -> None:
    m = created(v1_host, "llmos/pod/c1")
    assert [w for w in writes(v1_host) if "cpuset" in w[0]] == [
        ("cgroup/cpuset/llmos/cpuset.cpus", "0-1"),
        ("cgroup/cpuset/llmos/cpuset.mems", "0"),
        ("cgroup/cpuset/llmos/pod/cpuset.cpus", "0-1"),
        ("cgroup/cpuset/llmos/pod/cpuset.mems", "0"),
        ("cgroup/cpuset/llmos/pod/c1/cpuset.cpus", "0-1"),
        ("cgroup/cpuset/llmos/pod/c1/cpuset.mems", "0"),
    ]
    # Nothing else is written at create, and never above the llmos parent.
    assert all("cpuset" in p for p, _ in writes(v1_host))
    assert m.exists()


def test_create_does_not_rewrite_masks_that_are_already_set(v1_host: Host) -> None:
    created(v1_host)
    before = len(v1_host.kernel.writes)
    created(v1_host, "llmos/c2")
    assert writes(v1_host, before) == [
        ("cgroup/cpuset/llmos/c2/cpuset.cpus", "0-1"),
        ("cgroup/cpuset/llmos/c2/cpuset.mems", "0"),
    ]


def test_combined_cpu_cpuacct_mount_is_one_directory(v1_host: Host) -> None:
    m = created(v1_host)
    rel = [os.path.relpath(d, v1_host.root) for d in m.dirs()]
    assert [d for d in rel if d.startswith("cpu") and not d.startswith("cpuset")] == [
        "cpu,cpuacct/llmos/c1"
    ]
    assert m.unified_dir() is None


def test_hybrid_also_places_the_process_in_cgroup2(hybrid_host: Host) -> None:
    m = created(hybrid_host)
    assert m.unified_dir() == str(hybrid_host.root / "unified/llmos/c1")
    assert m.procs_files()[-1] == str(hybrid_host.root / "unified/llmos/c1/cgroup.procs")
    # No controller is enabled on cgroup2 just for placing the process.
    assert not [w for w in writes(hybrid_host) if "unified" in w[0]]


def test_raising_memory_and_swap_writes_memsw_first(v1_host: Host) -> None:
    m = created(v1_host)
    m.apply(Resources(memory_limit=100 << 20, memory_swap=200 << 20))
    m.apply(Resources(memory_limit=300 << 20, memory_swap=400 << 20))
    mem = [w for w in writes(v1_host) if "memory" in w[0]]
    assert mem == [
        ("cgroup/memory/llmos/c1/memory.limit_in_bytes", str(100 << 20)),
        ("cgroup/memory/llmos/c1/memory.memsw.limit_in_bytes", str(200 << 20)),
        ("cgroup/memory/llmos/c1/memory.memsw.limit_in_bytes", str(400 << 20)),
        ("cgroup/memory/llmos/c1/memory.limit_in_bytes", str(300 << 20)),
    ]


def test_lowering_memory_and_swap_writes_the_limit_first(v1_host: Host) -> None:
    m = created(v1_host)
    m.apply(Resources(memory_limit=300 << 20, memory_swap=400 << 20))
    before = len(v1_host.kernel.writes)
    m.apply(Resources(memory_limit=100 << 20, memory_swap=200 << 20))
    assert writes(v1_host, before) == [
        ("cgroup/memory/llmos/c1/memory.limit_in_bytes", str(100 << 20)),
        ("cgroup/memory/llmos/c1/memory.memsw.limit_in_bytes", str(200 << 20)),
    ]


def test_unlimited_memory_also_lifts_memsw(v1_host: Host) -> None:
    m = created(v1_host)
    m.apply(Resources(memory_limit=100 << 20, memory_swap=100 << 20))
    before = len(v1_host.kernel.writes)
    m.apply(Resources(memory_limit=-1))
    assert writes(v1_host, before) == [
        ("cgroup/memory/llmos/c1/memory.memsw.limit_in_bytes", "-1"),
        ("cgroup/memory/llmos/c1/memory.limit_in_bytes", "-1"),
    ]


def test_swap_below_limit_is_refused_before_any_write(v1_host: Host) -> None:
    m = created(v1_host)
    before = len(v1_host.kernel.writes)
    with pytest.raises(CgroupError, match=r"memory\.swap: memory\+swap .* below"):
        m.apply(Resources(memory_limit=200 << 20, memory_swap=100 << 20))
    assert writes(v1_host, before) == []


def test_swap_without_swap_accounting_is_an_error(tmp_path: Path) -> None:
    kernel = FakeKernel(tmp_path)
    root = tmp_path / "cgroup"
    kernel.add_v1(root / "memory", ["memory"], drop=["memory.memsw.limit_in_bytes"])
    m = V1Manager("llmos/c1", discover(str(root), "/nonexistent"), kernel)
    m.create()
    with pytest.raises(UnsupportedResource, match="swapaccount=1"):
        m.apply(Resources(memory_limit=1 << 20, memory_swap=2 << 20))
    # Unlimited swap asks for nothing that is missing.
    m.apply(Resources(memory_limit=1 << 20, memory_swap=-1))
    assert kernel.writes[-1] == ("cgroup/memory/llmos/c1/memory.limit_in_bytes", str(1 << 20))


def test_other_memory_knobs(v1_host: Host) -> None:
    m = created(v1_host)
    before = len(v1_host.kernel.writes)
    m.apply(
        Resources(
            memory_reservation=1 << 20,
            memory_swappiness=10,
            memory_kernel_tcp=2 << 20,
            memory_disable_oom_killer=True,
        )
    )
    assert writes(v1_host, before) == [
        ("cgroup/memory/llmos/c1/memory.soft_limit_in_bytes", str(1 << 20)),
        ("cgroup/memory/llmos/c1/memory.swappiness", "10"),
        ("cgroup/memory/llmos/c1/memory.kmem.tcp.limit_in_bytes", str(2 << 20)),
        ("cgroup/memory/llmos/c1/memory.oom_control", "1"),
    ]


def test_check_before_update_refuses_a_limit_below_usage(v1_host: Host) -> None:
    m = created(v1_host)
    v1_host.kernel.set(v1_host.file("memory", "memory.usage_in_bytes"), "5000")
    with pytest.raises(CgroupError, match="below the current usage 5000"):
        m.apply(Resources(memory_limit=4096, memory_check_before_update=True))


def test_cpu_writes_period_before_quota(v1_host: Host) -> None:
    m = created(v1_host)
    before = len(v1_host.kernel.writes)
    m.apply(
        Resources(
            cpu_shares=512,
            cpu_quota=20000,
            cpu_period=50000,
            cpu_burst=1000,
            cpu_realtime_period=500000,
            cpu_realtime_runtime=1000,
            cpu_idle=0,
        )
    )
    base = "cgroup/cpu,cpuacct/llmos/c1/"
    assert writes(v1_host, before) == [
        (base + "cpu.shares", "512"),
        (base + "cpu.cfs_period_us", "50000"),
        (base + "cpu.cfs_quota_us", "20000"),
        (base + "cpu.cfs_burst_us", "1000"),
        (base + "cpu.rt_period_us", "500000"),
        (base + "cpu.rt_runtime_us", "1000"),
        (base + "cpu.idle", "0"),
    ]


def test_cpu_period_rejected_against_the_old_quota_is_retried_after_it(
    v1_host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = created(v1_host)
    kernel = v1_host.kernel
    real_write = kernel.write
    refused: list[str] = []

    def write(path: str, value: str) -> None:
        if path.endswith("cpu.cfs_period_us") and not refused:
            refused.append(value)
            kernel.writes.append((kernel.rel(path), value))
            kernel._fail("write", path, 22, value)
        real_write(path, value)

    monkeypatch.setattr(kernel, "write", write)
    before = len(kernel.writes)
    m.apply(Resources(cpu_quota=20000, cpu_period=50000))
    assert [w[0].rsplit("/", 1)[1] for w in writes(v1_host, before)] == [
        "cpu.cfs_period_us",
        "cpu.cfs_quota_us",
        "cpu.cfs_period_us",
    ]


def test_clamped_cpu_shares_are_reported(v1_host: Host) -> None:
    m = created(v1_host)
    with pytest.raises(CgroupError, match="the kernel set 262144"):
        m.apply(Resources(cpu_shares=1_000_000))


def test_zero_means_unset_for_shares_quota_and_swap(v1_host: Host) -> None:
    m = created(v1_host)
    before = len(v1_host.kernel.writes)
    m.apply(Resources(cpu_shares=0, cpu_quota=0, memory_swap=0))
    assert writes(v1_host, before) == []


def test_devices_are_written_in_order(v1_host: Host) -> None:
    m = created(v1_host)
    before = len(v1_host.kernel.writes)
    m.apply(
        Resources(
            devices=[
                DeviceRule(False),
                DeviceRule(True, "c", 1, 3, "rwm"),
                DeviceRule(True, "c", 136, None, "rw"),
                DeviceRule(False, "b", 8, 0, "m"),
            ]
        )
    )
    assert writes(v1_host, before) == [
        ("cgroup/devices/llmos/c1/devices.deny", "a *:* rwm"),
        ("cgroup/devices/llmos/c1/devices.allow", "c 1:3 rwm"),
        ("cgroup/devices/llmos/c1/devices.allow", "c 136:* rw"),
        ("cgroup/devices/llmos/c1/devices.deny", "b 8:0 m"),
    ]


def test_blkio_without_a_weight_file_is_an_error(v1_host: Host) -> None:
    m = created(v1_host)
    with pytest.raises(UnsupportedResource, match=r"blockIO\.weight: neither blkio.weight"):
        m.apply(Resources(blkio_weight=500))


def test_blkio_uses_bfq_files_when_that_is_what_exists(tmp_path: Path) -> None:
    kernel = FakeKernel(tmp_path)
    root = tmp_path / "cgroup"
    kernel.add_v1(
        root / "blkio",
        ["blkio"],
        extra={"blkio.bfq.weight": "100", "blkio.bfq.weight_device": ""},
    )
    m = V1Manager("llmos/c1", discover(str(root), "/nonexistent"), kernel)
    m.create()
    m.apply(
        Resources(
            blkio_weight=300,
            blkio_weight_devices=[WeightDevice(8, 0, weight=200)],
            blkio_throttle_read_bps=[ThrottleDevice(8, 0, 1048576)],
            blkio_throttle_write_iops=[ThrottleDevice(8, 16, 100)],
        )
    )
    assert kernel.writes == [
        ("cgroup/blkio/llmos/c1/blkio.bfq.weight", "300"),
        ("cgroup/blkio/llmos/c1/blkio.bfq.weight_device", "8:0 200"),
        ("cgroup/blkio/llmos/c1/blkio.throttle.read_bps_device", "8:0 1048576"),
        ("cgroup/blkio/llmos/c1/blkio.throttle.write_iops_device", "8:16 100"),
    ]


def test_hugetlb_on_v1(v1_host: Host) -> None:
    m = created(v1_host)
    before = len(v1_host.kernel.writes)
    m.apply(Resources(hugepage_limits=[("2MB", 4 << 20)]))
    assert writes(v1_host, before) == [
        ("cgroup/hugetlb/llmos/c1/hugetlb.2MB.limit_in_bytes", str(4 << 20)),
    ]
    with pytest.raises(UnsupportedResource, match=r"hugepageLimits\[0\]\.pageSize: no 64KB"):
        m.apply(Resources(hugepage_limits=[("64KB", 1)]))


def test_hybrid_hugetlb_not_delegated_on_cgroup2_is_an_error(hybrid_host: Host) -> None:
    """Like this host: hugetlb is only on cgroup2 and the host root does not delegate it."""
    m = created(hybrid_host)
    before = len(hybrid_host.kernel.writes)
    with pytest.raises(UnsupportedResource, match="hugetlb is not mounted as cgroup v1"):
        m.apply(Resources(hugepage_limits=[("2MB", 4 << 20)]))
    # The host's own cgroup2 root was never written.
    assert all("unified/llmos" in p for p, _ in writes(hybrid_host, before))


def test_hybrid_hugetlb_delegated_on_cgroup2_is_used(tmp_path: Path) -> None:
    kernel = FakeKernel(tmp_path)
    root = tmp_path / "cgroup"
    kernel.add_v1(root / "memory", ["memory"])
    kernel.add_v2(root / "unified", ["hugetlb"], enabled=["hugetlb"])
    m = V1Manager("llmos/c1", discover(str(root), "/nonexistent"), kernel)
    m.create()
    m.apply(Resources(hugepage_limits=[("2MB", 4 << 20)]))
    assert kernel.writes == [
        ("cgroup/unified/llmos/cgroup.subtree_control", "+hugetlb"),
        ("cgroup/unified/llmos/c1/hugetlb.2MB.rsvd.max", str(4 << 20)),
        ("cgroup/unified/llmos/c1/hugetlb.2MB.max", str(4 << 20)),
    ]


def test_unified_keys_are_refused_on_v1(hybrid_host: Host) -> None:
    m = created(hybrid_host)
    with pytest.raises(UnsupportedResource, match=r"linux\.resources\.unified: needs cgroup v2"):
        m.apply(Resources(unified={"memory.high": "1000"}))


def test_missing_hierarchy_names_the_field(tmp_path: Path) -> None:
    kernel = FakeKernel(tmp_path)
    root = tmp_path / "cgroup"
    kernel.add_v1(root / "memory", ["memory"])
    m = V1Manager("llmos/c1", discover(str(root), "/nonexistent"), kernel)
    m.create()
    with pytest.raises(UnsupportedResource, match=r"linux\.resources\.pids: the pids controller"):
        m.apply(Resources(pids_limit=5))
    assert not m.can_freeze()
    with pytest.raises(UnsupportedResource, match="no cgroup v1 freezer"):
        m.freeze()


def test_freezer_writes(v1_host: Host) -> None:
    m = created(v1_host)
    before = len(v1_host.kernel.writes)
    m.freeze()
    m.thaw()
    assert writes(v1_host, before) == [
        ("cgroup/freezer/llmos/c1/freezer.state", "FROZEN"),
        ("cgroup/freezer/llmos/c1/freezer.state", "THAWED"),
    ]


def test_a_freeze_that_never_completes_is_undone(v1_host: Host) -> None:
    m = created(v1_host)
    kernel = v1_host.kernel
    state = v1_host.file("freezer", "freezer.state")
    real_write = kernel.write

    def stuck(path: str, value: str) -> None:
        real_write(path, value)
        if path == state and value == "FROZEN":
            kernel.set(path, "FREEZING")

    kernel.write = stuck  # type: ignore[method-assign]
    with pytest.raises(CgroupError, match="still FREEZING"):
        m.freeze(timeout=0.05)
    assert kernel.value(state) == "THAWED"


def test_paths_lists_every_controller(v1_host: Host) -> None:
    m = created(v1_host)
    paths = m.paths()
    assert paths["cpu"] == paths["cpuacct"] == str(v1_host.root / "cpu,cpuacct/llmos/c1")
    assert set(paths) >= {"memory", "pids", "freezer", "devices", "cpuset", "blkio", "hugetlb"}
    assert all(os.path.isdir(p) for p in paths.values())
