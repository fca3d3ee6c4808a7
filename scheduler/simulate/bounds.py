"""Yardsticks for packing quality: the lower bound on nodes, and Borg's compaction.

The lower bound is the one the issue defines. For each resource, the fewest nodes, taking
the largest first, whose capacity covers the demand; then the maximum over resources. On
equal nodes that is ``max_d ceil(sum of requests_d / capacity_d)``. No packing can use fewer
nodes, so ``nodes used / lower bound`` is at least 1 and says how much a placement wastes.

Compaction (Verma et al., "Large-scale cluster management at Google with Borg", 2015): how
small a cluster still fits the workload. Remove nodes in a random order until the workload
no longer fits; repeat for 11 seeds and report the 90th percentile.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Callable, Sequence
from itertools import accumulate

from scheduler.model import Node, Pod, Resources

__all__ = ["LowerBound", "compaction", "lower_bound", "percentile"]


class LowerBound:
    """Precomputed prefix sums of node capacities, largest first, per resource."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.prefix: list[list[int]] = []
        for d in range(4):
            caps = sorted((n.allocatable[d] for n in nodes), reverse=True)
            self.prefix.append(list(accumulate(caps)))

    def __call__(self, demand: Sequence[int]) -> int:
        """Nodes needed for ``demand`` (cpu, memory, pids, ephemeral); a huge count if none."""
        need = 0
        for d, want in enumerate(demand):
            if want <= 0:
                continue
            prefix = self.prefix[d]
            k = bisect_left(prefix, want) + 1
            if k > len(prefix):  # more than the whole cluster: count as if nodes repeated
                total = prefix[-1] if prefix else 0
                k = len(prefix) + (-(-(want - total) * len(prefix) // total) if total else 0)
            need = max(need, k)
        return need


def lower_bound(pods: Sequence[Pod], nodes: Sequence[Node]) -> int:
    """The fewest nodes that could hold ``pods``, by the issue's definition."""
    total = Resources()
    for p in pods:
        total = total.plus(p.requests)
    return LowerBound(nodes)(total)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile with linear interpolation (numpy's default), no numpy needed."""
    if not values:
        raise ValueError("percentile of no values")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    if xs[lo] == xs[hi] or pos == lo:
        return float(xs[lo])  # also keeps infinities out of inf - inf
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def compaction(
    nodes: Sequence[Node],
    fits: Callable[[Sequence[Node]], bool],
    *,
    seeds: Sequence[int] = tuple(range(11)),
    start: int | None = None,
    q: float = 90.0,
) -> tuple[float, list[float]]:
    """Borg's compaction: the ``q``-th percentile over seeds of the fewest nodes that fit.

    ``fits(nodes)`` answers whether the workload fits on those nodes (the caller decides
    how: one pod at a time, or in batches). For each seed the nodes are shuffled and the
    smallest prefix that fits is found by galloping up from ``start`` (the lower bound,
    say) and then bisecting, assuming that more nodes never fit worse. A seed where even
    the whole cluster does not fit counts as infinity.
    """
    results: list[float] = []
    for seed in seeds:
        order = list(nodes)
        random.Random(seed).shuffle(order)
        if not fits(order):
            results.append(math.inf)
            continue
        lo = max(1, min(start or 1, len(order)))
        if fits(order[:lo]):
            results.append(lo)
            continue
        step = max(1, lo // 64)
        hi = lo + step
        while hi < len(order) and not fits(order[:hi]):
            lo = hi
            step *= 2
            hi = min(len(order), hi + step)
        hi = min(hi, len(order))
        # Invariant: lo does not fit, hi fits (or is the whole cluster).
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if fits(order[:mid]):
                hi = mid
            else:
                lo = mid
        results.append(hi)
    return percentile(results, q), results
