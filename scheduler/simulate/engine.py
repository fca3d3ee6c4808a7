"""Replay a trace through the scheduler on a fake clock, and measure what happened.

Event order at each instant: departures first (they free room), then arrivals (one by one,
or as one batch when ``batch=True``), then a retry of the pending queue if anything left.
A pod that fits nowhere may preempt lower-priority pods; victims go back to the pending
queue with the time they had left. Pending pods are retried in priority then arrival order.

The lower bound at time t is taken over the pods running then. Pending pods are not in it:
they are reported beside it (``pending``, ``placed_late``), because a packer that strands
a big pod should not be able to look better by counting its demand against nodes it never
had to open. Read the ratio and the unplaced count together. Placement speed is wall time
spent inside scheduler calls only (not the bookkeeping here).
"""

from __future__ import annotations

import hashlib
import heapq
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from scheduler.clock import FakeClock
from scheduler.filters import explain, summarize
from scheduler.model import Pod
from scheduler.placement import Scheduler
from scheduler.preemption import plan_preemption
from scheduler.simulate.bounds import LowerBound
from scheduler.simulate.trace import PodSpec, Trace
from scheduler.state import DEFAULT_LIMIT_RATIO, ClusterState
from scheduler.strategies import Strategy

__all__ = ["Report", "Sample", "fragmentation", "replay"]

#: Pending pods whose reasons are spelled out in a report (explaining is a full scan each).
EXPLAIN_AT_MOST = 50


@dataclass(frozen=True, slots=True)
class Sample:
    """The cluster at one instant of the replay."""

    t: float
    nodes_used: int
    lower_bound: int
    cpu_util: float  # requests of running pods / allocatable of the nodes in use
    mem_util: float
    pending: int


