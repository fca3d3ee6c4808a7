"""The scheduler: filters -> scores -> choice, for one pod or a batch, plus preemption.

``Scheduler`` is the one object callers hold. It owns a ``ClusterState``, a ``Strategy``
and a clock, and returns ``Decision`` values: where a pod went, or why every node refused
it. Planning pieces (preemption, rebalancing) return plans; ``apply_*`` executes them, so a
caller can inspect or veto a plan first (Nomad's plan/apply split).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import NamedTuple

from scheduler.clock import Clock, MonotonicClock
from scheduler.errors import SchedulerError
from scheduler.filters import Refusal, compile_checks, explain, first_refusal, summarize
from scheduler.model import Node, Pod
from scheduler.preemption import PreemptionPlan, plan_preemption
from scheduler.rebalance import RebalancePlan, plan_make_room, plan_rebalance
from scheduler.state import DEFAULT_LIMIT_RATIO, ClusterState
from scheduler.strategies import BinPack, Strategy

__all__ = ["Decision", "Scheduler", "batch_order"]

#: Batches at most this large get an exhaustive search when greedy orders leave pods out.
EXACT_BATCH = 8
#: Placements an exhaustive batch search may try before giving up.
EXACT_STEPS = 50_000


_NO_REFUSALS: Mapping[str, Refusal] = MappingProxyType({})


class Decision(NamedTuple):
    """The outcome for one pod: its node, or None with every node's refusal.

    A tuple rather than a dataclass: one is made per placement, on the hot path.
    """

    pod: Pod
    node: str | None
    at: float
    refusals: Mapping[str, Refusal] = _NO_REFUSALS
    victims: tuple[str, ...] = ()

    @property
    def placed(self) -> bool:
        """True when the pod was bound to a node."""
        return self.node is not None


def _dominant(pod: Pod, big_cpu: int, big_mem: int) -> float:
    r = pod.requests
    return max(r.cpu_m / big_cpu, r.memory / big_mem)


def batch_order(pods: Iterable[Pod], nodes: Sequence[Node], key: str = "dominant") -> list[Pod]:
    """Pods largest first, the order that lets big pods claim room before small ones scatter.

    ``key`` is ``dominant`` (largest share of the biggest node in any resource), ``sum``,
    ``cpu`` or ``memory``. Higher priority always goes first; names break ties so the order
    is deterministic.
    """
    big_cpu = max((n.allocatable.cpu_m for n in nodes), default=1) or 1
    big_mem = max((n.allocatable.memory for n in nodes), default=1) or 1

    def size(p: Pod) -> float:
        r = p.requests
        if key == "dominant":
            return _dominant(p, big_cpu, big_mem)
        if key == "sum":
            return r.cpu_m / big_cpu + r.memory / big_mem
        if key == "cpu":
            return r.cpu_m / big_cpu + 1e-9 * r.memory / big_mem
        if key == "memory":
            return r.memory / big_mem + 1e-9 * r.cpu_m / big_cpu
        raise SchedulerError(f"batch order: unknown key {key!r}")

    return sorted(pods, key=lambda p: (-p.priority, -size(p), p.name))


class Scheduler:
    """Places pods on nodes by requests, with a strategy, a seed and an injectable clock.

    ``limit_ratio`` is how far declared limits may overcommit a node (None: unbounded).
    The same nodes, pods, strategy and seed always give the same placements.
    """

    def __init__(
        self,
        nodes: Sequence[Node],
        *,
        strategy: Strategy | None = None,
        limit_ratio: float | None = DEFAULT_LIMIT_RATIO,
        seed: int = 0,
        clock: Clock | None = None,
        grid_sublevels: int = 8,
    ) -> None:
        self.state = ClusterState(nodes, limit_ratio=limit_ratio, grid_sublevels=grid_sublevels)
        self.strategy = strategy if strategy is not None else BinPack()
        self.strategy.reset(seed)
        self.seed = seed
        self.clock: Clock = clock if clock is not None else MonotonicClock()

    # -- one pod -----------------------------------------------------------------------------

    def choose(self, pod: Pod) -> int | None:
        """The node number the strategy picks for ``pod`` (nothing is bound)."""
        return self.strategy.select(self.state, pod, compile_checks(self.state, pod))

    def place(self, pod: Pod, *, explain_refusals: bool = True) -> Decision:
        """Bind ``pod`` to the best feasible node, or say why none is.

        ``explain_refusals=False`` skips asking every node why it refused, which costs a
        full scan; simulators that retry pending pods often explain only at the end.
        """
        st = self.state
        n = self.strategy.select(st, pod, compile_checks(st, pod))
        if n is None:
            refusals = explain(st, pod) if explain_refusals else {}
            return Decision(pod, None, self.clock.now(), refusals)
        st.bind(pod, n)
        return Decision(pod, st.nodes[n].name, self.clock.now())

    def bind(self, pod: Pod, node: str) -> None:
        """Bind ``pod`` to a named node after checking every filter (for restores and tests)."""
        n = self.state.node_id(node)
        refusal = first_refusal(self.state, pod, n)
        if refusal is not None:
            raise SchedulerError(f"pod {pod.name}: node {node} refuses it: {refusal}")
        self.state.bind(pod, n)

    def remove(self, pod_name: str) -> Pod:
        """Unbind a pod (it finished or was deleted) and return it."""
        pod, _ = self.state.unbind(pod_name)
        return pod

    def explain(self, pod: Pod) -> dict[str, Refusal]:
        """Node name -> reason, for every node that would refuse ``pod`` now."""
        return explain(self.state, pod)

    def why_pending(self, pod: Pod) -> str:
        """kube-scheduler's one-line summary of why ``pod`` fits nowhere."""
        return summarize(explain(self.state, pod), len(self.state.nodes))

    def cordon(self, node: str, cordoned: bool = True) -> None:
        """Mark a node (un)schedulable; its running pods stay where they are."""
        st = self.state
        n = st.node_id(node)
        st.nodes[n] = replace(st.nodes[n], cordoned=cordoned)
        taints_ok = not any(t.effect != "PreferNoSchedule" for t in st.nodes[n].taints)
        st.plain_ok[n] = not cordoned and taints_ok
        st.all_plain = all(st.plain_ok)
        if cordoned:
            st.index.drop(n)
        else:
            st.index.moved(n)

    # -- many pods at once -------------------------------------------------------------------

    def place_batch(self, pods: Sequence[Pod], *, explain_refusals: bool = True,
                    ) -> list[Decision]:
        """Place pods that arrived together, largest first.

        If the first order leaves pods out, other size orders are tried (each undone before
        the next) and, for small batches, an exhaustive search; the attempt that places the
        most pods, then uses the fewest nodes, is kept. Decisions come back in input order.
        """
        st = self.state
        nodes = st.nodes
        best: list[tuple[Pod, int | None]] | None = None
        best_key: tuple[int, int] | None = None
        for key in ("dominant", "sum", "cpu", "memory"):
            attempt = self._attempt(batch_order(pods, nodes, key))
            missing = sum(1 for _, n in attempt if n is None)
            if missing == 0 and best is None:
                return self._decisions(pods, attempt, explain_refusals)  # the usual case
            score = (missing, st.used_nodes)
            if best_key is None or score < best_key:
                best, best_key = attempt, score
            self._undo(attempt)
            if missing == 0:
                break
        assert best is not None and best_key is not None
        if best_key[0] and len(pods) <= EXACT_BATCH:
            exact = self._exhaustive(list(pods))
            if exact is not None:
                best = exact
        for pod, n in best:
            if n is not None:
                st.bind(pod, n)
        return self._decisions(pods, best, explain_refusals)

    def _decisions(self, pods: Sequence[Pod], result: Sequence[tuple[Pod, int | None]],
                   explain_refusals: bool) -> list[Decision]:
        st = self.state
        nodes = st.nodes
        where = {pod.name: n for pod, n in result}
        now = self.clock.now()
        out: list[Decision] = []
        for pod in pods:
            n = where[pod.name]
            if n is None:
                refusals = explain(st, pod) if explain_refusals else {}
                out.append(Decision(pod, None, now, refusals))
            else:
                out.append(Decision(pod, nodes[n].name, now))
        return out

    def _attempt(self, ordered: Sequence[Pod]) -> list[tuple[Pod, int | None]]:
        st = self.state
        out: list[tuple[Pod, int | None]] = []
        for pod in ordered:
            n = self.strategy.select(st, pod, compile_checks(st, pod))
            if n is not None:
                st.bind(pod, n)
            out.append((pod, n))
        return out

    def _undo(self, attempt: Sequence[tuple[Pod, int | None]]) -> None:
        for pod, n in reversed(attempt):
            if n is not None:
                self.state.unbind(pod.name)

    def _exhaustive(self, pods: list[Pod]) -> list[tuple[Pod, int | None]] | None:
        """Depth-first search for a placement of every pod; None if none found in budget.

        Small batches only: it tries the pods largest first and, at each step, each distinct
        feasible node (empty nodes of one shape are interchangeable, so one stands for all).
        """
        st = self.state
        order = batch_order(pods, st.nodes)
        steps = 0
        chosen: list[int] = []

        def candidates(pod: Pod) -> list[int]:
            seen_empty: set[tuple[int, int]] = set()
            out = []
            for n in range(len(st.nodes)):
                if first_refusal(st, pod, n) is not None:
                    continue
                if not st.pods_on[n]:
                    shape = (st.cap[n].cpu_m, st.cap[n].memory)
                    if shape in seen_empty:
                        continue
                    seen_empty.add(shape)
                out.append(n)
            return out

        def dfs(k: int) -> bool:
            nonlocal steps
            if k == len(order):
                return True
            for n in candidates(order[k]):
                steps += 1
                if steps > EXACT_STEPS:
                    return False
                st.bind(order[k], n)
                chosen.append(n)
                if dfs(k + 1):
                    return True
                chosen.pop()
                st.unbind(order[k].name)
            return False

        found = dfs(0)
        result: list[tuple[Pod, int | None]] = list(zip(order, chosen, strict=False))
        for p, _ in reversed(result):
            st.unbind(p.name)  # the caller binds the winner
        return result if found else None

    # -- plans -------------------------------------------------------------------------------

    def preemption_plan(self, pod: Pod) -> PreemptionPlan | None:
        """Who would be evicted, and where ``pod`` would go, if it preempted now."""
        return plan_preemption(self.state, pod)

    def preempt(self, pod: Pod) -> Decision:
        """Place ``pod`` by evicting lower-priority pods, if that can make room.

        The evicted pods are unbound and named in ``Decision.victims``; the caller decides
        whether to queue them again (a controller would recreate them).
        """
        plan = self.preemption_plan(pod)
        if plan is None:
            return Decision(pod, None, self.clock.now(), explain(self.state, pod))
        return self.apply_preemption(plan)

    def apply_preemption(self, plan: PreemptionPlan) -> Decision:
        """Evict the plan's victims and bind its pod."""
        for v in plan.victims:
            self.state.unbind(v.name)
        self.bind(plan.pod, plan.node)
        return Decision(plan.pod, plan.node, self.clock.now(),
                        victims=tuple(v.name for v in plan.victims))

    def rebalance_plan(self, *, max_moves: int | None = None,
                       max_load: float = 0.5) -> RebalancePlan:
        """Moves that would free whole nodes (nothing changes until applied)."""
        packer = self.strategy if isinstance(self.strategy, BinPack) else None
        return plan_rebalance(self.state, max_moves=max_moves, max_load=max_load,
                              packer=packer)

    def make_room_plan(self, pod: Pod) -> RebalancePlan | None:
        """Moves (no evictions) that would clear one node for ``pod``; nothing changes."""
        packer = self.strategy if isinstance(self.strategy, BinPack) else BinPack()
        return plan_make_room(self.state, pod, packer)

    def make_room(self, pod: Pod) -> Decision:
        """Place ``pod`` by moving other pods aside, if a plan exists; moved pods keep running."""
        plan = self.make_room_plan(pod)
        if plan is None:
            return Decision(pod, None, self.clock.now(), explain(self.state, pod))
        self.apply_rebalance(plan)
        self.bind(pod, plan.freed[0])
        return Decision(pod, plan.freed[0], self.clock.now())

    def apply_rebalance(self, plan: RebalancePlan) -> None:
        """Carry out a rebalance plan's moves in order."""
        st = self.state
        for move in plan.moves:
            pod, _ = st.unbind(move.pod)
            st.bind(pod, st.node_id(move.target))

