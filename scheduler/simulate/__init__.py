"""Trace-driven simulation of the scheduler: replay, metrics, synthetic traces, plots, CLI.

A *trace* is a set of nodes and pods with arrival times and durations. ``replay`` runs one
through a ``Scheduler`` on a fake clock and returns a ``Report`` with the numbers the issue
asks for (nodes used against a lower bound, utilisation per resource, fragmentation,
pending pods and why, preemptions, placements per second). Plotting imports matplotlib
lazily so the rest works without the ``sim`` extra.
"""

from scheduler.simulate.bounds import compaction, lower_bound
from scheduler.simulate.engine import Report, Sample, replay
from scheduler.simulate.generate import WORKLOADS, generate
from scheduler.simulate.trace import PodSpec, Trace, read_trace, write_trace

__all__ = [
    "WORKLOADS",
    "PodSpec",
    "Report",
    "Sample",
    "Trace",
    "compaction",
    "generate",
    "lower_bound",
    "read_trace",
    "replay",
    "write_trace",
]
