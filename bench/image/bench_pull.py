"""Pull and unpack of a >=100 MB image from a registry on loopback (Debian's docker-registry):
llmos against `skopeo copy` to an OCI layout + `umoci unpack`, and `podman pull`, same run.

usage: python3 bench/image/bench_pull.py [--mb 120] [--rounds 3] [--json]
Needs root, docker-registry, skopeo, umoci (and podman for its row): scripts/install-deps --bench.
"""

from __future__ import annotations

import argparse
import io
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

from tests.integration.image.conftest import start_registry, stop_registry


def make_image(store: object, mb: int) -> None:
    """4 layers of files with random content (incompressible, like real binaries)."""
    per_layer = mb // 4
    layers = []
    for i in range(4):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for j in range(per_layer):
                data = os.urandom(1 << 20)
                info = tarfile.TarInfo(f"layer{i}/file{j}.bin")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        buf.seek(0)
        layers.append(store.add_layer(buf, compression="gzip"))  # type: ignore[attr-defined]
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]}}
    store.commit_image("bench/big:1", config, layers)  # type: ignore[attr-defined]


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]}: {r.stderr[-400:]}")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from llmos.image import ImageStore

    work = Path(tempfile.mkdtemp(prefix="llmos-bench-pull-"))
    (work / "reg").mkdir()
    reg = start_registry(work / "reg")
    results: dict[str, list[float]] = {"llmos": [], "skopeo+umoci": [], "podman": []}
    try:
        src = ImageStore(work / "src")
        make_image(src, args.mb)
        ref = f"{reg.host}/bench/big:1"
        src.tag("bench/big:1", ref)
        src.push(ref)
        for r in range(args.rounds):
            root = work / f"llmos-{r}"
            t0 = time.perf_counter()
            ImageStore(root).pull(ref)
            results["llmos"].append(time.perf_counter() - t0)
            shutil.rmtree(root)
            oci, bundle = work / f"oci-{r}", work / f"bundle-{r}"
            dt = timed(["skopeo", "copy", "--src-tls-verify=false", f"docker://{ref}",
                        f"oci:{oci}:big"])
            dt += timed(["umoci", "unpack", "--image", f"{oci}:big", str(bundle)])
            results["skopeo+umoci"].append(dt)
            shutil.rmtree(oci)
            shutil.rmtree(bundle)
            if shutil.which("podman"):
                proot = work / f"podman-{r}"
                base = ["podman", "--root", str(proot), "--runroot", str(work / f"prun-{r}")]
                try:
                    results["podman"].append(timed([*base, "pull", "--tls-verify=false",
                                                    ref]))
                except RuntimeError as e:
                    print(f"podman: {e}", file=sys.stderr)
                subprocess.run([*base, "system", "reset", "-f"], capture_output=True)
                shutil.rmtree(proot, ignore_errors=True)
    finally:
        stop_registry(reg)
        subprocess.run(["umount", "-R", str(work)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    summary = {k: {"median_s": statistics.median(v), "min_s": min(v)} for k, v in results.items()
               if v}
    fastest_peer = min(v["median_s"] for k, v in summary.items() if k != "llmos")
    summary["llmos_vs_fastest_peer"] = {"ratio": summary["llmos"]["median_s"] / fastest_peer}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for k, v in summary.items():
            print(f"{k:24} " + "  ".join(f"{a}={b:.2f}" for a, b in v.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
