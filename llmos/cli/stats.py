"""`llmos stats`: Docker's table of CPU %, memory and pids, once or every second."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from llmos.client import Client, RpcError


def stats(cl: Client, a: argparse.Namespace) -> int:
    """`stats`: a table a second (redrawn in place on a terminal) until interrupted or the
    containers named are all gone; `--no-stream`: one table.

    CPU % is Docker's: the container's CPU time over all CPUs' time between two reads, times
    the number of CPUs (100% is one CPU kept busy), so even the first table waits for a
    second read.
    """
    import time

    def read(first: bool) -> dict[str, dict[str, Any]]:
        out = {}
        for ref in a.containers or [c.id for c in cl.containers.list()]:
            try:
                s = cl.transport.call("container.stats", {"id": ref})
            except RpcError as e:
                if first and a.containers and e.kind == "not_found":
                    raise
                continue  # not running (any more): no row, as Docker
            out[s["id"]] = s
        return out

    try:
        prev = read(first=True)
    except RpcError as e:
        sys.stderr.write(f"Error: {e}\n")
        return 1
    redraw = sys.stdout.isatty() and not a.no_stream
    interval = 0.5  # the first table: soon, but over long enough a time for its CPU %
    try:
        while True:
            time.sleep(interval)
            interval = 1.0
            cur = read(first=False)
            table = stats_table(prev, cur)
            print(("\033[2J\033[H" if redraw else "") + table, flush=True)
            if a.no_stream or (a.containers and not cur):
                return 0
            prev = cur
    except KeyboardInterrupt:
        return 0


def stats_table(prev: dict[str, dict[str, Any]], cur: dict[str, dict[str, Any]]) -> str:
    rows = [("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS")]
    for cid, s in cur.items():
        cpu = 0.0
        p = prev.get(cid)
        if p is not None:
            c, pc = s["cpu_stats"], p["cpu_stats"]
            delta = c["cpu_usage"]["total_usage"] - pc["cpu_usage"]["total_usage"]
            system = c.get("system_cpu_usage", 0) - pc.get("system_cpu_usage", 0)
            if delta > 0 and system > 0:
                cpu = delta / system * c.get("online_cpus", 1) * 100
        mem = s["memory_stats"]
        # Page cache is reclaimable: not counted as use (as Docker on cgroup v1).
        used = max(0, mem["usage"] - (mem.get("stats") or {}).get("cache", 0))
        limit = mem.get("limit") or 0
        rows.append((cid[:12], s["name"].lstrip("/"), f"{cpu:.2f}%",
                     f"{human_bytes(used)} / {human_bytes(limit)}",
                     f"{used * 100 / limit:.2f}%" if limit else "--",
                     str(s["pids_stats"]["current"])))
    widths = [max(len(r[i]) for r in rows) + 3 for i in range(len(rows[0]) - 1)]
    return "\n".join("".join(f"{col:<{w}}" for col, w in zip(r, widths, strict=False)) + r[-1]
                     for r in rows)


def human_bytes(n: float) -> str:
    """Docker's sizes: binary units, four significant digits (1.195MiB, 64MiB)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.4g}{unit}"
        n /= 1024
    return f"{n:.4g}TiB"
