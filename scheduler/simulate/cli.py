"""``llmos-sim NODES.csv PODS.csv [--strategy S] [--seed N] [--json]`` and a few more flags.

Thin glue: parse arguments, read the trace, replay, print. Exit codes: 0 done, 2 bad input
(malformed CSV, unknown strategy), the same code argparse uses for a bad command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from scheduler.errors import SchedulerError, TraceError
from scheduler.simulate.engine import Report, replay
from scheduler.simulate.trace import read_trace
from scheduler.strategies import STRATEGIES, make_strategy

__all__ = ["main", "render"]

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="llmos-sim",
        description="Replay a cluster trace through the llmos scheduler and report packing "
                    "quality and speed.",
    )
    p.add_argument("nodes", metavar="NODES.csv",
                   help="columns name,cpu_m,memory_mib[,pids,ephemeral_mib,labels]")
    p.add_argument("pods", metavar="PODS.csv",
                   help="columns name,arrival_s,duration_s,cpu_m,memory_mib"
                        "[,limit_cpu_m,limit_memory_mib,priority,labels]")
    p.add_argument("--strategy", choices=sorted(STRATEGIES), default="binpack",
                   help="placement strategy (default: binpack)")
    p.add_argument("--seed", type=int, default=0, help="seed for tie-breaking (default: 0)")
    p.add_argument("--batch", action="store_true",
                   help="place pods that arrive at the same instant as one batch")
    p.add_argument("--no-preemption", action="store_true", help="never evict pods")
    p.add_argument("--make-room", action="store_true",
                   help="move running pods to other nodes (they keep running) to place a pod "
                        "that fits nowhere")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="PNG", help="also draw utilisation over time (matplotlib)")
    return p


def render(report: Report) -> str:
    """The report as lines a person reads: the same numbers as --json."""
    lines = [
        f"trace            {report.trace} ({report.pods_total} pods, {report.nodes_total} nodes)",
        f"strategy         {report.strategy} (seed {report.seed}"
        f"{', batches' if report.batch else ''})",
        f"nodes used peak  {report.nodes_used_peak}",
        f"lower bound peak {report.lower_bound_peak}"
        f"  (ratio {report.ratio:.3f}; 1.000 is perfect; from the demand of pods arrived,"
        " running or waiting)",
        f"waiting at peak  {report.pending_at_peak}"
        f" (most waiting at once: {report.pending_max})",
        f"running bound    {report.running_bound_peak} (the bound over running pods only)",
        f"placed           {report.placed} ({report.placed_late} after waiting;"
        f" {report.placed_again} placed again after eviction)",
        f"pending          {report.pending}"
        f"{f' ({report.unfit} larger than every node)' if report.unfit else ''}",
        f"preemptions      {report.preemptions}",
        f"moves            {report.moves}",
        f"utilisation      cpu {report.cpu_util_at_peak:.1%}, memory"
        f" {report.mem_util_at_peak:.1%} of nodes in use, at the peak",
        f"fragmentation    cpu {report.fragmentation_cpu:.1%}, memory"
        f" {report.fragmentation_mem:.1%} of free room on nodes in use fits no pending pod"
        " (a median pod when none is pending)",
        f"placements/s     {report.placements_per_s:,.0f}",
    ]
    for reason, count in sorted(report.pending_reasons.items(), key=lambda kv: -kv[1]):
        lines.append(f"  why pending ({count} pods): {reason}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``llmos-sim``; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        trace = read_trace(args.nodes, args.pods)
        report = replay(trace, make_strategy(args.strategy), seed=args.seed, batch=args.batch,
                        preemption=not args.no_preemption, make_room=args.make_room,
                        keep_samples=bool(args.plot))
    except TraceError as e:
        print(f"llmos-sim: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SchedulerError as e:
        print(f"llmos-sim: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.plot:
        from scheduler.simulate.plots import plot_utilisation

        try:
            plot_utilisation([report], args.plot)
        except SchedulerError as e:
            print(f"llmos-sim: {e}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(report.to_json(), sort_keys=True))
    else:
        print(render(report))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
