"""`llmos run --rm --network none busybox true` through the CLI and llmosd, against
`podman run --rm --network none --rootfs DIR true`, in the same run; plus memory: llmosd's
RSS growth per running container and one shim's RSS.

usage: python3 bench/engine/bench_cli_run.py [-n 30] [--containers 50] [--json]
Needs root, Debian's podman (scripts/install-deps --bench). Nothing is left behind.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.integration.conftest import make_busybox_rootfs
from tests.integration.engine.conftest import Daemon, cleanup

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from peers import PODMAN_ULIMITS, remove_libpod_parents


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def time_interleaved(cmds: dict[str, tuple[list[str], dict[str, str] | None]],
                     n: int) -> dict[str, list[float]]:
    """Each command n times (after 3 warm-ups), one of each in turn; a command that fails
    is reported and dropped from the rest of the run."""
    out: dict[str, list[float]] = {name: [] for name in cmds}
    live = dict(cmds)
    for i in range(n + 3):
        for name, (cmd, env) in list(live.items()):
            t0 = time.perf_counter()
            r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            dt = time.perf_counter() - t0
            if r.returncode != 0:
                print(f"{name}: exit {r.returncode}: {r.stderr[-300:]!r}", file=sys.stderr)
                del live[name]
                out[name] = []
                continue
            if i >= 3:
                out[name].append(dt)
    return out


def summary(vals: list[float]) -> dict[str, float]:
    return {"min_ms": min(vals) * 1e3, "median_ms": statistics.median(vals) * 1e3}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="llmos-bench-cli-"))
    results: dict[str, object] = {}
    d = Daemon(work / "llmos")
    d.root.mkdir()
    try:
        rootfs = make_busybox_rootfs(work / "rootfs")
        with tarfile.open(work / "bb.tar", "w") as tar:
            tar.add(rootfs, arcname=".")
        d.start()
        d.client().images.import_rootfs(str(work / "bb.tar"), "busybox")
        # The console script beside this interpreter: not a version manager's shim, which is a
        # shell script that would cost more than llmos itself.
        llmos_bin = Path(sys.executable).parent / "llmos"
        cli = [str(llmos_bin)] if llmos_bin.exists() else [sys.executable, "-m",
                                                            "llmos.cli.main"]
        llmos_cmd = [*cli, "run", "--rm", "--network", "none", "busybox", "true"]
        cmds: dict[str, tuple[list[str], dict[str, str] | None]] = {"llmos": (llmos_cmd, d.env)}
        if shutil.which("podman"):
            # crun refuses this hybrid host; podman runs with runc here (see shared notes).
            cmds["podman"] = (["podman", "--runtime", "runc", "run", "--rm", "--network",
                               "none", *PODMAN_ULIMITS, "--rootfs", str(rootfs), "true"], None)
        # Interleaved, one of each in turn: this VM's speed drifts by tens of percent within
        # a minute, which would otherwise land on one side only.
        times = time_interleaved(cmds, args.n)
        for name, vals in times.items():
            results[name] = summary(vals) if vals else "failed"
        if "podman" in times and times["podman"] and times["llmos"]:
            results["ratio_llmos_to_podman"] = (
                statistics.median(times["llmos"]) / statistics.median(times["podman"]))
        if "podman" in cmds:
            remove_libpod_parents()
        # Memory: daemon RSS growth per running container, and a shim's RSS.
        assert d.proc is not None
        cl = d.client()
        cl.containers.run("busybox", ["true"], remove=True)  # warm every code path
        before = rss_kib(d.proc.pid)
        made = [cl.containers.run("busybox", ["sleep", "600"], detach=True)
                for _ in range(args.containers)]
        after = rss_kib(d.proc.pid)
        shims = [int(p) for p in os.listdir("/proc") if p.isdigit()
                 and open(f"/proc/{p}/comm").read().strip() == "llmos-shim"]
        results["daemon_rss_growth_kib_per_container"] = (after - before) / args.containers
        results["shim_rss_kib"] = statistics.median(rss_kib(p) for p in shims) if shims else None
        for c in made:
            c.remove(force=True)
    finally:
        if d.proc is not None:
            d.kill()
        cleanup(d.root)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for k, v in results.items():
            print(f"{k:40} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
