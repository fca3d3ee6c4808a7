"""Per-container time: 100 sequential /bin/true containers, llmos vs crun vs runc, one run.

Each container gets a fresh overlay (new upper/work directories over the busybox layer), all
namespaces including network, and a cgroup with memory and pids limits. llmos runs through its
in-process API (create+start, wait, delete); crun and runc run the same bundle with
`run` after the overlay is mounted by hand (and unmounted after), as an engine would do it.

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


def bench_llmos(work: Path, layer: Path, n: int) -> list[float]:
    from llmos.plan import Overlay
    from llmos.runtime import Runtime

    rt = Runtime(work / "llmos-state")
    bundle = work / "llmos-bundle"
    (bundle / "rootfs").mkdir(parents=True)
    times = []
    for i in range(n + 5):
        cid = f"b{i}"
        cfg = config("rootfs", f"llmos/{cid}")
        (bundle / "config.json").write_text(json.dumps(cfg))
        up = work / "ovl" / cid
        t0 = time.perf_counter()
        (up / "upper").mkdir(parents=True)
        (up / "work").mkdir()
        ov = Overlay(lower=[str(layer)], upper=str(up / "upper"), work=str(up / "work"))
        rt.create(cid, bundle, overlay=ov, start_now=True, config=cfg)
        rt.wait(cid)
        rt.delete(cid)
        shutil.rmtree(up)
        if i >= 5:  # warm-up
            times.append(time.perf_counter() - t0)
    return times


PEER_LOOP = r"""
set -e
n=$1; tool=$2; bundle=$3; layer=$4; work=$5
for i in $(seq 1 $n); do
  up=$work/ovl-$tool-$i
  s=$(date +%s%N)
  mkdir -p $up/upper $up/work
  mount -t overlay overlay -o lowerdir=$layer,upperdir=$up/upper,workdir=$up/work $bundle/rootfs
  $tool run -b $bundle peer-$tool-$i >/dev/null 2>&1 || echo "run failed" >&2
  umount $bundle/rootfs
  rm -rf $up
  e=$(date +%s%N)
  echo $((e - s))
done
"""


def bench_peer(tool: str, work: Path, layer: Path, n: int) -> list[float]:
    if shutil.which(tool) is None:
        return []
    bundle = work / f"{tool}-bundle"
    (bundle / "rootfs").mkdir(parents=True)
    cfg = config("rootfs", f"/llmos/bench-{tool}")
    # runc and crun take a plain cgroupfs path; keep ours under llmos/ to clean it up.
    (bundle / "config.json").write_text(json.dumps(cfg))
    cmd = ["bash", "-c", PEER_LOOP, "bench", str(n + 5), tool, str(bundle), str(layer), str(work)]
    if tool == "crun":
        cmd = [
            "unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs x /sys/fs/cgroup/unified && exec "$@"', "sh", *cmd,
        ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    vals = [int(x) / 1e9 for x in out.stdout.split()]
    if out.stderr.strip():
        print(f"{tool}: {out.stderr.strip()[:300]}", file=sys.stderr)
    for sub in Path("/sys/fs/cgroup").glob(f"*/llmos/bench-{tool}"):
        try:
            sub.rmdir()
        except OSError:
            pass
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
        results = {
            "llmos": summary(bench_llmos(work, layer, args.n)),
            "crun": summary(bench_peer("crun", work, layer, args.n)),
            "runc": summary(bench_peer("runc", work, layer, args.n)),
        }
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
