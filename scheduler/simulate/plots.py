"""PNG plots of a replay. matplotlib is imported here only, and only when a plot is drawn,
so the scheduler and the simulator's numbers need nothing beyond the standard library."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scheduler.errors import SchedulerError
from scheduler.simulate.engine import Report

__all__ = ["plot_bars", "plot_utilisation"]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; never a display
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise SchedulerError(
            "plots need matplotlib: pip install 'llmos[sim]' (or matplotlib)") from e
    return plt


def plot_utilisation(reports: Sequence[Report], path: str | Path, title: str = "") -> Path:
    """Nodes used against the lower bound, and cpu/memory utilisation, over time.

    One line per report (strategy), so strategies replayed on one trace compare at a glance.
    """
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    for r in reports:
        ts = [s.t / 60 for s in r.samples]
        ax1.plot(ts, [s.nodes_used for s in r.samples], label=f"{r.strategy} nodes used",
                 linewidth=1.2)
        ax2.plot(ts, [s.cpu_util * 100 for s in r.samples], label=f"{r.strategy} cpu",
                 linewidth=1.0)
        ax2.plot(ts, [s.mem_util * 100 for s in r.samples], label=f"{r.strategy} memory",
                 linewidth=1.0, linestyle="--")
    if reports:
        r0 = reports[0]
        ax1.plot([s.t / 60 for s in r0.samples], [s.lower_bound for s in r0.samples],
                 label="lower bound", color="black", linewidth=1.0, linestyle=":")
    ax1.set_ylabel("nodes")
    ax1.legend(fontsize=8, loc="upper left")
    ax1.grid(alpha=0.3)
    ax2.set_ylabel("requests / allocatable of nodes in use (%)")
    ax2.set_xlabel("time (minutes)")
    ax2.set_ylim(0, 105)
    ax2.legend(fontsize=7, loc="lower right", ncol=2)
    ax2.grid(alpha=0.3)
    fig.suptitle(title or (reports[0].trace if reports else ""))
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def plot_bars(labels: Sequence[str], series: Mapping[str, Sequence[float]], path: str | Path,
              ylabel: str, title: str, hline: float | None = None,
              ymin: float | None = None, fmt: str = "%.3g") -> Path:
    """Grouped bars: one group per label, one bar per series (e.g. strategy)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(1, len(series))
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(labels))]
        bars = ax.bar(xs, values, width, label=name)
        ax.bar_label(bars, fmt=fmt, fontsize=7)
    if ymin is not None:
        ax.set_ylim(bottom=ymin)
    if hline is not None:
        ax.axhline(hline, color="black", linestyle=":", linewidth=1)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
