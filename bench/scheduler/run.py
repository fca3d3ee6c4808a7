"""Scheduler benchmark: packing quality, Borg-style compaction and placement speed.

Run from the repository root::

    python3 bench/scheduler/run.py            # full run, ~20 minutes on 2 slow cores
    python3 bench/scheduler/run.py --quick    # smaller clusters, a few minutes

It replays the synthetic traces (``scheduler.simulate.generate``) through binpack and the
Kubernetes-like LeastAllocated and MostAllocated strategies in the same run, on seeds 0-4,
one pod at a time and in batches, writes the plots to ``docs/img/scheduler-*.png``, the raw
numbers to ``bench/scheduler/results.json`` and the tables (with a summary of which targets
are met) into ``docs/scheduler.md`` between its ``bench:begin``/``bench:end`` marks.
Numbers are deterministic except the speeds, which depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from scheduler import (  # noqa: E402
    MIB,
    BinPack,
    ClusterState,
    LeastAllocated,
    MostAllocated,
    Node,
    Pod,
    Resources,
    Scheduler,
    Strategy,
)
from scheduler.simulate import Report, Trace, compaction, generate, lower_bound, replay  # noqa: E402

TRACES = ("uniform", "bimodal", "heavy", "mixed")
#: Label -> (strategy factory, make room by moving pods?). "binpack+moves" keeps a reserve
#: of big machines only for the big pods running now (no growth allowance) and moves small
#: pods aside when a big pod still finds no room.
VARIANTS: dict[str, tuple[Callable[[], Strategy], bool]] = {
    "binpack": (BinPack, False),
    "binpack+moves": (lambda: BinPack(reserve_growth=0.0), True),
    "most-allocated": (MostAllocated, False),
    "least-allocated": (LeastAllocated, False),
}
STRATEGIES = tuple(VARIANTS)
BATCH = 50  # pods per job in the batch traces
#: The issue's targets: peak nodes / lower bound, one pod at a time and in batches.
TARGET_ONE, TARGET_BATCH = 1.05, 1.03
MARK_BEGIN = "<!-- bench:begin -->"
MARK_END = "<!-- bench:end -->"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- quality -------------------------------------------------------------------------------


def quality(nodes: int, seed: int) -> tuple[list[dict[str, Any]], dict[str, list[Report]]]:
    """Every trace through every strategy one pod at a time, and binpack in batches."""
    rows: list[dict[str, Any]] = []
    for_plots: dict[str, list[Report]] = {}
    for name in TRACES:
        trace = generate(name, nodes, seed=seed)
        for strat in STRATEGIES:
            make, moves = VARIANTS[strat]
            t0 = time.perf_counter()
            r = replay(trace, make(), seed=seed, make_room=moves, keep_samples=True)
            r.strategy = strat
            rows.append(_row(r, "one by one", time.perf_counter() - t0))
            for_plots.setdefault(name, []).append(r)
            log(f"  {name:8} {strat:16} one by one  ratio {r.ratio:.3f} waiting at peak "
                f"{r.pending_at_peak} unplaced {r.pending}")
        batched = generate(name, nodes, seed=seed, batch=BATCH)
        for strat, as_batch in (("binpack", True), ("binpack+moves", True),
                                ("most-allocated", False)):
            make, moves = VARIANTS[strat]
            t0 = time.perf_counter()
            r = replay(batched, make(), seed=seed, batch=as_batch, make_room=moves,
                       keep_samples=False)
            r.strategy = strat
            mode = f"batches of {BATCH}" if as_batch else "batch trace, one by one"
            rows.append(_row(r, mode, time.perf_counter() - t0))
            log(f"  {name:8} {strat:16} {mode:20} ratio {r.ratio:.3f} waiting at peak "
                f"{r.pending_at_peak} unplaced {r.pending}")
    return rows, for_plots


def _row(r: Report, mode: str, wall: float) -> dict[str, Any]:
    return {
        "trace": r.trace, "strategy": r.strategy, "mode": mode, "pods": r.pods_total,
        "nodes_total": r.nodes_total, "nodes_used_peak": r.nodes_used_peak,
        "lower_bound_peak": r.lower_bound_peak, "ratio": round(r.ratio, 4),
        "running_bound_peak": r.running_bound_peak, "pending_at_peak": r.pending_at_peak,
        "pending_max": r.pending_max, "pending": r.pending, "placed_late": r.placed_late,
        "placed_again": r.placed_again, "preemptions": r.preemptions, "moves": r.moves,
        "cpu_util_at_peak": round(r.cpu_util_at_peak, 4),
        "mem_util_at_peak": round(r.mem_util_at_peak, 4),
        "fragmentation_cpu": round(r.fragmentation_cpu, 4),
        "placements_per_s": round(r.placements_per_s), "wall_s": round(wall, 1),
    }


def over_seeds(nodes: int, seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Every trace on every seed, one pod at a time and in batches: are the targets met?

    One pod at a time: binpack, MostAllocated and (on the mixed fleet, where they differ)
    binpack+moves. Batches: binpack and binpack+moves place each batch largest first;
    MostAllocated places the same trace one pod at a time, as Kubernetes would.
    """
    rows = []
    for name in TRACES:
        for batched in (False, True):
            for seed in seeds:
                trace = generate(name, nodes, seed=seed, batch=BATCH if batched else 1)
                variants = (("binpack", "most-allocated", "binpack+moves") if name == "mixed"
                            else ("binpack", "most-allocated"))
                row: dict[str, Any] = {"trace": trace.name, "seed": seed,
                                       "mode": f"batches of {BATCH}" if batched
                                       else "one by one"}
                for strat in variants:
                    make, moves = VARIANTS[strat]
                    as_batch = batched and strat != "most-allocated"
                    r = replay(trace, make(), seed=seed, batch=as_batch, make_room=moves,
                               keep_samples=False)
                    row[strat] = (f"{r.nodes_used_peak}/{r.lower_bound_peak} = {r.ratio:.3f}"
                                  f"{f', {r.pending_at_peak} waiting' if r.pending_at_peak else ''}"
                                  f"{f', {r.pending} unplaced' if r.pending else ''}"
                                  f"{f', {r.moves} moved' if r.moves else ''}")
                    for key, value in (("nodes", r.nodes_used_peak), ("bound", r.lower_bound_peak),
                                       ("ratio", round(r.ratio, 4)),
                                       ("waiting", r.pending_at_peak), ("pending", r.pending),
                                       ("moves", r.moves)):
                        row[f"{strat}_{key}"] = value
                row["fewer_than_most"] = row["most-allocated_nodes"] - row["binpack_nodes"]
                rows.append(row)
                log(f"  {trace.name} seed {seed}: " + "; ".join(
                    f"{v} {row[v]}" for v in variants))
    return rows


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per trace and arrival mode, over the seeds: the worst case against each target."""
    out = []
    for name in TRACES:
        for mode in ("one by one", f"batches of {BATCH}"):
            group = [r for r in rows if r["trace"].startswith(f"{name}-") and r["mode"] == mode]
            if not group:
                continue
            limit = TARGET_ONE if mode == "one by one" else TARGET_BATCH
            for strat in ("binpack", "binpack+moves"):
                if f"{strat}_ratio" not in group[0]:
                    continue
                worst = max(r[f"{strat}_ratio"] for r in group)
                waiting = sum(r[f"{strat}_waiting"] for r in group)
                unplaced = sum(r[f"{strat}_pending"] for r in group)
                fewer = sum(r["most-allocated_nodes"] > r[f"{strat}_nodes"] for r in group)
                same = sum(r["most-allocated_nodes"] == r[f"{strat}_nodes"] for r in group)
                out.append({
                    "trace": name, "mode": mode, "strategy": strat,
                    "seeds": f"{min(r['seed'] for r in group)}-{max(r['seed'] for r in group)}",
                    "worst_ratio": worst, "target": limit,
                    "ratio_met": "yes" if worst <= limit else "no",
                    "waiting_at_peak": waiting, "unplaced": unplaced,
                    "placement_met": "yes" if unplaced == 0 else "no",
                    "vs_most": f"{fewer} fewer, {same} same, {len(group) - fewer - same} more",
                    "nodes_met": "yes" if fewer == len(group) else "no",
                })
    return out


# -- compaction ----------------------------------------------------------------------------


def alive_at_end(trace: Trace) -> list[Pod]:
    """The workload at the last arrival: pods arrived and not yet finished (the peak)."""
    end = trace.pods[-1].arrival
    return [s.pod for s in trace.pods
            if s.duration == 0 or s.arrival + s.duration > end]


def compact(nodes: int, seed: int, seeds: int) -> list[dict[str, Any]]:
    """Borg's compaction: the fewest nodes (90th percentile over seeds) that fit the peak."""
    rows = []
    for name in TRACES:
        trace = generate(name, nodes, seed=seed)
        pods = alive_at_end(trace)
        lb = lower_bound(pods, trace.nodes)
        for strat in STRATEGIES:
            def fits(subset: Sequence[Node], strat: str = strat,
                     pods: list[Pod] = pods) -> bool:
                make, moves = VARIANTS[strat]
                s = Scheduler(subset, strategy=make(), seed=seed)
                for p in pods:
                    if not s.place(p, explain_refusals=False).placed and not (
                            moves and s.make_room(p).placed):
                        return False
                return True

            t0 = time.perf_counter()
            p90, per_seed = compaction(trace.nodes, fits, seeds=range(seeds), start=lb)
            rows.append({"trace": trace.name, "strategy": strat, "pods": len(pods),
                         "lower_bound": lb, "compacted_p90": p90,
                         "ratio": round(p90 / lb, 4), "per_seed": per_seed,
                         "wall_s": round(time.perf_counter() - t0, 1)})
            log(f"  {name:8} {strat:16} compaction p90 {p90:.0f} (lower bound {lb})")
    return rows


