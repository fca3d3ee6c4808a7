#!/usr/bin/env python3
"""HTTP through a published port versus the container's own address, measured with wrk.

    sudo python3 bench/network/wrk_published.py [--duration 10] [--rounds 3] [--server busybox]

Builds its own namespaces (nothing in the machine's own namespace changes): ``<p>h`` stands for
the host and runs the NetworkManager, ``<p>c`` is the container running the web server on the
default ``bridge`` network with ``-p 8080:80``, ``<p>o`` is an outside machine linked to the
host by a veth (192.0.2.0/24, only inside these namespaces). wrk runs against:

* ``direct``     http://<container ip>:80/  from the host namespace (no NAT: the baseline)
* ``published``  http://192.0.2.1:8080/     from the host namespace (output-hook DNAT)
* ``loopback``   http://127.0.0.1:8080/     from the host namespace (DNAT + masquerade)
* ``outside``    http://192.0.2.1:8080/     from the outside namespace (prerouting DNAT,
                                            forwarded; the path other machines take)

Rounds are interleaved (direct, published, ... then again) so background load on the machine
hits every target alike; the median round is reported. Servers: ``busybox`` (busybox httpd,
one connection per request: the worst case for NAT, every request is a new conntrack entry) or
``asyncio`` (a keep-alive Python server in this file). The target in the issue: published at
least 0.95x the direct path. Output: a table and, with --json, the raw numbers.
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
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HOST_IP = "192.0.2.1"
OUTSIDE_IP = "192.0.2.2"
PORT = 8080

ASYNCIO_SERVER = r"""
import asyncio
BODY = b"x" * 612  # the size of nginx's welcome page
RESP = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
        + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                break
            writer.write(RESP)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()
async def main():
    srv = await asyncio.start_server(handle, "0.0.0.0", 80, backlog=1024)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
"""


def run(args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=True, **kw)


def parse_wrk(text: str) -> dict[str, float]:
    """Requests/sec and latency percentiles (ms) from ``wrk --latency`` output."""

    def ms(value: str) -> float:
        m = re.match(r"([\d.]+)(us|ms|s)", value)
        if not m:
            return float("nan")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return float(m.group(1)) * scale

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


def wrk(ns: str | None, url: str, duration: int, threads: int, conns: int) -> dict[str, float]:
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency", url]
    if ns is not None:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    proc = run(cmd, timeout=duration + 60)
    return parse_wrk(proc.stdout)


def host_side(opts: argparse.Namespace) -> int:
    """Runs inside the host namespace: manager, container, wrk; prints one JSON line."""
    sys.path.insert(0, str(REPO))
    from llmos.network import NetworkManager

    state = tempfile.mkdtemp(prefix="llmos-bench-")
    mgr = NetworkManager(state, dns_upstreams=[])
    server: subprocess.Popen[bytes] | None = None
    www = tempfile.mkdtemp(prefix="llmos-bench-www-")
    try:
        mgr.restore()
        ep = mgr.connect("bridge", "benchweb", opts.container, name="web")
        mgr.publish("benchweb", [f"{PORT}:80"])
        if opts.server == "busybox":
            Path(www, "index.html").write_text("x" * 612)
            argv = ["busybox", "httpd", "-f", "-p", "80", "-h", www]
        else:
            argv = [sys.executable, "-c", ASYNCIO_SERVER]
        server = subprocess.Popen(
            ["ip", "netns", "exec", opts.container, *argv], start_new_session=True
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["wrk", "-t1", "-c1", "-d1s", f"http://{ep.ip}:80/"], capture_output=True, text=True
            )
            if parse_wrk(probe.stdout)["rps"] > 0:
                break
            time.sleep(0.2)
        targets = {
            "direct": (None, f"http://{ep.ip}:80/"),
            "published": (None, f"http://{HOST_IP}:{PORT}/"),
            "loopback": (None, f"http://127.0.0.1:{PORT}/"),
            "outside": (opts.outside, f"http://{HOST_IP}:{PORT}/"),
        }
        results: dict[str, list[dict[str, float]]] = {k: [] for k in targets}
        for _ in range(opts.rounds):
            for name, (ns, url) in targets.items():
                results[name].append(wrk(ns, url, opts.duration, opts.threads, opts.connections))
        print(
            json.dumps({"server": opts.server, "container_ip": str(ep.ip), "results": results}),
            flush=True,
        )
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        mgr.teardown_all()
        mgr.close()
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(www, ignore_errors=True)
    return 0


def median_round(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--server", choices=("busybox", "asyncio"), default="busybox")
    ap.add_argument("--json", action="store_true", help="print the raw numbers as JSON too")
    ap.add_argument("--host-side", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--container", help=argparse.SUPPRESS)
    ap.add_argument("--outside", help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts.host_side:
        return host_side(opts)
    if os.geteuid() != 0 or shutil.which("wrk") is None:
        print("needs root and wrk (apt-get install wrk)", file=sys.stderr)
        return 2

    prefix = "llb" + secrets.token_hex(3)
    host, ctr, outside = f"{prefix}h", f"{prefix}c", f"{prefix}o"
    made: list[str] = []
    try:
        for ns in (host, ctr, outside):
            run(["ip", "netns", "add", ns])
            made.append(ns)
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(
            [
                "ip",
                "netns",
                "exec",
                host,
                "ip",
                "link",
                "add",
                "eth-out",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                outside,
            ]
        )
        run(["ip", "-n", host, "addr", "add", f"{HOST_IP}/24", "dev", "eth-out"])
        run(["ip", "-n", host, "link", "set", "eth-out", "up"])
        run(["ip", "-n", outside, "addr", "add", f"{OUTSIDE_IP}/24", "dev", "eth0"])
        run(["ip", "-n", outside, "link", "set", "eth0", "up"])
        child = run(
            [
                "ip",
                "netns",
                "exec",
                host,
                sys.executable,
                __file__,
                "--host-side",
                "--container",
                ctr,
                "--outside",
                outside,
                "--server",
                opts.server,
                "--duration",
                str(opts.duration),
                "--rounds",
                str(opts.rounds),
                "--threads",
                str(opts.threads),
                "--connections",
                str(opts.connections),
            ],
            timeout=opts.rounds * 4 * (opts.duration + 60) + 120,
        )
        data = json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], check=False)

    res = {k: median_round(v) for k, v in data["results"].items()}
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    base = res["direct"]["rps"] or float("nan")
    print(
        f"wrk -t{opts.threads} -c{opts.connections} -d{opts.duration}s, server={opts.server}, "
        f"median of {opts.rounds} interleaved rounds, container {data['container_ip']}, "
        f"load average {load} on {os.cpu_count()} cpus"
    )
    print(
        f"{'path':<10} {'req/s':>10} {'vs direct':>9} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'errors':>7}"
    )
    for name, r in res.items():
        print(
            f"{name:<10} {r['rps']:>10.0f} {r['rps'] / base:>9.3f} {r['p50_ms']:>8.2f} "
            f"{r['p90_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>7.0f}"
        )
    if opts.json:
        print(json.dumps({"summary": res, **data}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
