"""The v2 driver's exact writes, on a fake pure cgroup v2 host."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos.cgroups import (
    CgroupError,
    DeviceRule,
    Resources,
    ThrottleDevice,
    UnsupportedResource,
    V2Manager,
    WeightDevice,
)
from llmos.cgroups.v2.devices import compile_program, effective_rules

from .conftest import Host
from .fakekernel import FakeKernel


def created(host: Host, name: str = "llmos/c1") -> V2Manager:
    m = host.open(name)
    assert isinstance(m, V2Manager)
    m.create()
    return m


def since(host: Host, before: int) -> list[tuple[str, str]]:
    return host.kernel.writes[before:]


def test_create_enables_controllers_one_write_each_in_owned_parents_only(v2_host: Host) -> None:
    created(v2_host, "llmos/pod/c1")
    expected = []
    for parent in ("llmos", "llmos/pod"):
        # one write per controller; rdma and misc are offered but the host root does not
        # delegate them, so they are skipped
        for ctrl in ("cpuset", "cpu", "io", "memory", "hugetlb", "pids"):
            expected.append((f"cgroup/{parent}/cgroup.subtree_control", f"+{ctrl}"))
    assert v2_host.kernel.writes == expected
    leaf = Path(v2_host.root / "llmos/pod/c1")
    assert (leaf / "memory.max").exists() and (leaf / "pids.max").exists()
    assert (leaf / "cgroup.subtree_control").read_text() == ""  # never in the leaf


def test_a_second_container_does_not_rewrite_the_parent(v2_host: Host) -> None:
    created(v2_host)
    before = len(v2_host.kernel.writes)
    created(v2_host, "llmos/c2")
    assert since(v2_host, before) == []


def test_several_controllers_in_one_write_would_fail_whole(v2_host: Host) -> None:
    """The fake kernel refuses "+memory +nope" entirely, as Linux does."""
    created(v2_host)
    subtree = str(v2_host.root / "llmos/cgroup.subtree_control")
    with pytest.raises(CgroupError, match="No such file"):
        v2_host.kernel.write(subtree, "+memory +nope")


def test_a_controller_the_host_does_not_delegate_is_an_error_when_needed(
    tmp_path: Path,
) -> None:
    kernel = FakeKernel(tmp_path)
    root = tmp_path / "cgroup"
    kernel.add_v2(root, ["cpu", "memory", "pids"], enabled=["cpu", "pids"])
    m = V2Manager("llmos/c1", str(root), kernel, device_loader=lambda *_: None)
    m.create()
    m.apply(Resources(pids_limit=10))  # fine without memory
    with pytest.raises(UnsupportedResource, match=r"linux\.resources\.memory: .*'memory'") as e:
        m.apply(Resources(memory_limit=1 << 20))
    assert "cgroup/cgroup.controllers lacks" not in str(e.value)  # the root itself is not ours
    assert "llmos/cgroup.controllers lacks 'memory'" in str(e.value)
    # The host root's subtree_control was never written.
    assert all(not p.startswith("cgroup/cgroup.") for p, _ in kernel.writes)


def test_a_controller_delegated_after_create_is_enabled_at_apply(tmp_path: Path) -> None:
    kernel = FakeKernel(tmp_path)
    root = tmp_path / "cgroup"
    kernel.add_v2(root, ["cpu", "memory"], enabled=["cpu"])
    m = V2Manager("llmos/c1", str(root), kernel, device_loader=lambda *_: None)
    m.create()
    kernel.set(str(root / "cgroup.subtree_control"), "cpu memory")
    kernel.set(str(root / "llmos/cgroup.controllers"), "cpu memory")
    before = len(kernel.writes)
    m.apply(Resources(memory_limit=1 << 20))
    assert kernel.writes[before:] == [
        ("cgroup/llmos/cgroup.subtree_control", "+memory"),
        ("cgroup/llmos/c1/memory.max", str(1 << 20)),
    ]


def test_memory_writes(v2_host: Host) -> None:
    m = created(v2_host)
    before = len(v2_host.kernel.writes)
    m.apply(Resources(memory_limit=256 << 20, memory_swap=512 << 20, memory_reservation=1 << 20))
    assert since(v2_host, before) == [
        ("cgroup/llmos/c1/memory.swap.max", str(256 << 20)),
        ("cgroup/llmos/c1/memory.max", str(256 << 20)),
        ("cgroup/llmos/c1/memory.low", str(1 << 20)),
    ]


def test_swap_equal_to_limit_means_no_swap(v2_host: Host) -> None:
    m = created(v2_host)
    m.apply(Resources(memory_limit=32 << 20, memory_swap=32 << 20))
    assert v2_host.read("memory", "memory.swap.max") == "0"


@pytest.mark.parametrize(
    "res,match",
    [
        (Resources(memory_swap=1 << 20), "needs a memory limit"),
        (Resources(memory_limit=2 << 20, memory_swap=1 << 20), "below the memory limit"),
        (Resources(memory_swappiness=0), r"memory\.swappiness: cgroup v2"),
        (Resources(memory_kernel=1 << 20), r"memory\.kernel: cgroup v2"),
        (Resources(memory_kernel_tcp=1 << 20), r"memory\.kernelTCP: cgroup v2"),
        (Resources(memory_disable_oom_killer=True), "cannot disable the OOM killer"),
        (Resources(memory_use_hierarchy=False), "always hierarchical"),
        (Resources(cpu_realtime_runtime=1000), r"cpu\.realtimeRuntime: cgroup v2"),
        (Resources(blkio_leaf_weight=100), r"blockIO\.leafWeight"),
        (Resources(network_class_id=1), r"linux\.resources\.network"),
    ],
)
def test_what_v2_cannot_do_is_an_error_never_ignored(
    v2_host: Host, res: Resources, match: str
) -> None:
    m = created(v2_host)
    before = len(v2_host.kernel.writes)
    with pytest.raises(CgroupError, match=match):
        m.apply(res)
    assert since(v2_host, before) == []


def test_cpu_writes(v2_host: Host) -> None:
    m = created(v2_host)
    before = len(v2_host.kernel.writes)
    m.apply(Resources(cpu_shares=2, cpu_quota=25000, cpu_period=50000, cpu_burst=500, cpu_idle=0))
    assert since(v2_host, before) == [
        ("cgroup/llmos/c1/cpu.weight", "1"),
        ("cgroup/llmos/c1/cpu.max", "25000 50000"),
        ("cgroup/llmos/c1/cpu.max.burst", "500"),
        ("cgroup/llmos/c1/cpu.idle", "0"),
    ]


def test_cpu_quota_alone_keeps_the_period(v2_host: Host) -> None:
    m = created(v2_host)
    m.apply(Resources(cpu_quota=50000))
    assert v2_host.kernel.writes[-1] == ("cgroup/llmos/c1/cpu.max", "50000")


def test_cpu_period_alone_keeps_the_quota(v2_host: Host) -> None:
    m = created(v2_host)
    v2_host.kernel.set(v2_host.file("cpu", "cpu.max"), "30000 100000\n")
    m.apply(Resources(cpu_period=60000))
    assert v2_host.kernel.writes[-1] == ("cgroup/llmos/c1/cpu.max", "30000 60000")


def test_io_weight_is_converted_for_io_weight(v2_host: Host) -> None:
    m = created(v2_host)
    before = len(v2_host.kernel.writes)
    m.apply(
        Resources(
            blkio_weight=500,
            blkio_weight_devices=[WeightDevice(8, 0, weight=1000)],
            blkio_throttle_read_bps=[ThrottleDevice(8, 0, 1 << 20)],
            blkio_throttle_write_bps=[ThrottleDevice(8, 0, 0)],
            blkio_throttle_read_iops=[ThrottleDevice(8, 0, 100)],
            blkio_throttle_write_iops=[ThrottleDevice(8, 0, 50)],
        )
    )
    assert since(v2_host, before) == [
        ("cgroup/llmos/c1/io.weight", "4950"),
        ("cgroup/llmos/c1/io.weight", "8:0 10000"),
        ("cgroup/llmos/c1/io.max", f"8:0 rbps={1 << 20}"),
        ("cgroup/llmos/c1/io.max", "8:0 wbps=max"),
        ("cgroup/llmos/c1/io.max", "8:0 riops=100"),
        ("cgroup/llmos/c1/io.max", "8:0 wiops=50"),
    ]


def test_io_bfq_weight_takes_the_oci_value(v2_host: Host) -> None:
    m = created(v2_host)
    Path(v2_host.file("io", "io.bfq.weight")).write_text("default 100")
    m.apply(Resources(blkio_weight=500))
    assert v2_host.kernel.writes[-1] == ("cgroup/llmos/c1/io.bfq.weight", "500")


def test_pids_cpuset_hugetlb(v2_host: Host) -> None:
    m = created(v2_host)
    before = len(v2_host.kernel.writes)
    m.apply(
        Resources(pids_limit=-1, cpuset_cpus="0", cpuset_mems="0", hugepage_limits=[("2MB", 0)])
    )
    assert since(v2_host, before) == [
        ("cgroup/llmos/c1/cpuset.cpus", "0"),
        ("cgroup/llmos/c1/cpuset.mems", "0"),
        ("cgroup/llmos/c1/pids.max", "max"),
        ("cgroup/llmos/c1/hugetlb.2MB.rsvd.max", "0"),
        ("cgroup/llmos/c1/hugetlb.2MB.max", "0"),
    ]


def test_unified_keys_are_written_last_and_win(v2_host: Host) -> None:
    m = created(v2_host)
    before = len(v2_host.kernel.writes)
    m.apply(Resources(memory_limit=1 << 20, unified={"memory.max": "2097152", "memory.high": "1"}))
    assert since(v2_host, before) == [
        ("cgroup/llmos/c1/memory.max", str(1 << 20)),
        ("cgroup/llmos/c1/memory.max", "2097152"),
        ("cgroup/llmos/c1/memory.high", "1"),
    ]


@pytest.mark.parametrize(
    "key,match",
    [
        ("memory.nope", r"unified\.memory\.nope: .* does not exist"),
        ("cgroup.procs", r"unified\.cgroup\.procs: not a resource file"),
        ("rdma.max", r"unified\.rdma\.\*: the cgroup v2 'rdma' controller"),
    ],
)
def test_bad_unified_keys_are_errors(v2_host: Host, key: str, match: str) -> None:
    m = created(v2_host)
    with pytest.raises(UnsupportedResource, match=match):
        m.apply(Resources(unified={key: "1"}))


def test_devices_become_a_program_for_the_loader(v2_host: Host) -> None:
    m = created(v2_host)
    rules = [DeviceRule(False), DeviceRule(True, "c", 1, 3, "rwm")]
    m.apply(Resources(devices=rules))
    assert v2_host.programs == [
        (str(v2_host.root / "llmos/c1"), compile_program(effective_rules(rules)))
    ]


def test_freeze_waits_for_cgroup_events(v2_host: Host) -> None:
    m = created(v2_host)
    kernel = v2_host.kernel
    real = kernel.write
    events = v2_host.file("cpu", "cgroup.events")

    def slow(path: str, value: str) -> None:
        real(path, value)
        if path.endswith("cgroup.freeze"):
            kernel.set(events, "populated 1\nfrozen 0\n")  # requested, not complete

    kernel.write = slow  # type: ignore[method-assign]
    with pytest.raises(CgroupError, match="not frozen"):
        m.freeze(timeout=0.05)
    assert not m.frozen()
    assert kernel.value(v2_host.file("cpu", "cgroup.freeze")) == "0"  # undone


def test_kill_uses_cgroup_kill(v2_host: Host) -> None:
    m = created(v2_host)
    m.kill_all()
    assert v2_host.kernel.writes[-1] == ("cgroup/llmos/c1/cgroup.kill", "1")


def test_stats_without_controllers_still_count(tmp_path: Path) -> None:
    """cgroup2 without delegated controllers (the hybrid unified tree): core files only."""
    kernel = FakeKernel(tmp_path)
    root = tmp_path / "cgroup"
    kernel.add_v2(root, [], enabled=[])
    m = V2Manager("llmos/c1", str(root), kernel)
    m.create()
    kernel.set(str(root / "llmos/c1/cpu.stat"), "usage_usec 12\nuser_usec 10\nsystem_usec 2\n")
    st = m.stats()
    assert st.cpu_usage_ns == 12000 and st.memory_limit is None and st.pids_current == 0
    assert m.oom_kill_count() == 0