# -- speed ---------------------------------------------------------------------------------


class ScanBinPack(BinPack):
    """The same cost as BinPack, found by scanning every node: the no-index baseline."""

    name = "binpack-scan"

    def best_running(self, state: ClusterState, pod: Pod,
                     ok: Callable[[int], bool] | None) -> int | None:
        rc, rm = pod.requests.cpu_m, pod.requests.memory
        kc, km = self.weights_now(state)
        b = self.base
        caps = state.cap
        pods_on = state.pods_on
        best, best_cost = -1, float("inf")
        for n, (f1, f2) in enumerate(zip(state.free_cpu, state.free_mem, strict=True)):
            if f1 >= rc and f2 >= rm and pods_on[n]:
                cap = caps[n]
                cost = kc * b ** ((f1 - rc) / cap.cpu_m) + km * b ** ((f2 - rm) / cap.memory)
                if cost < best_cost and (ok is None or ok(n)):
                    best, best_cost = n, cost
        return best if best >= 0 else None


def churn(nodes: int, strategy: BinPack, steps: int, seed: int = 1) -> dict[str, Any]:
    """Fill equal nodes to 85% of cpu, then replace random pods one for one.

    Reports placements per second while filling (placement only) and in the steady state
    (each step one removal and one placement, both timed), with pods built beforehand.
    """
    rng = random.Random(seed)
    cluster = [Node(f"n{i}", Resources(32000, 128 * 1024 * MIB, 100000, 0))
               for i in range(nodes)]
    s = Scheduler(cluster, strategy=strategy)
    fill = int(nodes * 32000 * 0.85 / 1500)
    pods = [Pod(f"p{i}", Resources(rng.choice([100, 250, 500, 1000, 2000, 4000]),
                                   rng.choice([128, 256, 512, 1024, 2048, 4096, 8192]) * MIB))
            for i in range(fill + steps)]
    picks = [rng.random() for _ in range(steps)]
    live: list[str] = []
    t0 = time.perf_counter()
    for p in pods[:fill]:
        if s.place(p, explain_refusals=False).placed:
            live.append(p.name)
    t1 = time.perf_counter()
    placed_only = 0.0
    for k in range(steps):
        j = int(picks[k] * len(live))
        live[j], live[-1] = live[-1], live[j]
        s.remove(live.pop())
        p = pods[fill + k]
        ta = time.perf_counter()
        if s.place(p, explain_refusals=False).placed:
            live.append(p.name)
        placed_only += time.perf_counter() - ta
    t2 = time.perf_counter()
    return {"nodes": nodes, "strategy": strategy.name, "fill_pods": fill,
            "fill_per_s": round(fill / (t1 - t0)),
            "steady_per_s": round(steps / (t2 - t1)),
            "steady_place_only_per_s": round(steps / placed_only),
            "nodes_used": s.state.used_nodes}


