"""One conformance suite for every driver: what the runtime may rely on, whatever the host.

Each test runs on a fake v1 host, a fake hybrid host (like the development machines) and a
fake pure v2 host. Where the kernel files differ, the table below says which file each driver
must write and what value.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos.cgroups import (
    CgroupBusy,
    CgroupError,
    CgroupManager,
    Resources,
    V1Manager,
    V2Manager,
)

from .conftest import Host

# resources -> (controller, file, value) per driver family ("v1" also covers hybrid)
EXPECT: list[tuple[str, Resources, dict[str, list[tuple[str, str, str]]]]] = [
    (
        "memory limit",
        Resources(memory_limit=64 << 20),
        {
            "v1": [("memory", "memory.limit_in_bytes", str(64 << 20))],
            "v2": [("memory", "memory.max", str(64 << 20))],
        },
    ),
    (
        "memory limit and swap",
        Resources(memory_limit=64 << 20, memory_swap=96 << 20),
        {
            "v1": [
                ("memory", "memory.limit_in_bytes", str(64 << 20)),
                ("memory", "memory.memsw.limit_in_bytes", str(96 << 20)),
            ],
            "v2": [
                ("memory", "memory.max", str(64 << 20)),
                ("memory", "memory.swap.max", str(32 << 20)),
            ],
        },
    ),
    (
        "unlimited memory",
        Resources(memory_limit=-1),
        {
            "v1": [("memory", "memory.limit_in_bytes", "-1")],
            "v2": [("memory", "memory.max", "max"), ("memory", "memory.swap.max", "max")],
        },
    ),
    (
        "memory reservation",
        Resources(memory_reservation=32 << 20),
        {
            "v1": [("memory", "memory.soft_limit_in_bytes", str(32 << 20))],
            "v2": [("memory", "memory.low", str(32 << 20))],
        },
    ),
    (
        "cpu quota and period",
        Resources(cpu_quota=50000, cpu_period=100000),
        {
            "v1": [
                ("cpu", "cpu.cfs_quota_us", "50000"),
                ("cpu", "cpu.cfs_period_us", "100000"),
            ],
            "v2": [("cpu", "cpu.max", "50000 100000")],
        },
    ),
    (
        "unlimited cpu quota",
        Resources(cpu_quota=-1),
        {"v1": [("cpu", "cpu.cfs_quota_us", "-1")], "v2": [("cpu", "cpu.max", "max")]},
    ),
    (
        "cpu shares",
        Resources(cpu_shares=1024),
        {"v1": [("cpu", "cpu.shares", "1024")], "v2": [("cpu", "cpu.weight", "100")]},
    ),
    (
        "cpuset",
        Resources(cpuset_cpus="1", cpuset_mems="0"),
        {
            "v1": [("cpuset", "cpuset.cpus", "1"), ("cpuset", "cpuset.mems", "0")],
            "v2": [("cpuset", "cpuset.cpus", "1"), ("cpuset", "cpuset.mems", "0")],
        },
    ),
    (
        "pids limit",
        Resources(pids_limit=32),
        {"v1": [("pids", "pids.max", "32")], "v2": [("pids", "pids.max", "32")]},
    ),
    (
        "unlimited pids",
        Resources(pids_limit=0),
        {"v1": [("pids", "pids.max", "max")], "v2": [("pids", "pids.max", "max")]},
    ),
]


def family(host: Host) -> str:
    return "v2" if host.mode == "v2" else "v1"


@pytest.fixture
def mgr(host: Host) -> Iterator[CgroupManager]:
    m = host.open()
    m.create()
    yield m


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A real process whose pid the fake kernel lists (and the kill tests really kill)."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_factory_picks_the_driver_for_the_layout(host: Host) -> None:
    m = host.open()
    assert isinstance(m, V2Manager if host.mode == "v2" else V1Manager)
    assert m.name == "llmos/c1"


@pytest.mark.parametrize("bad", ["c1", "other/c1", "llmos", "llmos/../x", "llmos//x", ""])
def test_names_outside_the_llmos_parent_are_refused(host: Host, bad: str) -> None:
    with pytest.raises(CgroupError, match="below 'llmos/'"):
        host.open(bad)


def test_create_makes_every_directory_and_is_idempotent(host: Host) -> None:
    m = host.open()
    assert not m.exists()
    m.create()
    m.create()
    assert m.exists()
    assert m.dirs()
    for d in m.dirs():
        assert os.path.isdir(d), d
        assert d.endswith("/llmos/c1")


def test_procs_files_exist_and_unified_dir_matches_the_host(host: Host, mgr: CgroupManager) -> None:
    files = mgr.procs_files()
    assert files and all(f.endswith("/cgroup.procs") and os.path.isfile(f) for f in files)
    if host.mode == "v1":
        assert mgr.unified_dir() is None
    else:
        assert host.unified is not None
        assert mgr.unified_dir() == str(host.unified / "llmos/c1")
        assert os.path.join(str(mgr.unified_dir()), "cgroup.procs") in files


@pytest.mark.parametrize("label,resources,expected", EXPECT, ids=[e[0] for e in EXPECT])
def test_apply_writes_the_drivers_files(
    host: Host,
    mgr: CgroupManager,
    label: str,
    resources: Resources,
    expected: dict[str, list[tuple[str, str, str]]],
) -> None:
    mgr.apply(resources)
    for controller, filename, value in expected[family(host)]:
        assert host.read(controller, filename) == value, (label, filename)


def test_apply_with_nothing_set_writes_nothing(host: Host, mgr: CgroupManager) -> None:
    before = len(host.kernel.writes)
    mgr.apply(Resources())
    assert host.kernel.writes[before:] == []


def test_apply_only_touches_the_containers_own_cgroup(host: Host, mgr: CgroupManager) -> None:
    """Apart from enabling controllers in owned parents, every write lands in llmos/c1."""
    before = len(host.kernel.writes)
    mgr.apply(Resources(memory_limit=1 << 30, pids_limit=10, cpu_shares=512))
    for path, _ in host.kernel.writes[before:]:
        assert "/llmos/c1/" in path or path.endswith("llmos/cgroup.subtree_control"), path


def test_add_pid_and_pids(host: Host, mgr: CgroupManager, sleeper: subprocess.Popen[bytes]) -> None:
    mgr.add_pid(sleeper.pid)
    for f in mgr.procs_files():
        assert Path(f).read_text().split() == [str(sleeper.pid)]
    assert mgr.pids() == [sleeper.pid]


def test_freeze_thaw(host: Host, mgr: CgroupManager) -> None:
    assert mgr.can_freeze()
    assert not mgr.frozen()
    mgr.freeze()
    assert mgr.frozen()
    mgr.thaw()
    assert not mgr.frozen()


def test_stats_read_the_counters(host: Host, mgr: CgroupManager) -> None:
    k = host.kernel
    if host.mode == "v2":
        k.set(host.file("memory", "memory.current"), "4096\n")
        k.set(host.file("memory", "memory.peak"), "8192\n")
        k.set(host.file("memory", "memory.max"), "1048576\n")
        k.set(host.file("memory", "memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n")
        k.set(host.file("cpu", "cpu.stat"), "usage_usec 7\nuser_usec 5\nsystem_usec 2\n")
        k.set(host.file("pids", "pids.current"), "3\n")
    else:
        k.set(host.file("memory", "memory.usage_in_bytes"), "4096\n")
        k.set(host.file("memory", "memory.max_usage_in_bytes"), "8192\n")
        k.set(host.file("memory", "memory.limit_in_bytes"), "1048576\n")
        k.set(host.file("memory", "memory.failcnt"), "3\n")
        k.set(
            host.file("memory", "memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        k.set(host.file("cpuacct", "cpuacct.usage"), "7000\n")
        k.set(host.file("cpuacct", "cpuacct.usage_user"), "5000\n")
        k.set(host.file("cpuacct", "cpuacct.usage_sys"), "2000\n")
        k.set(host.file("pids", "pids.current"), "3\n")
    st = mgr.stats()
    assert st.memory_usage == 4096
    assert st.memory_max_usage == 8192
    assert st.memory_limit == 1048576
    assert st.cpu_usage_ns == 7000
    assert (st.cpu_user_ns, st.cpu_system_ns) == (5000, 2000)
    assert st.pids_current == 3
    assert st.oom_kills == 2
    assert st.memory_limit_hits == 3
    assert mgr.oom_kill_count() == 2


def test_unlimited_memory_reads_as_none(host: Host, mgr: CgroupManager) -> None:
    assert mgr.stats().memory_limit is None
    assert mgr.stats().pids_limit is None


def test_kill_all_empties_the_cgroup(
    host: Host, mgr: CgroupManager, sleeper: subprocess.Popen[bytes]
) -> None:
    mgr.add_pid(sleeper.pid)
    mgr.kill_all()
    assert sleeper.wait(timeout=5) == -signal.SIGKILL
    assert mgr.pids() == []


def test_kill_all_reaches_a_frozen_cgroup_and_thaws_it(
    host: Host, mgr: CgroupManager, sleeper: subprocess.Popen[bytes]
) -> None:
    mgr.add_pid(sleeper.pid)
    mgr.freeze()
    mgr.kill_all()
    assert sleeper.wait(timeout=5) == -signal.SIGKILL
    assert not mgr.frozen()


def test_kill_all_with_another_signal_sends_it_once(
    host: Host, mgr: CgroupManager, sleeper: subprocess.Popen[bytes]
) -> None:
    mgr.add_pid(sleeper.pid)
    mgr.kill_all(signal.SIGTERM)
    assert sleeper.wait(timeout=5) == -signal.SIGTERM
    assert host.kernel.killed == []  # cgroup.kill is SIGKILL only: never used for TERM


def test_kill_all_on_a_missing_cgroup_is_a_no_op(host: Host) -> None:
    host.open("llmos/never").kill_all()


def test_destroy_removes_the_cgroup_and_keeps_the_shared_parent(
    host: Host, mgr: CgroupManager
) -> None:
    dirs = mgr.dirs()
    mgr.destroy()
    assert not mgr.exists()
    for d in dirs:
        assert not os.path.exists(d)
        parent = os.path.dirname(d)
        assert os.path.isdir(parent)
        assert not [e for e in os.scandir(parent) if e.is_dir()], "nothing left below llmos/"
    mgr.destroy()  # already gone: no error


def test_destroy_with_remove_parents_removes_everything_it_created(
    host: Host, mgr: CgroupManager
) -> None:
    dirs = mgr.dirs()
    mgr.destroy(remove_parents=True)
    for d in dirs:
        assert not os.path.exists(os.path.dirname(d)), "the empty llmos parent stays behind"


def test_destroy_keeps_a_parent_another_container_uses(host: Host) -> None:
    a, b = host.open("llmos/a"), host.open("llmos/b")
    a.create()
    b.create()
    a.destroy(remove_parents=True)
    assert not a.exists() and b.exists()
    b.destroy(remove_parents=True)
    assert not any(os.path.exists(os.path.dirname(d)) for d in b.dirs())


def test_destroy_removes_child_cgroups_first(host: Host, mgr: CgroupManager) -> None:
    for d in mgr.dirs():
        host.kernel.mkdir(os.path.join(d, "inner"))
    mgr.destroy()
    assert not mgr.exists()


def test_destroy_of_a_populated_cgroup_fails_after_the_timeout(
    host: Host, mgr: CgroupManager, sleeper: subprocess.Popen[bytes]
) -> None:
    mgr.add_pid(sleeper.pid)
    with pytest.raises(CgroupBusy, match=str(sleeper.pid)):
        mgr.destroy(timeout=0.05)
    assert mgr.exists()


def test_nested_names_create_and_remove_the_whole_owned_chain(host: Host) -> None:
    m = host.open("llmos/pod1/c1")
    m.create()
    assert all(d.endswith("llmos/pod1/c1") for d in m.dirs())
    m.apply(Resources(pids_limit=5))
    m.destroy()
    for d in m.dirs():
        pod = os.path.dirname(d)
        assert not os.path.exists(pod), "an empty intermediate parent below llmos stays"
        assert os.path.isdir(os.path.dirname(pod))  # the shared llmos parent stays


def test_unknown_device_and_network_resources_do_not_pass_silently(
    host: Host, mgr: CgroupManager
) -> None:
    res = Resources(network_class_id=7)
    with pytest.raises(CgroupError, match=r"linux\.resources\.network"):
        mgr.apply(res)
