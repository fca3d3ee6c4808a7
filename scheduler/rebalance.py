"""Rebalancing: a plan of pod moves that empties whole nodes.

After departures a cluster is left with many half-empty nodes. The plan drains the least
used nodes first: a node is drained only if *every* one of its pods finds room on another
node that stays in use (best fit, all filters), so each accepted step frees a whole machine
and no step half-empties one for nothing. Works on a copy; the live state is untouched until
``Scheduler.apply_rebalance``.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.filters import compile_checks, first_refusal, node_selector, taints
from scheduler.model import Pod
from scheduler.state import ClusterState
from scheduler.strategies import BinPack

__all__ = ["Move", "RebalancePlan", "plan_make_room", "plan_rebalance"]


@dataclass(frozen=True, slots=True)
class Move:
    """Move ``pod`` from node ``source`` to node ``target``."""

    pod: str
    source: str
    target: str


@dataclass(frozen=True, slots=True)
class RebalancePlan:
    """Moves in order, and the nodes they leave empty."""

    moves: tuple[Move, ...]
    freed: tuple[str, ...]


def _load(state: ClusterState, n: int) -> float:
    cap = state.cap[n]
    uc = 1 - state.free_cpu[n] / cap.cpu_m if cap.cpu_m else 0.0
    um = 1 - state.free_mem[n] / cap.memory if cap.memory else 0.0
    return max(uc, um)


def plan_rebalance(
    state: ClusterState,
    *,
    max_moves: int | None = None,
    max_load: float = 0.5,
    packer: BinPack | None = None,
) -> RebalancePlan:
    """Moves that free whole nodes, least loaded first.

    Only nodes whose dominant load is at most ``max_load`` are tried: draining a busy node
    costs many moves and rarely succeeds. ``max_moves`` caps the disruption.
    """
    work = state.copy()
    packer = packer or BinPack()
    candidates = sorted(
        (n for n in range(len(work.nodes)) if work.pods_on[n] and _load(work, n) <= max_load),
        key=lambda n: (len(work.pods_on[n]), _load(work, n), n),
    )
    moves: list[Move] = []
    freed: list[str] = []
    names = [node.name for node in work.nodes]
    for n in candidates:
        if not work.pods_on[n]:
            continue
        cap = work.cap[n]
        pods = sorted(work.pods_on[n].values(), key=lambda p: (
            -(p.requests.cpu_m / (cap.cpu_m or 1) + p.requests.memory / (cap.memory or 1)),
            p.name))
        if max_moves is not None and len(moves) + len(pods) > max_moves:
            continue
        for p in pods:
            work.unbind(p.name)
        work.index.drop(n)  # not a target while it drains, nor after
        placed: list[tuple[Pod, int]] = []
        for p in pods:
            target = packer.best_running(work, p, compile_checks(work, p))
            if target is None:
                break
            work.bind(p, target)
            placed.append((p, target))
        if len(placed) == len(pods):
            moves.extend(Move(p.name, names[n], names[t]) for p, t in placed)
            freed.append(names[n])
            continue
        for p, _ in placed:  # undo: the node stays as it was
            work.unbind(p.name)
        work.index.moved(n)
        for p in pods:
            work.bind(p, n)
    return RebalancePlan(tuple(moves), tuple(freed))


#: Nodes a make-room search tries before giving up.
MAKE_ROOM_TRIES = 16


def plan_make_room(state: ClusterState, pod: Pod,
                   packer: BinPack | None = None) -> RebalancePlan | None:
    """Moves that clear room for ``pod`` on one node, or None when no small set of moves can.

    For a pod that fits no node as things stand (and may not preempt anyone): pick a node
    that could hold it if some of its pods went elsewhere, move the fewest (largest first)
    to other nodes, and report the moves; the node the pod should then go to is
    ``plan.freed[0]``. Priorities are not involved: every moved pod keeps running. The
    search works on ``state`` and undoes itself, so ``state`` is unchanged on return.
    """
    packer = packer or BinPack()
    req = pod.requests
    names = [node.name for node in state.nodes]
    candidates = []
    for n, node in enumerate(state.nodes):
        if not state.pods_on[n] or node.cordoned:
            continue
        cap = state.cap[n]
        if not req.fits_in(cap) or node_selector(state, pod, n) or taints(state, pod, n):
            continue  # eviction cannot fix these
        short_c = req.cpu_m - state.free_cpu[n]
        short_m = req.memory - state.free_mem[n]
        candidates.append((max(short_c / (cap.cpu_m or 1), short_m / (cap.memory or 1)),
                           len(state.pods_on[n]), n))
    candidates.sort()
    for _, _, n in candidates[:MAKE_ROOM_TRIES]:
        plan = _clear(state, pod, n, packer, names)
        if plan is not None:
            return plan
    return None


def _clear(state: ClusterState, pod: Pod, n: int, packer: BinPack,
           names: list[str]) -> RebalancePlan | None:
    """Try to clear node ``n`` for ``pod``; always leaves ``state`` as it found it."""
    cap = state.cap[n]
    order = sorted(state.pods_on[n].values(), key=lambda p: (
        -(p.requests.cpu_m / (cap.cpu_m or 1) + p.requests.memory / (cap.memory or 1)),
        p.name))
    evicted: list[Pod] = []
    for p in order:
        if first_refusal(state, pod, n) is None:
            break
        state.unbind(p.name)
        evicted.append(p)
    ok = first_refusal(state, pod, n) is None
    moved: list[tuple[Pod, int]] = []
    if ok:
        state.index.drop(n)  # the evicted pods must land elsewhere
        for p in evicted:
            target = packer.select(state, p, compile_checks(state, p))
            if target is None:
                ok = False
                break
            state.bind(p, target)
            moved.append((p, target))
        for p, _ in moved:
            state.unbind(p.name)
        state.index.moved(n)
    for p in evicted:
        state.bind(p, n)
    if not ok:
        return None
    return RebalancePlan(tuple(Move(p.name, names[n], names[t]) for p, t in moved), (names[n],))
