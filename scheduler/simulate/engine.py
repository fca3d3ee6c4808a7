"""Replay a trace through the scheduler on a fake clock, and measure what happened.

Event order at each instant: departures first (they free room), then arrivals (one by one,
or as one batch when ``batch=True``), then a retry of the pending queue if anything left or
anyone was evicted. A pod that fits nowhere may preempt lower-priority pods; victims go back
to the pending queue with the time they had left and are retried at once, since the room
they need may well be elsewhere (retries repeat while they evict more). Pending pods are
retried in priority then arrival order.

The lower bound at time t comes from the trace's own demand: the requests of every pod that
has arrived by t and whose run (arrival + duration) has not ended, whether the replay has it
running or waiting, leaving out pods that no node could hold even empty (``unfit``: no
packer can place them, so counting them would flatter every ratio). That number is the same
for every strategy, so ratios compare; a bound over running pods only
(``running_bound_peak``, kept for reference) would shrink for a packer that leaves pods
waiting. Pods waiting are reported beside the ratio (``pending_at_peak``, ``pending_max``,
``pending`` at the end): a packer that strands a big pod uses fewer nodes than the demand
needs and must not pass for a better one. Read the ratio and the waiting counts together.
Each pod counts once in ``placed``; placements of pods evicted earlier are
``placed_again``. Placement speed is every binding (first or again) over the wall time
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
from scheduler.model import Node, Pod, Resources
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
    lower_bound: int  # from the trace's demand (running or waiting), the same for all packers
    cpu_util: float  # requests of running pods / allocatable of the nodes in use
    mem_util: float
    pending: int
    running_bound: int = 0  # the same bound over the pods running only


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
    running_bound_peak: int = 0  # the bound over running pods only (depends on the packer)
    placed: int = 0  # pods placed at least once, each counted once
    placed_late: int = 0  # of those, pods whose first placement came after waiting
    placed_again: int = 0  # placements of pods that had been evicted (preemption)
    pending: int = 0  # pods waiting at the end
    pending_at_peak: int = 0  # pods waiting when the lower bound first reached its peak
    pending_max: int = 0  # most pods waiting at any instant
    unfit: int = 0  # pods larger than every node (by requests): never placed, not in the bound
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
    wanted = [0, 0, 0, 0]  # the trace's demand: arrived and not past arrival + duration
    trace_ends: list[tuple[float, int]] = []  # (arrival + duration, index in specs)
    placed_once: set[str] = set()
    shapes = _largest_shapes(trace.nodes)
    departures: list[tuple[float, int, str]] = []
    ends: dict[str, float] = {}  # pod name -> end time (inf: runs to the end)
    tickets: dict[str, int] = {}  # pod name -> the departure entry still valid for it
    left: dict[str, float] = {}  # pending pod -> duration still to run (0: to the end)
    pending: dict[str, Pod] = {}
    order: dict[str, int] = {}
    seq = 0
    specs = trace.pods
    i = 0
    freed = evicted = False  # since the last retry: did a pod leave, was a pod evicted?
    peak_used = 0
    min_priority = min((s.pod.priority for s in specs), default=0)
    digest = hashlib.sha256()

    def started(pod: Pod, duration: float, now: float, *, waited: bool) -> None:
        nonlocal seq
        digest.update(f"{pod.name}@{st.where[pod.name]}@{now};".encode())
        if pod.name in placed_once:
            report.placed_again += 1
        else:
            placed_once.add(pod.name)
            report.placed += 1
            report.placed_late += waited
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
        nonlocal spent, evicted
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
            evicted = True
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
            r = s.pod.requests
            if not any(all(x <= c for x, c in zip(r, cap, strict=True)) for cap in shapes):
                report.unfit += 1
                continue
            for k in range(4):
                wanted[k] += r[k]
            if s.duration > 0:  # specs arrive in order, so the arrival number is the index
                heapq.heappush(trace_ends, (s.arrival + s.duration, order[s.pod.name]))
        t0 = perf()
        if batch and len(batch_specs) > 1:
            decisions = sched.place_batch([s.pod for s in batch_specs], explain_refusals=False)
        else:
            decisions = [sched.place(s.pod, explain_refusals=False) for s in batch_specs]
        spent += perf() - t0
        for s, d in zip(batch_specs, decisions, strict=True):
            if d.placed or try_preempt(s.pod, now) or try_make_room(s.pod):
                started(s.pod, s.duration, now, waited=False)
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
                started(pod, left.pop(pod.name), now, waited=True)

    def sample(now: float) -> None:
        nonlocal peak_used
        while trace_ends and trace_ends[0][0] <= now:
            r = specs[heapq.heappop(trace_ends)[1]].pod.requests
            for k in range(4):
                wanted[k] -= r[k]
        used = st.used_nodes
        lb = bound(wanted)
        rb = bound(demand)
        waiting = len(pending)
        if lb > report.lower_bound_peak:
            report.lower_bound_peak = lb
            report.pending_at_peak = waiting
        report.running_bound_peak = max(report.running_bound_peak, rb)
        report.pending_max = max(report.pending_max, waiting)
        cap_c, cap_m = st.used_cap_cpu, st.used_cap_mem
        cu = demand[0] / cap_c if cap_c else 0.0
        mu = demand[1] / cap_m if cap_m else 0.0
        if used > peak_used:
            peak_used = used
            report.cpu_util_at_peak, report.mem_util_at_peak = cu, mu
        if keep_samples:
            report.samples.append(Sample(now, used, lb, cu, mu, waiting, rb))

    while i < len(specs) or departures:
        next_arrival = specs[i].arrival if i < len(specs) else float("inf")
        now = min(next_arrival, departures[0][0] if departures else float("inf"))
        clock.set(max(now, clock.now()))
        freed = evicted = False
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
        # Room appears when pods leave, and evicted pods may fit where the preemptor did not
        # look; a retry that evicts again is followed by another (each eviction makes way
        # for strictly higher priority, so this ends).
        while (freed or evicted) and pending:
            freed = evicted = False
            retry(now)
        if j > i:
            i = j
            if i == len(specs):
                probes = list(pending.values()) or _typical(specs)
                report.fragmentation_cpu, report.fragmentation_mem = fragmentation(st, probes)
        sample(now)
        if i == len(specs) and not departures:
            break

    report.nodes_used_peak = peak_used
    report.pending = len(pending)
    reasons: Counter[str] = Counter()
    for pod in list(pending.values())[:EXPLAIN_AT_MOST]:
        reasons[summarize(explain(st, pod), len(st.nodes))] += 1
    report.pending_reasons = dict(reasons)
    bindings = report.placed + report.placed_again
    report.placements_per_s = bindings / spent if spent > 0 else 0.0
    report.decisions_digest = digest.hexdigest()[:16]
    return report


def _largest_shapes(nodes: Sequence[Node]) -> list[Resources]:
    """The node capacities not dominated by another: a pod fits some node iff it fits one."""
    caps = sorted({n.allocatable for n in nodes}, reverse=True)
    out: list[Resources] = []
    for c in caps:
        if not any(all(x <= y for x, y in zip(c, o, strict=True)) for o in out):
            out.append(c)
    return out


def _typical(specs: Sequence[PodSpec]) -> list[Pod]:
    """The median pod by cpu, as the probe for fragmentation when nothing is pending."""
    if not specs:
        return []
    by_size = sorted(specs, key=lambda s: (s.pod.requests.cpu_m, s.pod.requests.memory))
    return [by_size[len(by_size) // 2].pod]
