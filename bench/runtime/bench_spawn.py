"""Per-container time: 100 sequential /bin/true containers, llmos vs crun vs runc, one run.

Each container gets a fresh overlay (new upper/work directories over the busybox layer), all
namespaces including network, and a cgroup with memory and pids limits. llmos runs through its
in-process API (create+start, wait, delete); crun and runc run the same bundle with
`run` after the overlay is mounted (and unmounted after) by a small Python driver with
syscalls, as an engine would do it, so the peers pay for no extra processes.

crun refuses hybrid cgroup hosts, so it runs inside a private mount namespace with an empty
tmpfs over /sys/fs/cgroup/unified (the host's mounts are untouched).

usage: python3 bench/runtime/bench_spawn.py [-n 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

N_DEFAULT = 100


def make_rootfs(dest: Path) -> None:
    (dest / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", dest / "bin" / "busybox")
    for applet in ("sh", "true"):
        os.symlink("busybox", dest / "bin" / applet)
    for d in ("proc", "sys", "dev", "etc", "tmp"):
        (dest / d).mkdir()


def config(rootfs: str, cgroup: str) -> dict[str, Any]:
    from llmos.spec import default_spec

    c = default_spec(["/bin/true"]).to_dict()
    c["ociVersion"] = "1.0.2"  # Debian's crun 1.8.1 refuses newer versions
    c["process"]["terminal"] = False
    c["root"] = {"path": rootfs}
    c["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 100}}
    c["linux"]["cgroupsPath"] = cgroup
    return c


def bench_llmos(work: Path, layer: Path, n: int, round_no: int = 0) -> list[float]:
    from llmos.plan import Overlay
    from llmos.runtime import Runtime

    rt = Runtime(work / "llmos-state")
    bundle = work / "llmos-bundle"
    (bundle / "rootfs").mkdir(parents=True, exist_ok=True)
    times = []
    for i in range(n + 5):
        cid = f"b{round_no}-{i}"
        # The bundle's config.json is written before the clock starts, as for the peers.
        (bundle / "config.json").write_text(json.dumps(config("rootfs", f"llmos/{cid}")))
        up = work / "ovl" / cid
        t0 = time.perf_counter()
        (up / "upper").mkdir(parents=True)
        (up / "work").mkdir()
        ov = Overlay(lower=[str(layer)], upper=str(up / "upper"), work=str(up / "work"))
        rt.create(cid, bundle, overlay=ov, start_now=True)
        rt.wait(cid)
        rt.delete(cid)
        shutil.rmtree(up)
        if i >= 5:  # warm-up
            times.append(time.perf_counter() - t0)
    return times


PEER_DRIVER = r"""
import ctypes, json, os, shutil, subprocess, sys, time
n, tool, bundle, layer, work = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
libc = ctypes.CDLL(None, use_errno=True)
rootfs = os.path.join(bundle, "rootfs")
times = []
for i in range(n):
    up = os.path.join(work, f"ovl-{tool}-{i}")
    t0 = time.perf_counter()
    os.makedirs(up + "/upper")
    os.makedirs(up + "/work")
    data = f"lowerdir={layer},upperdir={up}/upper,workdir={up}/work".encode()
    if libc.mount(b"overlay", rootfs.encode(), b"overlay", 0, data) != 0:
        sys.exit(f"mount: {os.strerror(ctypes.get_errno())}")
    r = subprocess.run([tool, "run", "-b", bundle, f"peer-{tool}-{i}"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    libc.umount2(rootfs.encode(), 0)
    shutil.rmtree(up)
    times.append(time.perf_counter() - t0)
    if r.returncode != 0:
        sys.exit(f"{tool} run failed: {r.stderr[-300:]!r}")
print(json.dumps(times))
"""


def bench_peer(tool: str, work: Path, layer: Path, n: int) -> list[float]:
    """The same work for crun/runc, driven from Python as llmos is: the overlay is mounted and
    removed with syscalls, so each container costs its runtime process and nothing else."""
    if shutil.which(tool) is None:
        return []
    bundle = work / f"{tool}-bundle"
    (bundle / "rootfs").mkdir(parents=True, exist_ok=True)
    cfg = config("rootfs", f"/llmos/bench-{tool}")
    (bundle / "config.json").write_text(json.dumps(cfg))
    cmd = [sys.executable, "-c", PEER_DRIVER, str(n + 5), tool, str(bundle), str(layer),
           str(work)]
    if tool == "crun":
        cmd = [
            "unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs x /sys/fs/cgroup/unified && exec "$@"', "sh", *cmd,
        ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for sub in Path("/sys/fs/cgroup").glob(f"*/llmos/bench-{tool}"):
        try:
            sub.rmdir()
        except OSError:
            pass
    if out.returncode != 0:
        print(f"{tool}: {out.stderr.strip()[-300:]}", file=sys.stderr)
        return []
    vals: list[float] = json.loads(out.stdout)
    return vals[5:]


def summary(vals: list[float]) -> dict[str, float]:
    if not vals:
        return {}
    return {"min_ms": min(vals) * 1e3, "median_ms": statistics.median(vals) * 1e3, "n": len(vals)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=N_DEFAULT)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="llmos-bench-"))
    try:
        layer = work / "layer"
        make_rootfs(layer)
        # Interleaved rounds: this VM's speed drifts by tens of percent over a minute, so each
        # runtime gets its share of fast and slow moments.
        samples: dict[str, list[float]] = {"llmos": [], "crun": [], "runc": []}
        rounds = max(1, args.n // 10)
        for r in range(rounds):
            samples["llmos"] += bench_llmos(work, layer, args.n // rounds, r)
            samples["crun"] += bench_peer("crun", work, layer, args.n // rounds)
            samples["runc"] += bench_peer("runc", work, layer, args.n // rounds)
        results = {k: summary(v) for k, v in samples.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = results["llmos"]
    for peer in ("crun", "runc"):
        if results[peer]:
            results[f"llmos/{peer}_median_ratio"] = {
                "ratio": base["median_ms"] / results[peer]["median_ms"]
            }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for name, r in results.items():
            print(f"{name:28} " + "  ".join(f"{k}={v:.2f}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