def speed(sizes: Sequence[int], steps: int, seed: int, repeats: int) -> list[dict[str, Any]]:
    """Churn at each size (binpack ``repeats`` times: medians, and the range as the noise),
    the scanning baseline once, and a replay of every trace."""
    rows = []
    for n in sizes:
        runs = [churn(n, BinPack(), steps) for _ in range(repeats)]
        r = dict(runs[0])
        for key in ("fill_per_s", "steady_per_s", "steady_place_only_per_s"):
            values = sorted(x[key] for x in runs)
            r[key] = values[len(values) // 2]
            r[f"{key}_range"] = f"{values[0]:,}-{values[-1]:,}"
        r["runs"] = repeats
        rows.append(r)
        log(f"  binpack {n:6} nodes: fill {r['fill_per_s']}/s, steady {r['steady_per_s']}/s "
            f"(range {r['steady_per_s_range']} over {repeats} runs)")
        scan_steps = max(200, steps // (n // 500 or 1) // 4)
        r = churn(n, ScanBinPack(), scan_steps)
        rows.append(r)
        log(f"  scan    {n:6} nodes: fill {r['fill_per_s']}/s, steady {r['steady_per_s']}/s")
        for name in TRACES:
            t0 = time.perf_counter()
            rep = replay(generate(name, n, seed=seed), keep_samples=False)
            rows.append({"nodes": n, "strategy": "binpack", "trace": rep.trace,
                         "trace_pods": rep.pods_total,
                         "bindings": rep.placed + rep.placed_again,
                         "replay_placements_per_s": round(rep.placements_per_s),
                         "ratio": round(rep.ratio, 4), "pending": rep.pending,
                         "wall_s": round(time.perf_counter() - t0, 1)})
            log(f"  replay  {n:6} nodes {name:8}: {rep.placements_per_s:.0f}/s "
                f"({rep.pods_total} pods, ratio {rep.ratio:.3f})")
    return rows


# -- output --------------------------------------------------------------------------------


def plots(results: dict[str, Any], for_plots: dict[str, list[Report]], img: Path) -> None:
    from scheduler.simulate.plots import plot_utilisation

    img.mkdir(parents=True, exist_ok=True)
    for name, reports in for_plots.items():
        plot_utilisation(reports, img / f"scheduler-utilisation-{name}.png",
                         title=f"{reports[0].trace}: nodes in use over time, one pod at a time")
    bar_plots(results, img)


def bar_plots(results: dict[str, Any], img: Path) -> None:
    """The summary bar charts, from the numbers alone (``--replot`` redraws just these)."""
    from scheduler.simulate.plots import plot_bars

    one = [r for r in results["quality"] if r["mode"] == "one by one"]
    seeds = [r for r in results["seeds"] if r["mode"] == "one by one"]

    def worst(strat: str, trace: str) -> float:
        """The worst seed where every seed was run, else seed 0 (the quality runs)."""
        ratios = [r[f"{strat}_ratio"] for r in seeds
                  if r["trace"].startswith(f"{trace}-") and f"{strat}_ratio" in r]
        if ratios:
            return float(max(ratios))
        return float(next(r["ratio"] for r in one if r["strategy"] == strat
                          and r["trace"].startswith(f"{trace}-")))

    series = {s: [worst(s, t) for t in TRACES] for s in STRATEGIES}
    plot_bars(list(TRACES), series, img / "scheduler-quality.png",
              "peak nodes used / lower bound", "Packing quality one pod at a time, worst of "
              "seeds 0-4 (least-allocated: seed 0; 1.0 = the bound)", hline=1.0, ymin=0.9,
              fmt="%.3f")
    comp = results["compaction"]
    series = {s: [next(r["ratio"] for r in comp if r["strategy"] == s
                       and r["trace"].startswith(t)) for t in TRACES] for s in STRATEGIES}
    finite = {k: [v if v != float("inf") else 0.0 for v in vs] for k, vs in series.items()}
    plot_bars(list(TRACES), finite, img / "scheduler-compaction.png",
              "compacted nodes (p90 of seeds) / lower bound",
              "Borg-style compaction (lower is better; 0 = does not fit at all)", hline=1.0,
              fmt="%.3f")
    sp = [r for r in results["speed"] if "steady_per_s" in r]
    labels = sorted({f"{r['nodes']:,} nodes" for r in sp}, key=lambda x: int(x.split()[0]
                                                                            .replace(",", "")))
    series = {}
    for strat in ("binpack", "binpack-scan"):
        for key, word in (("fill_per_s", "fill"), ("steady_per_s", "steady")):
            series[f"{strat} {word}"] = [next(r[key] for r in sp if r["strategy"] == strat
                                              and f"{r['nodes']:,} nodes" == lab)
                                         for lab in labels]
    plot_bars(labels, series, img / "scheduler-speed.png", "placements per second",
              "Placement speed: indexed binpack vs scanning every node", fmt="%.0f")


def table(rows: list[dict[str, Any]], cols: Sequence[tuple[str, str]]) -> str:
    head = "| " + " | ".join(h for _, h in cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    body = ["| " + " | ".join(_fmt(r.get(k, "")) for k, _ in cols) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if v < 10 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    parts = [
        f"Measured by `python3 bench/scheduler/run.py{' --quick' if meta['quick'] else ''}` "
        f"on {meta['machine']} ({meta['python']}), {meta['date']}; "
        f"{meta['nodes']} nodes for quality, {meta['compaction_nodes']} for compaction. "
        "The lower bound is taken over the trace's demand (pods arrived and not finished, "
        "running or waiting); *waiting* is pods waiting when it peaked, *unplaced* pods "
        "still waiting at the end.",
        "",
        f"**Targets** over seeds {results['targets'][0]['seeds']} (worst seed; "
        f"ratio target {TARGET_ONE} one by one, {TARGET_BATCH} in batches; 0 unplaced; fewer "
        "nodes than MostAllocated on every seed):",
        "",
        table(results["targets"], [
            ("trace", "trace"), ("mode", "arrival"), ("strategy", "strategy"),
            ("worst_ratio", "worst ratio"), ("ratio_met", "ratio met"),
            ("waiting_at_peak", "waiting (sum)"), ("unplaced", "unplaced (sum)"),
            ("placement_met", "0 unplaced"), ("vs_most", "nodes vs MostAllocated"),
            ("nodes_met", "fewer on all")]),
        "",
        "**Every seed** (peak nodes used / lower bound; MostAllocated places the batch traces "
        "one pod at a time, as Kubernetes would):",
        "",
        table(results["seeds"], [("trace", "trace"), ("mode", "arrival"), ("seed", "seed"),
                                 ("binpack", "binpack"), ("most-allocated", "most-allocated"),
                                 ("fewer_than_most", "binpack: nodes fewer"),
                                 ("binpack+moves", "binpack+moves")]),
        "",
        "**Seed 0 in detail** (all four strategies; utilisation at the peak of nodes used):",
        "",
        table(results["quality"], [
            ("trace", "trace"), ("mode", "arrival"), ("strategy", "strategy"),
            ("nodes_used_peak", "nodes used"), ("lower_bound_peak", "lower bound"),
            ("ratio", "ratio"), ("pending_at_peak", "waiting"), ("pending", "unplaced"),
            ("placed_late", "waited"), ("moves", "moved"), ("cpu_util_at_peak", "cpu util"),
            ("mem_util_at_peak", "mem util"), ("placements_per_s", "placements/s")]),
        "",
        "**Borg compaction** (fewest nodes that still fit the peak workload, 90th percentile "
        f"over {meta['seeds']} seeds of random node removal):",
        "",
        table(results["compaction"], [
            ("trace", "trace"), ("strategy", "strategy"), ("pods", "pods"),
            ("lower_bound", "lower bound"), ("compacted_p90", "compacted p90"),
            ("ratio", "ratio")]),
        "",
        "**Speed** (one process; steady = one removal plus one placement per step; binpack "
        "is the median of several runs, with their range):",
        "",
        table([r for r in results["speed"] if "steady_per_s" in r], [
            ("nodes", "nodes"), ("strategy", "strategy"), ("fill_per_s", "fill /s"),
            ("steady_per_s", "steady /s"), ("steady_per_s_range", "steady range"),
            ("steady_place_only_per_s", "steady, placement only /s")]),
        "",
        "Replaying each trace with binpack (scheduler time only: placements, removals and "
        "failed retries; placements/s counts every binding):",
        "",
        table([r for r in results["speed"] if "replay_placements_per_s" in r], [
            ("nodes", "nodes"), ("trace", "trace"), ("trace_pods", "pods"),
            ("replay_placements_per_s", "replay placements/s"), ("ratio", "ratio"),
            ("pending", "unplaced")]),
    ]
    return "\n".join(parts)


def update_doc(doc: Path, text: str) -> None:
    if not doc.exists():
        log(f"{doc} not found; tables not written there")
        return
    body = doc.read_text()
    if MARK_BEGIN not in body or MARK_END not in body:
        log(f"{doc} has no {MARK_BEGIN} ... {MARK_END} block; tables not written there")
        return
    head, rest = body.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    doc.write_text(f"{head}{MARK_BEGIN}\n{text}\n{MARK_END}{tail}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small clusters, fewer seeds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--no-doc", action="store_true", help="do not rewrite docs/scheduler.md")
    ap.add_argument("--out", default=str(ROOT / "bench" / "scheduler" / "results.json"))
    ap.add_argument("--replot", action="store_true",
                    help="only redraw the bar charts and tables from --out's numbers")
    args = ap.parse_args(argv)
    results: dict[str, Any]
    if args.replot:
        results = json.loads(Path(args.out).read_text())
        bar_plots(results, ROOT / "docs" / "img")
        text = markdown(results)
        if not args.no_doc:
            update_doc(ROOT / "docs" / "scheduler.md", text)
        print(text)
        return 0
    nodes = 200 if args.quick else 1000
    comp_nodes = 60 if args.quick else 200
    seeds = 3 if args.quick else 11
    sizes = (1000,) if args.quick else (1000, 10000)
    steps = 5000 if args.quick else 20000
    repeats = 2 if args.quick else 3
    results = {"meta": {
        "quick": args.quick, "nodes": nodes, "compaction_nodes": comp_nodes, "seeds": seeds,
        "machine": f"{platform.machine()} Linux, {_cpus()} cpus",
        "python": f"Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }}
    log("quality:")
    results["quality"], for_plots = quality(nodes, args.seed)
    log("seeds:")
    results["seeds"] = over_seeds(nodes, range(5) if not args.quick else range(3))
    results["targets"] = targets(results["seeds"])
    log("compaction:")
    results["compaction"] = compact(comp_nodes, args.seed, seeds)
    log("speed:")
    results["speed"] = speed(sizes, steps, args.seed, repeats)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    if not args.no_plots:
        plots(results, for_plots, ROOT / "docs" / "img")
    text = markdown(results)
    if not args.no_doc:
        update_doc(ROOT / "docs" / "scheduler.md", text)
    print(text)
    return 0


def _cpus() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
