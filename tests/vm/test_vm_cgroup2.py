"""The pure cgroup v2 kernel under qemu: limits are enforced there, and pytest runs there.

One boot runs guest/cgroup_limits_probe.py (plain Python and shell, no llmos) and the tests
below assert on its report; further boots prove the harness itself: pytest in the guest through
run_pytest_in_vm, exit statuses, and cleanup after a timeout.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.vm import vmharness

pytestmark = pytest.mark.vm

HERE = Path(__file__).resolve().parent
PROBE = HERE / "guest" / "cgroup_limits_probe.py"
GUEST_SMOKE = "tests/vm/guest/test_guest_smoke.py"


@pytest.fixture(scope="module")
def probe_report(vm_image: vmharness.BootImage) -> dict[str, Any]:
    # One more boot if the first times out: under TCG on a loaded 2-core host a guest has been
    # seen to stall once in about ten runs (a real failure fails both boots).
    for attempt in (1, 2):
        try:
            result = vmharness.run_in_vm(
                [sys.executable, str(PROBE), "vda"], timeout=300, image=vm_image,
                scratch_disk_mb=16,
            )
            break
        except vmharness.VMTimeoutError:
            if attempt == 2:
                raise
    assert result.returncode == 0, result.output + result.console[-3000:]
    line = next(
        (ln for ln in result.output.splitlines() if ln.startswith("PROBE-REPORT ")), None
    )
    assert line is not None, result.output
    report: dict[str, Any] = json.loads(line.removeprefix("PROBE-REPORT "))
    report["boot_seconds"] = result.boot_seconds
    report["total_seconds"] = result.total_seconds
    print(f"probe boot {result.boot_seconds:.1f} s, total {result.total_seconds:.1f} s")
    return report


def section(report: dict[str, Any], name: str) -> dict[str, Any]:
    part: dict[str, Any] = report[name]
    assert "error" not in part, part["error"]
    return part


def test_guest_is_pure_cgroup2_with_controllers(probe_report: dict[str, Any]) -> None:
    ctl = section(probe_report, "controllers")
    assert ctl["fstype"] == "cgroup2"
    assert not ctl["v1_memory_dir"]
    for controller in ("cpu", "memory", "pids", "io"):
        assert controller in ctl["controllers"], ctl
        assert controller in ctl["subtree_control"], ctl


def test_memory_max_oom_kills(probe_report: dict[str, Any]) -> None:
    mem = section(probe_report, "memory")
    assert mem["max"] == str(32 * 1024 * 1024)
    assert mem["returncode"] == -9, mem  # SIGKILL: 137 from a shell
    assert "survived" not in mem["stdout"]
    assert mem["events"]["oom_kill"] >= 1, mem


def test_pids_max_stops_fork_loop(probe_report: dict[str, Any]) -> None:
    pids = section(probe_report, "pids")
    # pids.max=16 counts the looping process itself.
    assert pids["forked"] == 15, pids
    assert pids["current_at_limit"] == 16, pids
    assert pids["events"]["max"] >= 1, pids
    assert pids["outside_rc"] == 0, "the rest of the guest could not run a process"


def test_cpu_max_limits_busy_loop(probe_report: dict[str, Any]) -> None:
    cpu = section(probe_report, "cpu")
    assert cpu["max"] == "50000 100000"
    assert cpu["wall"] >= 1.9
    assert 0.2 <= cpu["cpus"] <= 0.55, cpu
    # Throttled in most 100 ms periods: the quota, not a slow vCPU, held it back.
    assert cpu["nr_throttled"] >= cpu["nr_periods"] // 2 > 0, cpu
    print(f"busy loop: {cpu['cpus']:.2f} CPU limited, {cpu['unlimited_cpus']:.2f} unlimited")


def test_io_max_throttles_direct_writes(probe_report: dict[str, Any]) -> None:
    io = section(probe_report, "io")
    assert io["returncode"] == 0, io["stderr"]
    assert "wbps=1048576" in io["max"]
    assert io["wbytes"] >= 2 << 20, io
    # 2 MiB at 1 MiB/s; unthrottled the same writes take a fraction of a second.
    assert io["elapsed"] >= 1.2, io


def test_pytest_runs_in_guest(vm_image: vmharness.BootImage) -> None:
    result = vmharness.run_pytest_in_vm([GUEST_SMOKE], timeout=300, image=vm_image)
    print(f"pytest in guest: boot {result.boot_seconds:.1f} s, total {result.total_seconds:.1f} s")
    assert result.exit_code == 0, result.output
    assert len(result.outcomes) == 3, result.outcomes
    assert set(result.outcomes.values()) == {"passed"}, result.output
    assert all(node.startswith(GUEST_SMOKE + "::") for node in result.outcomes)


def test_exit_status_and_output_come_back(vm_image: vmharness.BootImage) -> None:
    result = vmharness.run_in_vm(
        ["/bin/sh", "-c", 'echo "to $TARGET"; echo err >&2; echo data > "$LLMOS_VM_OUT/f"; exit 7'],
        timeout=180, image=vm_image, env={"TARGET": "host"},
    )
    assert result.returncode == 7
    assert "to host" in result.output and "err" in result.output
    assert result.files == {"f": b"data\n"}
    assert 0 < result.boot_seconds < result.total_seconds


def test_timeout_kills_qemu_and_cleans_up(
    vm_image: vmharness.BootImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = _qemu_children()
    with pytest.raises(vmharness.VMTimeoutError, match="qemu killed"):
        vmharness.run_in_vm(["sleep", "600"], timeout=10, image=vm_image)
    assert _qemu_children() == before
    assert list(tmp_path.iterdir()) == []


def _qemu_children() -> set[int]:
    """Pids of qemu processes whose parent is this process."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and comm.startswith("qemu"):
            found.add(int(entry.name))
    return found
