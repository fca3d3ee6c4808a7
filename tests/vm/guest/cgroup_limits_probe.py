"""Run inside the VM (as PID 1's child, root): exercise cgroup v2 limits, print one JSON report.

Plain Python and shell on purpose, independent of llmos: it proves the kernel side (what the v2
driver relies on) before the driver itself is run there.  tests/vm/test_vm_cgroup2.py boots the
VM with this script and asserts on the report; it is not a pytest file itself.

Each probe makes its own child of the root cgroup, and removes it afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CGROOT = Path("/sys/fs/cgroup")


def make_cgroup(name: str, settings: dict[str, str]) -> Path:
    path = CGROOT / name
    path.mkdir()
    for key, value in settings.items():
        (path / key).write_text(value)
    return path


def remove_cgroup(path: Path) -> None:
    for pid in (path / "cgroup.procs").read_text().split():
        os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while True:
        try:
            path.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def joiner(path: Path) -> Callable[[], None]:
    """A preexec_fn that moves the forked child into the cgroup before it execs."""

    def join() -> None:
        (path / "cgroup.procs").write_text(str(os.getpid()))

    return join


def keyed(path: Path) -> dict[str, int]:
    """Parse a flat keyed file such as memory.events or cpu.stat."""
    out: dict[str, int] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        out[key] = int(value)
    return out


def probe_controllers() -> dict[str, Any]:
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    fstype = next((m.split()[2] for m in mounts if m.split()[1] == str(CGROOT)), None)
    return {
        "fstype": fstype,
        "controllers": (CGROOT / "cgroup.controllers").read_text().split(),
        "subtree_control": (CGROOT / "cgroup.subtree_control").read_text().split(),
        "v1_memory_dir": (CGROOT / "memory").exists(),
    }


def probe_memory() -> dict[str, Any]:
    settings = {"memory.max": str(32 * 1024 * 1024)}
    if (CGROOT / "cgroup.subtree_control").read_text().find("memory") >= 0:
        settings["memory.swap.max"] = "0"
    cg = make_cgroup("probe-memory", settings)
    try:
        # b"x" * n touches every page (bytearray(n) would get untouched zero pages).
        child = subprocess.run(
            [sys.executable, "-c", "b = b'x' * (100 << 20); print('survived', len(b))"],
            preexec_fn=joiner(cg), capture_output=True, text=True, timeout=120,
        )
        return {
            "returncode": child.returncode,
            "stdout": child.stdout,
            "events": keyed(cg / "memory.events"),
            "max": (cg / "memory.max").read_text().strip(),
        }
    finally:
        remove_cgroup(cg)


_FORK_LOOP = """
import os, signal, sys, time
children = []
for _ in range(200):
    try:
        pid = os.fork()
    except OSError as exc:
        print("fork failed:", exc.errno)
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    children.append(pid)
print("forked", len(children))
print("current", open(sys.argv[1]).read().strip())
for pid in children:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
"""


def probe_pids() -> dict[str, Any]:
    cg = make_cgroup("probe-pids", {"pids.max": "16"})
    try:
        child = subprocess.run(
            [sys.executable, "-c", _FORK_LOOP, str(cg / "pids.current")],
            preexec_fn=joiner(cg), capture_output=True, text=True, timeout=120,
        )
        forked = int(child.stdout.split("forked")[1].split()[0])
        events = keyed(cg / "pids.events")
        current = int(child.stdout.split("current")[1].split()[0])
    finally:
        remove_cgroup(cg)
    # The rest of the system still forks and execs fine.
    outside = subprocess.run(["/bin/true"], check=False).returncode
    return {
        "forked": forked,
        "stdout": child.stdout,
        "events": events,
        "current_at_limit": current,
        "outside_rc": outside,
    }


def busy_share(cg: Path, seconds: float) -> dict[str, Any]:
    """CPU used by a shell busy loop in ``cg`` over ``seconds`` of wall time, from cpu.stat."""
    loop = subprocess.Popen(["/bin/sh", "-c", "while :; do :; done"], preexec_fn=joiner(cg))
    try:
        time.sleep(0.3)  # let it start and settle
        before, t0 = keyed(cg / "cpu.stat"), time.monotonic()
        time.sleep(seconds)
        after, t1 = keyed(cg / "cpu.stat"), time.monotonic()
    finally:
        loop.kill()
        loop.wait()
    wall = t1 - t0
    return {
        "wall": wall,
        "cpus": (after["usage_usec"] - before["usage_usec"]) / 1e6 / wall,
        "nr_periods": after.get("nr_periods", 0) - before.get("nr_periods", 0),
        "nr_throttled": after.get("nr_throttled", 0) - before.get("nr_throttled", 0),
        "throttled_usec": after.get("throttled_usec", 0) - before.get("throttled_usec", 0),
    }


def probe_cpu() -> dict[str, Any]:
    limited = make_cgroup("probe-cpu", {"cpu.max": "50000 100000"})
    try:
        result = busy_share(limited, 2.0)
        result["max"] = (limited / "cpu.max").read_text().strip()
    finally:
        remove_cgroup(limited)
    # The same loop without a limit, for comparison (informational: depends on host load).
    free = make_cgroup("probe-cpu-free", {})
    try:
        result["unlimited_cpus"] = busy_share(free, 1.0)["cpus"]
    finally:
        remove_cgroup(free)
    return result


def probe_io(device: str) -> dict[str, Any]:
    """Direct writes of 2 MiB at io.max wbps=1 MiB/s must take about 2 s."""
    dev = Path(f"/sys/block/{device}/dev")
    if not dev.exists():
        return {"skipped": f"no /dev/{device}"}
    majmin = dev.read_text().strip()
    cg = make_cgroup("probe-io", {"io.max": f"{majmin} wbps={1 << 20}"})
    try:
        start = time.monotonic()
        child = subprocess.run(
            ["/bin/dd", "if=/dev/zero", f"of=/dev/{device}", "bs=64k", "count=32",
             "oflag=direct", "status=none"],
            preexec_fn=joiner(cg), capture_output=True, text=True, timeout=120,
        )
        elapsed = time.monotonic() - start
        stat_line = next(
            (ln for ln in (cg / "io.stat").read_text().splitlines() if ln.startswith(majmin)),
            "",
        )
        wbytes = int(stat_line.split("wbytes=")[1].split()[0]) if "wbytes=" in stat_line else 0
        return {
            "returncode": child.returncode,
            "stderr": child.stderr,
            "elapsed": elapsed,
            "wbytes": wbytes,
            "max": (cg / "io.max").read_text().strip(),
        }
    finally:
        remove_cgroup(cg)


def main() -> None:
    report: dict[str, Any] = {}
    probes: dict[str, Callable[[], dict[str, Any]]] = {
        "controllers": probe_controllers,
        "memory": probe_memory,
        "pids": probe_pids,
        "cpu": probe_cpu,
        "io": lambda: probe_io(sys.argv[1] if len(sys.argv) > 1 else "vda"),
    }
    for name, probe in probes.items():
        start = time.monotonic()
        try:
            report[name] = probe()
        except Exception as exc:  # one failing probe must not hide the others' results
            report[name] = {"error": f"{type(exc).__name__}: {exc}"}
        report[name]["seconds"] = round(time.monotonic() - start, 2)
    print("PROBE-REPORT " + json.dumps(report))


if __name__ == "__main__":
    main()
