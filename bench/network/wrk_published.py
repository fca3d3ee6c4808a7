#!/usr/bin/env python3
"""HTTP with wrk to a web server in a container: through llmos's published port against the
container's own address, and against `podman run -p` serving the same files, in the same run.

    sudo python3 bench/network/wrk_published.py [--duration 8] [--rounds 5] [--json]

Everything runs in namespaces made here (the machine's own namespace is not touched): ``<p>h``
stands for the host and runs llmosd (`llmos run -d -p 8080:80`) and podman (`podman run -d
-p 8081:80`, runc, netavark's bridge), ``<p>o`` is an outside machine linked to the host by a
veth (192.0.2.0/24). Both containers run busybox httpd on the same busybox rootfs: one
connection per request, the worst case for NAT (every request is a new conntrack entry).
wrk runs against, for each engine:

* ``direct``     http://<container ip>:80/   from the host namespace (no NAT: the baseline)
* ``published``  http://192.0.2.1:PORT/      from the host namespace (output-hook DNAT)
* ``loopback``   http://127.0.0.1:PORT/      from the host namespace (DNAT + masquerade)
* ``outside``    http://192.0.2.1:PORT/      from the outside namespace (prerouting DNAT,
                                             forwarded: the path other machines take)

Rounds are interleaved (every target once, then again) so this VM's drifting speed hits every
target alike; the median round is reported. Targets (issue 5): llmos published >= 0.95x the
direct path, and >= podman's published.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.integration.conftest import make_busybox_rootfs  # noqa: E402
from tests.integration.engine.conftest import Daemon, cleanup  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from peers import PODMAN_ULIMITS, remove_libpod_parents  # noqa: E402

HOST_IP = "192.0.2.1"
OUTSIDE_IP = "192.0.2.2"
LLMOS_PORT, PODMAN_PORT = 8080, 8081
BODY = "x" * 612  # the size of nginx's welcome page
HTTPD = ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"]


def sh(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=True, **kw)


def parse_wrk(text: str) -> dict[str, float]:
    """Requests/sec and latency percentiles (ms) from ``wrk --latency`` output."""

    def ms(value: str) -> float:
        m = re.match(r"([\d.]+)(us|ms|s)", value)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    out: dict[str, float] = {}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(rps.group(1)) if rps else 0.0
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        out[f"p{pct}_ms"] = ms(m.group(1)) if m else float("nan")
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["errors"] = float(sum(int(g) for g in errs.groups())) if errs else 0.0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["errors"] += float(non2xx.group(1)) if non2xx else 0.0
    return out


def wrk(ns: str, url: str, duration: int, threads: int, conns: int) -> dict[str, float]:
    proc = sh("nsenter", f"--net=/run/netns/{ns}", "wrk", f"-t{threads}", f"-c{conns}",
              f"-d{duration}s", "--latency", url, timeout=duration + 60)
    return parse_wrk(proc.stdout)


def wait_serving(ns: str, url: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        r = subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "wrk", "-t1", "-c1", "-d1s",
                            url], capture_output=True, text=True)
        if parse_wrk(r.stdout)["rps"] > 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing serves {url} in {ns}")


class Podman:
    """Rootful podman in the host namespace, with its state in a directory of this run (the
    machine's own podman storage is untouched). runc: crun refuses this hybrid host."""

    def __init__(self, work: Path, ns: str) -> None:
        self.ns = ns
        self.base = ["nsenter", f"--net=/run/netns/{ns}", "podman", "--runtime", "runc",
                     "--root", str(work / "storage"), "--runroot", str(work / "run"),
                     "--tmpdir", str(work / "tmp"), "--cgroup-manager", "cgroupfs",
                     "--events-backend", "none"]

    def __call__(self, *args: str) -> str:
        return sh(*self.base, *args, timeout=120).stdout.strip()

    def start(self, rootfs: Path, www: Path) -> str:
        self("run", "-d", "--name", "benchweb", *PODMAN_ULIMITS, "-v", f"{www}:/www:ro",
             "-p", f"{PODMAN_PORT}:80", "--rootfs", str(rootfs), *HTTPD)
        return self("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "benchweb")

    def remove(self) -> None:
        subprocess.run([*self.base, "rm", "-f", "-t", "0", "benchweb"], capture_output=True)
        remove_libpod_parents()


def median_round(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--no-podman", action="store_true")
    ap.add_argument("--json", action="store_true", help="print the raw numbers as JSON too")
    opts = ap.parse_args()
    if os.geteuid() != 0 or shutil.which("wrk") is None:
        print("needs root and wrk (scripts/install-deps --bench)", file=sys.stderr)
        return 2
    use_podman = not opts.no_podman and shutil.which("podman") is not None

    tag = secrets.token_hex(3)
    host, outside = f"llb{tag}h", f"llb{tag}o"
    work = Path(tempfile.mkdtemp(prefix="llmos-bench-wrk-"))
    made: list[str] = []
    d = Daemon(work / "llmos", netns=host)
    podman = Podman(work / "podman", host) if use_podman else None
    try:
        for ns in (host, outside):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", f"vh{tag}", "netns", host, "type", "veth", "peer",
           "name", f"vo{tag}", "netns", outside)
        sh("ip", "-n", host, "addr", "add", f"{HOST_IP}/24", "dev", f"vh{tag}")
        sh("ip", "-n", outside, "addr", "add", f"{OUTSIDE_IP}/24", "dev", f"vo{tag}")
        sh("ip", "-n", host, "link", "set", f"vh{tag}", "up")
        sh("ip", "-n", outside, "link", "set", f"vo{tag}", "up")
        rootfs = make_busybox_rootfs(work / "rootfs")
        with tarfile.open(work / "bb.tar", "w") as tar:
            tar.add(rootfs, arcname=".")
        www = work / "www"
        www.mkdir()
        (www / "index.html").write_text(BODY)
        d.root.mkdir()
        d.start()
        d.client().images.import_rootfs(str(work / "bb.tar"), "busybox")
        r = d.cli("run", "-d", "--name", "benchweb", "-p", f"{LLMOS_PORT}:80", "-v",
                  f"{www}:/www:ro", "busybox", *HTTPD)
        if r.returncode != 0:
            raise RuntimeError(f"llmos run: {r.stderr}")
        llmos_ip = json.loads(d.cli("inspect", "benchweb").stdout)[0][
            "NetworkSettings"]["IPAddress"]
        targets: dict[str, tuple[str, str]] = {
            "llmos direct": (host, f"http://{llmos_ip}:80/"),
            "llmos published": (host, f"http://{HOST_IP}:{LLMOS_PORT}/"),
            "llmos loopback": (host, f"http://127.0.0.1:{LLMOS_PORT}/"),
            "llmos outside": (outside, f"http://{HOST_IP}:{LLMOS_PORT}/"),
        }
        if podman is not None:
            pod_copy = work / "podman-rootfs"
            shutil.copytree(rootfs, pod_copy, symlinks=True)
            pod_ip = podman.start(pod_copy, www)
            targets.update({
                "podman direct": (host, f"http://{pod_ip}:80/"),
                "podman published": (host, f"http://{HOST_IP}:{PODMAN_PORT}/"),
                "podman loopback": (host, f"http://127.0.0.1:{PODMAN_PORT}/"),
                "podman outside": (outside, f"http://{HOST_IP}:{PODMAN_PORT}/"),
            })
        for ns, url in targets.values():
            wait_serving(ns, url)
        results: dict[str, list[dict[str, float]]] = {k: [] for k in targets}
        for _ in range(opts.rounds):
            for name, (ns, url) in targets.items():
                results[name].append(wrk(ns, url, opts.duration, opts.threads,
                                         opts.connections))
    finally:
        if podman is not None:
            podman.remove()
        if d.proc is not None:
            d.cli("rm", "-f", "benchweb")
            d.kill(signal.SIGTERM)
        cleanup(d.root)
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(work, ignore_errors=True)

    res = {k: median_round(v) for k, v in results.items()}
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"wrk -t{opts.threads} -c{opts.connections} -d{opts.duration}s, busybox httpd, "
          f"median of {opts.rounds} interleaved rounds, load average {load} on "
          f"{os.cpu_count()} cpus")
    print(f"{'path':<18} {'req/s':>9} {'vs direct':>9} {'p50 ms':>8} {'p90 ms':>8} "
          f"{'p99 ms':>8} {'errors':>7}")
    for name, r in res.items():
        base = res[f"{name.split()[0]} direct"]["rps"] or float("nan")
        print(f"{name:<18} {r['rps']:>9.0f} {r['rps'] / base:>9.3f} {r['p50_ms']:>8.2f} "
              f"{r['p90_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>7.0f}")
    # Ratios within each round (the two runs are seconds apart), then their median: this VM's
    # speed drifts by tens of percent between rounds, which the medians above still carry.
    def paired(a: str, b: str) -> float:
        return statistics.median(x["rps"] / (y["rps"] or float("nan"))
                                 for x, y in zip(results[a], results[b], strict=True))

    pairs = [(f"llmos {p}", "llmos direct") for p in ("published", "loopback", "outside")]
    if "podman published" in res:
        pairs += [(f"podman {p}", "podman direct") for p in ("published", "loopback", "outside")]
        pairs += [(f"llmos {p}", f"podman {p}") for p in ("direct", "published", "loopback",
                                                          "outside")]
    print("median of per-round ratios:")
    for a, b in pairs:
        print(f"  {a} / {b}: {paired(a, b):.3f}")
    if opts.json:
        print(json.dumps({"summary": res, "rounds": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