@dataclass
class Report:
    """Everything a replay measured; ``to_json`` gives the CLI's --json object."""

    trace: str
    strategy: str
    seed: int
    batch: bool
    nodes_total: int
    pods_total: int
    nodes_used_peak: int = 0
    lower_bound_peak: int = 0
    placed: int = 0
    placed_late: int = 0
    pending: int = 0
    pending_reasons: dict[str, int] = field(default_factory=dict)
    preemptions: int = 0
    moves: int = 0  # pods moved aside (still running) to make room, with make_room
    placements_per_s: float = 0.0
    cpu_util_at_peak: float = 0.0
    mem_util_at_peak: float = 0.0
    fragmentation_cpu: float = 0.0
    fragmentation_mem: float = 0.0
    decisions_digest: str = ""  # fingerprint of every placement, to compare runs
    samples: list[Sample] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Peak nodes used over the peak lower bound (1.0 is perfect packing)."""
        return self.nodes_used_peak / self.lower_bound_peak if self.lower_bound_peak else 0.0

    def to_json(self) -> dict[str, Any]:
        """The report without the time series, with the ratio spelled out."""
        out = asdict(self)
        out.pop("samples")
        out["ratio"] = round(self.ratio, 4)
        out["placements_per_s"] = round(self.placements_per_s, 1)
        for k in ("cpu_util_at_peak", "mem_util_at_peak", "fragmentation_cpu",
                  "fragmentation_mem"):
            out[k] = round(out[k], 4)
        return out


def fragmentation(state: ClusterState, probes: Sequence[Pod]) -> tuple[float, float]:
    """Share of free cpu and memory on nodes in use that no probe pod fits into.

    The probes are the pending pods when there are any (free room they cannot use is
    stranded); otherwise a typical pod of the trace. A node counts as stranded when no
    probe fits its free room, whatever the reason (only requests are compared here).
    """
    free_c = free_m = stranded_c = stranded_m = 0
    reqs = sorted({(p.requests.cpu_m, p.requests.memory) for p in probes})
    for n in range(len(state.nodes)):
        if not state.pods_on[n]:
            continue
        fc, fm = state.free_cpu[n], state.free_mem[n]
        free_c += fc
        free_m += fm
        if not any(c <= fc and m <= fm for c, m in reqs):
            stranded_c += fc
            stranded_m += fm
    return (stranded_c / free_c if free_c else 0.0, stranded_m / free_m if free_m else 0.0)


def replay(
    trace: Trace,
    strategy: Strategy | None = None,
    *,
    seed: int = 0,
    batch: bool = False,
    preemption: bool = True,
    make_room: bool = False,
    limit_ratio: float | None = DEFAULT_LIMIT_RATIO,
    keep_samples: bool = True,
) -> Report:
    """Run ``trace`` through a scheduler and report on it (deterministic for a seed)."""
    clock = FakeClock()
    sched = Scheduler(trace.nodes, strategy=strategy, limit_ratio=limit_ratio, seed=seed,
                      clock=clock)
    st = sched.state
    bound = LowerBound(trace.nodes)
    report = Report(trace.name, sched.strategy.name, seed, batch, len(trace.nodes),
                    len(trace.pods))
    spent = 0.0
    perf = time.perf_counter
    demand = [0, 0, 0, 0]  # requests of the running pods
    departures: list[tuple[float, int, str]] = []
    ends: dict[str, float] = {}  # pod name -> end time (inf: runs to the end)
    tickets: dict[str, int] = {}  # pod name -> the departure entry still valid for it
    left: dict[str, float] = {}  # pending pod -> duration still to run (0: to the end)
    pending: dict[str, Pod] = {}
    order: dict[str, int] = {}
    seq = 0
    specs = trace.pods
    i = 0
    peak_used = 0
    min_priority = min((s.pod.priority for s in specs), default=0)
    digest = hashlib.sha256()

    def started(pod: Pod, duration: float, now: float) -> None:
        nonlocal seq
        digest.update(f"{pod.name}@{st.where[pod.name]}@{now};".encode())
        r = pod.requests
        demand[0] += r.cpu_m
        demand[1] += r.memory
        demand[2] += r.pids
        demand[3] += r.ephemeral
        if duration > 0:
            seq += 1
            ends[pod.name] = now + duration
            tickets[pod.name] = seq
            heapq.heappush(departures, (now + duration, seq, pod.name))
        else:
            ends[pod.name] = float("inf")

    def stopped(pod: Pod) -> None:
        r = pod.requests
        demand[0] -= r.cpu_m
        demand[1] -= r.memory
        demand[2] -= r.pids
        demand[3] -= r.ephemeral

    def try_preempt(pod: Pod, now: float) -> bool:
        nonlocal spent
        if not preemption or pod.priority <= min_priority:
            return False
        t0 = perf()
        plan = plan_preemption(st, pod)
        if plan is None:
            spent += perf() - t0
            return False
        sched.apply_preemption(plan)
        spent += perf() - t0
        for v in plan.victims:
            stopped(v)
            end = ends.pop(v.name)
            tickets.pop(v.name, None)
            left[v.name] = 0.0 if end == float("inf") else max(end - now, 1e-3)
            pending[v.name] = v
            report.preemptions += 1
        return True

    def try_make_room(pod: Pod) -> bool:
        nonlocal spent
        if not make_room:
            return False
        t0 = perf()
        plan = sched.make_room_plan(pod)
        if plan is not None:
            sched.apply_rebalance(plan)
            st.bind(pod, st.node_id(plan.freed[0]))
            report.moves += len(plan.moves)
        spent += perf() - t0
        return plan is not None

    def arrived(batch_specs: Sequence[PodSpec], now: float) -> None:
        nonlocal spent
        for s in batch_specs:
            order[s.pod.name] = len(order)
        t0 = perf()
        if batch and len(batch_specs) > 1:
            decisions = sched.place_batch([s.pod for s in batch_specs], explain_refusals=False)
        else:
            decisions = [sched.place(s.pod, explain_refusals=False) for s in batch_specs]
        spent += perf() - t0
        for s, d in zip(batch_specs, decisions, strict=True):
            if d.placed:
                report.placed += 1
                started(s.pod, s.duration, now)
            elif try_preempt(s.pod, now) or try_make_room(s.pod):
                report.placed += 1
                started(s.pod, s.duration, now)
            else:
                pending[s.pod.name] = s.pod
                left[s.pod.name] = s.duration

    def retry(now: float) -> None:
        nonlocal spent
        queue = sorted(pending.values(), key=lambda p: (-p.priority, order[p.name]))
        for pod in queue:
            t0 = perf()
            d = sched.place(pod, explain_refusals=False)
            spent += perf() - t0
            if d.placed or try_preempt(pod, now) or try_make_room(pod):
                del pending[pod.name]
                report.placed += 1
                report.placed_late += 1
                started(pod, left.pop(pod.name), now)

    def sample(now: float) -> None:
        nonlocal peak_used
        used = st.used_nodes
        lb = bound(demand)
        report.lower_bound_peak = max(report.lower_bound_peak, lb)
        cap_c, cap_m = st.used_cap_cpu, st.used_cap_mem
        cu = demand[0] / cap_c if cap_c else 0.0
        mu = demand[1] / cap_m if cap_m else 0.0
        if used > peak_used:
            peak_used = used
            report.cpu_util_at_peak, report.mem_util_at_peak = cu, mu
        if keep_samples:
            report.samples.append(Sample(now, used, lb, cu, mu, len(pending)))

    while i < len(specs) or departures:
        next_arrival = specs[i].arrival if i < len(specs) else float("inf")
        now = min(next_arrival, departures[0][0] if departures else float("inf"))
        clock.set(max(now, clock.now()))
        freed = False
        while departures and departures[0][0] <= now:
            _, ticket, name = heapq.heappop(departures)
            if tickets.get(name) != ticket:
                continue  # preempted since; that departure is void (a new one may exist)
            del tickets[name]
            t0 = perf()
            pod = sched.remove(name)
            spent += perf() - t0
            del ends[name]
            stopped(pod)
            freed = True
        j = i
        while j < len(specs) and specs[j].arrival <= now:
            j += 1
        if j > i:
            group = specs[i:j]
            if batch:
                arrived(group, now)
            else:
                for s in group:
                    arrived((s,), now)
            i = j
            if i == len(specs):
                probes = list(pending.values()) or _typical(specs)
                report.fragmentation_cpu, report.fragmentation_mem = fragmentation(st, probes)
        if freed and pending:
            retry(now)
        sample(now)
        if i == len(specs) and not departures:
            break

    report.nodes_used_peak = peak_used
    report.pending = len(pending)
    reasons: Counter[str] = Counter()
    for pod in list(pending.values())[:EXPLAIN_AT_MOST]:
        reasons[summarize(explain(st, pod), len(st.nodes))] += 1
    report.pending_reasons = dict(reasons)
    report.placements_per_s = report.placed / spent if spent > 0 else 0.0
    report.decisions_digest = digest.hexdigest()[:16]
    return report


def _typical(specs: Sequence[PodSpec]) -> list[Pod]:
    """The median pod by cpu, as the probe for fragmentation when nothing is pending."""
    if not specs:
        return []
    by_size = sorted(specs, key=lambda s: (s.pod.requests.cpu_m, s.pod.requests.memory))
    return [by_size[len(by_size) // 2].pod]
