"""The cgroup drivers on this machine's real kernel, as root.

Every test works under its own ``llmos/test-cg-<random>`` cgroup and the fixture proves that
nothing it made is left under any /sys/fs/cgroup/*/llmos/ afterwards. On the hybrid development
hosts this exercises the v1 driver (plus the cgroup2 twin) and, on the cgroup2 mount, the v2
driver's core: placement, freezer, cgroup.kill, the eBPF device filter, removal.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos.cgroups import (
    CgroupManager,
    DeviceRule,
    Resources,
    UnsupportedResource,
    V1Manager,
    V2Manager,
    detect_mode,
    open_cgroup,
)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root and the real kernel"),
]

ROOT = "/sys/fs/cgroup"
UNIFIED = os.path.join(ROOT, "unified")


def traces(name: str) -> list[str]:
    """Every directory for ``name`` in any hierarchy (including the cgroup2 root itself)."""
    return sorted(glob.glob(f"{ROOT}/*/{name}*") + glob.glob(f"{ROOT}/{name}*"))


@pytest.fixture
def name() -> Iterator[str]:
    n = f"llmos/test-cg-{uuid.uuid4().hex[:10]}"
    yield n
    left = traces(n)
    for path in sorted(left, key=len, reverse=True):  # clean up after a failed test
        for dirpath, _, _ in sorted(os.walk(path), key=lambda w: len(w[0]), reverse=True):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass
    assert not left, f"left behind: {left}"


@pytest.fixture
def cg(name: str) -> Iterator[CgroupManager]:
    m = open_cgroup(name)
    yield m
    if m.exists():
        m.kill_all()
        m.destroy()


def unified_v2(name: str) -> V2Manager:
    if detect_mode() != "hybrid" or not os.path.exists(os.path.join(UNIFIED, "cgroup.procs")):
        pytest.skip("needs a hybrid host with cgroup2 at /sys/fs/cgroup/unified")
    m = open_cgroup(name, root=UNIFIED)
    assert isinstance(m, V2Manager)
    return m


def spawn_in(
    m: CgroupManager,
    argv: list[str],
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
) -> subprocess.Popen[str]:
    """Start ``argv`` already inside the cgroup, as the C side does between clone and exec."""
    files = m.procs_files()

    def enter() -> None:
        for f in files:
            with open(f, "w") as fh:
                fh.write(str(os.getpid()))

    return subprocess.Popen(
        argv, preexec_fn=enter, text=True, stdin=stdin, stdout=stdout, stderr=stderr
    )


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def state_char(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def kernel_value(m: CgroupManager, controller: str, v1_file: str, v2_file: str) -> str:
    if isinstance(m, V1Manager):
        return Path(m.paths()[controller], v1_file).read_text().strip()
    return Path(m.dirs()[0], v2_file).read_text().strip()


def reap(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.kill()
    return proc.wait(timeout=10)


# -- the hybrid host and the v1 driver ------------------------------------------------------


def test_the_factory_matches_the_host(cg: CgroupManager) -> None:
    mode = detect_mode()
    assert isinstance(cg, V2Manager if mode == "v2" else V1Manager)
    if mode == "hybrid":
        assert cg.unified_dir() == os.path.join(UNIFIED, cg.name)


def test_limits_land_in_the_kernel(cg: CgroupManager, name: str) -> None:
    cg.create()
    memsw = isinstance(cg, V1Manager) and os.path.exists(
        os.path.join(cg.paths()["memory"], "memory.memsw.limit_in_bytes")
    )
    cg.apply(
        Resources(
            memory_limit=64 << 20,
            memory_swap=(64 << 20) if memsw or isinstance(cg, V2Manager) else None,
            cpu_quota=50000,
            cpu_period=100000,
            cpu_shares=512,
            pids_limit=32,
            cpuset_cpus="0",
            cpuset_mems="0",
        )
    )
    assert kernel_value(cg, "memory", "memory.limit_in_bytes", "memory.max") == str(64 << 20)
    assert kernel_value(cg, "pids", "pids.max", "pids.max") == "32"
    assert kernel_value(cg, "cpuset", "cpuset.cpus", "cpuset.cpus") == "0"
    if isinstance(cg, V1Manager):
        assert kernel_value(cg, "cpu", "cpu.cfs_quota_us", "") == "50000"
        assert kernel_value(cg, "cpu", "cpu.shares", "") == "512"
        if memsw:
            assert kernel_value(cg, "memory", "memory.memsw.limit_in_bytes", "") == str(64 << 20)
    else:
        assert kernel_value(cg, "cpu", "", "cpu.max") == "50000 100000"
    assert all(os.path.isdir(d) for d in cg.dirs())
    assert traces(name)


def test_a_process_is_placed_in_every_hierarchy(cg: CgroupManager) -> None:
    cg.create()
    cg.apply(Resources(memory_limit=128 << 20, pids_limit=16))
    proc = spawn_in(cg, ["sleep", "30"])
    try:
        assert cg.pids() == [proc.pid]
        for line in Path(f"/proc/{proc.pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers.startswith("name="):
                continue  # named hierarchies (systemd) are not ours
            assert path == "/" + cg.name, line
        st = cg.stats()
        assert st.pids_current == 1
        assert st.memory_limit == 128 << 20
        assert st.memory_usage > 0
        assert st.pids_limit == 16
    finally:
        cg.kill_all()
        assert reap(proc) == -signal.SIGKILL
    assert cg.pids() == []


def test_freeze_stops_a_busy_process_and_thaw_resumes_it(cg: CgroupManager) -> None:
    cg.create()
    proc = spawn_in(cg, ["sh", "-c", "while :; do :; done"])
    try:
        time.sleep(0.2)
        cg.freeze()
        assert cg.frozen()
        # The kernel shows frozen tasks as D (v1 freezer) or S (v2), never running.
        assert state_char(proc.pid) != "R"
        before = cpu_ticks(proc.pid)
        time.sleep(0.5)
        assert cpu_ticks(proc.pid) == before, "a frozen process used CPU"
        cg.thaw()
        assert not cg.frozen()
        time.sleep(0.5)
        assert cpu_ticks(proc.pid) > before, "the thawed process did not run"
    finally:
        cg.kill_all()
        reap(proc)


def test_kill_all_gets_every_fork(cg: CgroupManager) -> None:
    cg.create()
    proc = spawn_in(cg, ["sh", "-c", "sleep 100 & sleep 100 & sleep 100 & wait"])
    deadline = time.monotonic() + 5
    while len(cg.pids()) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(cg.pids()) == 4
    cg.kill_all()
    assert cg.pids() == []
    assert reap(proc) == -signal.SIGKILL


def test_kill_all_reaches_a_frozen_cgroup(cg: CgroupManager) -> None:
    cg.create()
    proc = spawn_in(cg, ["sleep", "100"])
    cg.freeze()
    cg.kill_all()
    assert reap(proc) == -signal.SIGKILL
    assert not cg.frozen()


def test_the_oom_kill_is_counted(cg: CgroupManager) -> None:
    cg.create()
    limit = 32 << 20
    swap = None
    if isinstance(cg, V2Manager) or os.path.exists(
        os.path.join(cg.dirs()[0].rsplit("/llmos/", 1)[0], "memory/memory.memsw.limit_in_bytes")
    ):
        swap = limit
    cg.apply(Resources(memory_limit=limit, memory_swap=swap))
    proc = spawn_in(cg, [sys.executable, "-c", "b = b'x' * (256 << 20)"], stderr=subprocess.DEVNULL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert cg.oom_kill_count() >= 1
    assert cg.stats().oom_kills >= 1


FORKER = """
import os, time
kids, failed = [], 0
for _ in range(8):
    try:
        pid = os.fork()
    except BlockingIOError:
        failed += 1
        continue
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    kids.append(pid)
print(len(kids), failed, flush=True)
for pid in kids:
    os.waitpid(pid, 0)
