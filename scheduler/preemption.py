"""Preemption: which lower-priority pods to evict so a pod that fits nowhere can run.

The rule, as the issue puts it: evict only pods of strictly lower priority, as few as
possible, and among equally few the lowest. Per node, the victims a pod cannot run beside
(same host port, anti-affinity either way) are mandatory; the rest is the smallest set that
frees enough of every resource, found exactly by trying sets of growing size (pruned by
"even the k largest cannot cover the shortfall"), with a greedy fallback when a node has so
many candidates that exact search would be slow. Nodes are ranked by (victim count, highest
victim priority, sum of victim priorities, node order).

Everything here is a pure plan; ``Scheduler.preempt`` applies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from scheduler.filters import node_selector, taints
from scheduler.model import Pod
from scheduler.state import ClusterState

__all__ = ["PreemptionPlan", "plan_preemption"]

#: Subsets tried per node before falling back to the greedy choice.
EXACT_BUDGET = 20_000


@dataclass(frozen=True, slots=True)
class PreemptionPlan:
    """Evict ``victims`` from ``node``, then bind ``pod`` there."""

    pod: Pod
    node: str
    victims: tuple[Pod, ...]

    def rank(self) -> tuple[int, int, int]:
        """Fewest victims first, then the lowest highest priority, then the lowest sum."""
        prios = [v.priority for v in self.victims]
        return (len(prios), max(prios, default=0), sum(prios))


def _conflicts(pod: Pod, other: Pod) -> bool:
    """Whether ``pod`` cannot share a node with ``other`` (ports or anti-affinity)."""
    if any(hp in other.host_ports for hp in pod.host_ports):
        return True
    for sel in pod.anti_affinity:
        if all(other.labels.get(k) == v for k, v in sel.items()):
            return True
    for sel in other.anti_affinity:
        if all(pod.labels.get(k) == v for k, v in sel.items()):
            return True
    return False


def _victims_on(state: ClusterState, pod: Pod, node: int) -> list[Pod] | None:
    """The best victim set on one node, or None when evicting cannot make room."""
    present = list(state.pods_on[node].values())
    mandatory: list[Pod] = []
    optional: list[Pod] = []
    for other in present:
        conflict = _conflicts(pod, other)
        if other.priority >= pod.priority:
            if conflict:
                return None
            continue
        (mandatory if conflict else optional).append(other)
    # Shortfall per dimension after the mandatory evictions; limits count against the cap.
    req = pod.requests
    lim = pod.effective_limits()
    need = [
        req.cpu_m - state.free_cpu[node],
        req.memory - state.free_mem[node],
        req.pids - state.free_pids[node],
        req.ephemeral - state.free_eph[node],
    ]
    if state.limit_ratio is not None:
        need.append(state.lim_cpu[node] + lim.cpu_m - state.max_lim_cpu[node])
        need.append(state.lim_mem[node] + lim.memory - state.max_lim_mem[node])

    def gives(p: Pod) -> list[int]:
        r = p.requests
        g = [r.cpu_m, r.memory, r.pids, r.ephemeral]
        if state.limit_ratio is not None:
            e = p.effective_limits()
            g += [e.cpu_m, e.memory]
        return g

    for v in mandatory:
        need = [a - b for a, b in zip(need, gives(v), strict=True)]
    if all(x <= 0 for x in need):
        return mandatory
    if not optional:
        return None
    gains = [gives(p) for p in optional]
    if any(sum(g[d] for g in gains) < need[d] for d in range(len(need))):
        return None
    # Lowest priority first, so the first feasible set of a size is also among the lowest.
    order = sorted(range(len(optional)), key=lambda k: (optional[k].priority, -sum(gains[k])))
    dims = [d for d in range(len(need)) if need[d] > 0]
    tops = {d: sorted((g[d] for g in gains), reverse=True) for d in dims}
    tried = 0
    for size in range(1, len(optional) + 1):
        if any(sum(tops[d][:size]) < need[d] for d in dims):
            continue
        best: tuple[int, int] | None = None
        best_set: tuple[int, ...] = ()
        for combo in combinations(order, size):
            tried += 1
            if tried > EXACT_BUDGET:
                return mandatory + _greedy(optional, gains, need, dims)
            if all(sum(gains[k][d] for k in combo) >= need[d] for d in dims):
                key = (max(optional[k].priority for k in combo),
                       sum(optional[k].priority for k in combo))
                if best is None or key < best:
                    best, best_set = key, combo
        if best is not None:
            return mandatory + [optional[k] for k in sorted(best_set)]
    return None


def _greedy(optional: list[Pod], gains: list[list[int]], need: list[int],
            dims: list[int]) -> list[Pod]:
    """Evict lowest priority (largest first) until it fits, then spare whoever is not needed."""
    order = sorted(range(len(optional)), key=lambda k: (optional[k].priority, -sum(gains[k])))
    chosen: list[int] = []
    left = list(need)
    for k in order:
        if all(left[d] <= 0 for d in dims):
            break
        chosen.append(k)
        left = [a - b for a, b in zip(left, gains[k], strict=True)]
    for k in sorted(chosen, key=lambda k: -optional[k].priority):
        back = [a + b for a, b in zip(left, gains[k], strict=True)]
        if all(back[d] <= 0 for d in dims):
            chosen.remove(k)
            left = back
    return [optional[k] for k in sorted(chosen)]


def plan_preemption(state: ClusterState, pod: Pod,
                    nodes: Sequence[int] | None = None) -> PreemptionPlan | None:
    """The best eviction plan that lets ``pod`` run, or None when no eviction would."""
    best: PreemptionPlan | None = None
    best_key: tuple[int, int, int, int] | None = None
    for n in nodes if nodes is not None else range(len(state.nodes)):
        node = state.nodes[n]
        if node.cordoned or node_selector(state, pod, n) or taints(state, pod, n):
            continue
        if pod.requests.cpu_m > node.allocatable.cpu_m or pod.requests.memory > (
            node.allocatable.memory
        ):
            continue
        if not any(p.priority < pod.priority for p in state.pods_on[n].values()):
            continue
        victims = _victims_on(state, pod, n)
        if victims is None or not victims:
            # No victims needed means the pod simply fits: not a preemption case.
            continue
        plan = PreemptionPlan(pod, node.name, tuple(victims))
        key = (*plan.rank(), n)
        if best_key is None or key < best_key:
            best, best_key = plan, key
    return best