"""


def test_the_pids_limit_stops_a_fork_loop(cg: CgroupManager) -> None:
    cg.create()
    cg.apply(Resources(pids_limit=4))
    proc = spawn_in(cg, [sys.executable, "-c", FORKER], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().split() == ["3", "5"]  # the forker itself counts
        st = cg.stats()
        assert st.pids_current == 4 and st.pids_limit == 4
        assert len(cg.pids()) == 4
    finally:
        cg.kill_all()
        reap(proc)


def test_the_cpu_quota_is_enforced(cg: CgroupManager) -> None:
    cg.create()
    cg.apply(Resources(cpu_quota=20000, cpu_period=100000))
    proc = spawn_in(cg, ["sh", "-c", "while :; do :; done"])
    try:
        start = cg.stats().cpu_usage_ns
        time.sleep(1.0)
        used = (cg.stats().cpu_usage_ns - start) / 1e9
    finally:
        cg.kill_all()
        reap(proc)
    assert used <= 0.3, f"{used:.2f}s of CPU in 1s at a 0.2 CPU quota"


def test_v1_device_rules_are_enforced(cg: CgroupManager) -> None:
    if not isinstance(cg, V1Manager) or "devices" not in cg.paths():
        pytest.skip("needs the v1 devices controller")
    check_device_rules(cg)


def test_hugetlb_is_an_error_unless_the_host_delegates_it(cg: CgroupManager) -> None:
    cg.create()
    limits = Resources(hugepage_limits=[("2MB", 0)])
    unified = cg.unified_dir()
    delegated = (
        unified is not None
        and "hugetlb" in Path(os.path.dirname(unified), "cgroup.controllers").read_text().split()
    )
    if isinstance(cg, V1Manager) and "hugetlb" not in cg.paths() and not delegated:
        with pytest.raises(UnsupportedResource, match="hugetlb"):
            cg.apply(limits)
    else:
        cg.apply(limits)


def test_destroy_removes_child_cgroups_and_empty_parents(cg: CgroupManager, name: str) -> None:
    cg.create()
    for d in cg.dirs():
        os.mkdir(os.path.join(d, "inner"))
    cg.destroy()
    assert not cg.exists() and not traces(name)
    cg.destroy()  # already gone


def test_nested_names(name: str) -> None:
    m = open_cgroup(f"{name}/pod/c1")
    m.create()
    proc = spawn_in(m, ["sleep", "30"])
    try:
        assert m.pids() == [proc.pid]
    finally:
        m.kill_all()
        reap(proc)
        m.destroy()
    assert not traces(name)


# -- the v2 driver on the hybrid host's cgroup2 mount ---------------------------------------


def test_v2_core_on_the_real_cgroup2_mount(name: str) -> None:
    m = unified_v2(name)
    m.create()
    try:
        assert m.unified_dir() == os.path.join(UNIFIED, name)
        proc = spawn_in(m, ["sh", "-c", "while :; do :; done"])
        assert m.pids() == [proc.pid]
        assert Path(f"/proc/{proc.pid}/cgroup").read_text().splitlines()[-1] == f"0::/{name}"
        m.freeze()
        assert m.frozen() and state_char(proc.pid) != "R"
        m.thaw()
        assert not m.frozen()
        time.sleep(0.2)
        assert m.stats().cpu_usage_ns > 0
        m.kill_all()
        assert reap(proc) == -signal.SIGKILL
        assert m.pids() == []
    finally:
        m.kill_all()
        m.destroy()
    assert not traces(name)


def test_v2_undelegated_controllers_are_errors_not_silence(name: str) -> None:
    m = unified_v2(name)
    m.create()
    try:
        available = Path(UNIFIED, "llmos", "cgroup.controllers").read_text().split()
        if "memory" in available:
            pytest.skip("this host delegates memory on cgroup2")
        with pytest.raises(UnsupportedResource, match="'memory'"):
            m.apply(Resources(memory_limit=1 << 20))
        # Nothing of the host's own cgroup2 root was changed.
        assert "memory" not in Path(UNIFIED, "cgroup.subtree_control").read_text().split()
    finally:
        m.destroy()


def test_v2_device_filter_is_enforced(name: str) -> None:
    m = unified_v2(name)
    m.create()
    try:
        check_device_rules(m)
        # Applying again replaces the program instead of stacking a second one.
        m.apply(Resources(devices=[DeviceRule(True)]))
        from llmos.cgroups.v2 import bpf

        fd = os.open(m.dirs()[0], os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert len(bpf.attached_program_ids(fd)) == 1
        finally:
            os.close(fd)
    finally:
        m.destroy()


PROBE = """
import sys
sys.stdin.readline()
for path, mode in [("/dev/null", "r+b"), ("/dev/zero", "rb"), ("/dev/zero", "r+b"),
                   ("/dev/full", "rb")]:
    try:
        open(path, mode).close()
        print(path, mode, "ok")
    except OSError as e:
        print(path, mode, e.errno)
"""


def check_device_rules(m: CgroupManager) -> None:
    """deny all; /dev/null rwm; /dev/zero read-only; /dev/full not at all."""
    m.create()
    m.apply(
        Resources(
            devices=[
                DeviceRule(False),
                DeviceRule(True, "c", 1, 3, "rwm"),
                DeviceRule(True, "c", 1, 5, "r"),
            ]
        )
    )
    proc = spawn_in(m, [sys.executable, "-c", PROBE], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = proc.communicate("go\n", timeout=30)
    assert out.splitlines() == [
        "/dev/null r+b ok",
        "/dev/zero rb ok",
        "/dev/zero r+b 1",  # EPERM
        "/dev/full rb 1",
    ]
