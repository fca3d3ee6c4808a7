"""Placement properties: requests never exceed allocatable, refusals always explained, the
indexed searches agree with a scan of every node, and batches pack what brute force can."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler import (
    BinPack,
    ClusterState,
    LeastAllocated,
    MostAllocated,
    Pod,
    Scheduler,
    Spread,
    Strategy,
    make_strategy,
    placement,
)
from scheduler.filters import compile_checks, first_refusal
from scheduler.index import EMPTY, NOT_INDEXED, SCALE
from tests.unit.scheduler.helpers import node, pod

STRATEGY_NAMES = ["binpack", "spread", "least-allocated", "most-allocated"]


def check_invariants(state: ClusterState) -> None:
    """Requests within allocatable on every node, and the index filing every node right."""
    idx = state.index
    for n, cap in enumerate(state.cap):
        used = [0, 0, 0, 0]
        for p in state.pods_on[n].values():
            for d in range(4):
                used[d] += p.requests[d]
        assert all(u <= c for u, c in zip(used, cap, strict=True)), (n, used, cap)
        assert state.free(n) == cap.minus(type(cap)(*used))
        if state.nodes[n].cordoned:
            assert idx.where[n] == NOT_INDEXED
            continue
        if state.free_cpu[n] == cap.cpu_m and state.free_mem[n] == cap.memory:
            assert idx.where[n] == EMPTY
            continue
        i = idx.level_of[state.free_cpu[n] * SCALE // cap.cpu_m] if cap.cpu_m else idx.levels
        j = idx.level_of[state.free_mem[n] * SCALE // cap.memory] if cap.memory else idx.levels
        assert idx.where[n] == i * idx.stride + j
        cls = idx.classes[idx.class_of[n]]
        assert cls.rowmask[i] >> j & 1 and cls.rows >> i & 1
    # The counts of large pods (those some shape cannot hold) and of roomy nodes.
    homed = {id(c): 0 for c in idx.classes}
    for n in range(len(state.cap)):
        large = [p for p in state.pods_on[n].values()
                 if idx.home(p.requests.cpu_m, p.requests.memory) is not None]
        assert idx.large_on[n] == len(large)
        for p in large:
            home = idx.home(p.requests.cpu_m, p.requests.memory)
            assert home is not None
            homed[id(home)] += 1
    for cls in idx.classes:
        assert cls.homed == homed[id(cls)]
        if cls.watch_cpu < 0:
            continue
        roomy = [n for n in cls.members if not state.nodes[n].cordoned
                 and not idx.large_on[n] and state.free_cpu[n] >= cls.watch_cpu
                 and state.free_mem[n] >= cls.watch_mem]
        assert cls.roomy == len(roomy)
        assert all(idx.is_roomy[n] == (n in roomy) for n in cls.members)


_shapes = st.sampled_from([(4000, 8192), (8000, 16384), (2000, 8192)])


@settings(max_examples=40, deadline=None)
@given(
    shapes=st.lists(_shapes, min_size=1, max_size=8),
    ops=st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 6000), st.booleans(),
                           st.integers(0, 10)), min_size=1, max_size=40),
    name=st.sampled_from(STRATEGY_NAMES),
    seed=st.integers(0, 3),
)
def test_requests_never_exceed_allocatable_and_refusals_name_every_node(
    shapes: list[tuple[int, int]], ops: list[tuple[int, int, bool, int]], name: str, seed: int,
) -> None:
    nodes = [node(f"n{i}", c, m, cordoned=(i == 5)) for i, (c, m) in enumerate(shapes)]
    s = Scheduler(nodes, strategy=make_strategy(name), seed=seed)
    live: list[str] = []
    for k, (cpu, mem, remove, prio) in enumerate(ops):
        if remove and live:
            s.remove(live.pop(k % len(live)))
        else:
            d = s.place(pod(f"p{k}", cpu, mem, priority=prio))
            if d.placed:
                live.append(f"p{k}")
            else:
                # Every node has its own reason, and the reason is true.
                assert set(d.refusals) == {n.name for n in nodes}
                for n_name, refusal in d.refusals.items():
                    assert refusal.reason
                    n = s.state.node_id(n_name)
                    assert first_refusal(s.state, d.pod, n) == refusal
        check_invariants(s.state)


def _scan_choice(strategy: Strategy, state: ClusterState, p: Pod) -> set[int]:
    """Every node a brute-force scan would accept as the strategy's best."""
    feasible = [n for n in range(len(state.nodes)) if first_refusal(state, p, n) is None]
    if not feasible:
        return set()
    if isinstance(strategy, BinPack):
        running = [n for n in feasible if state.pods_on[n]] or []
        if running:
            best = max(strategy.score(state, n, p) for n in running)
            return {n for n in running if strategy.score(state, n, p) >= best - 1e-9}
        return set(feasible)  # opening a node: any empty node is a valid choice here
    best = max(strategy.score(state, n, p) for n in feasible)
    return {n for n in feasible if strategy.score(state, n, p) >= best - 1e-9}


@settings(max_examples=40, deadline=None)
@given(
    shapes=st.lists(_shapes, min_size=1, max_size=10),
    sizes=st.lists(st.tuples(st.integers(1, 3000), st.integers(1, 6000)), min_size=1,
                   max_size=40),
    name=st.sampled_from(STRATEGY_NAMES),
)
def test_indexed_search_matches_a_full_scan(
    shapes: list[tuple[int, int]], sizes: list[tuple[int, int]], name: str,
) -> None:
    state = ClusterState([node(f"n{i}", c, m) for i, (c, m) in enumerate(shapes)])
    # Binpack's default also keeps roomy big nodes for big pods, which a plain best-fit
    # scan does not; that rule has its own tests (test_strategies.py).
    strategy = BinPack(keep_big="never") if name == "binpack" else make_strategy(name)
    for k, (cpu, mem) in enumerate(sizes):
        p = pod(f"p{k}", cpu, mem)
        want = _scan_choice(strategy, state, p)
        got = strategy.select(state, p, compile_checks(state, p))
        if not want:
            assert got is None
            continue
        assert got in want, (name, got, want)
        state.bind(p, got)


def test_binpack_prefers_the_tightest_running_node_and_spread_the_emptiest() -> None:
    nodes = [node("a"), node("b"), node("c")]
    s = Scheduler(nodes, strategy=BinPack())
    s.bind(pod("x", 3000, 6000), "a")
    s.bind(pod("y", 1000, 2000), "b")
    assert s.place(pod("p", 500, 1000)).node == "a"
    sp = Scheduler(nodes, strategy=Spread())
    sp.bind(pod("x", 3000, 6000), "a")
    sp.bind(pod("y", 1000, 2000), "b")
    assert sp.place(pod("p", 500, 1000)).node == "c"


def test_kubernetes_scores_are_integers_and_ties_random_but_seeded() -> None:
    nodes = [node(f"n{i}") for i in range(20)]
    picks = set()
    for seed in range(5):
        s = Scheduler(nodes, strategy=LeastAllocated(), seed=seed)
        picks.add(s.place(pod("p")).node)
        again = Scheduler(nodes, strategy=LeastAllocated(), seed=seed)
        assert again.place(pod("p")).node == s.state.nodes[s.state.pod_node("p")].name
    assert len(picks) > 1  # ties broken at random...
    state = ClusterState(nodes)
    assert MostAllocated().score(state, 0, pod("p", 1000, 4096)) == 37.0  # (25 + 50) // 2


def _brute_force(caps: list[tuple[int, int]], reqs: list[tuple[int, int]]) -> bool:
    free = [list(c) for c in caps]
    order = sorted(range(len(reqs)), key=lambda k: -max(reqs[k]))

    def go(i: int) -> bool:
        if i == len(order):
            return True
        c, m = reqs[order[i]]
        seen = set()
        for f in free:
            if f[0] >= c and f[1] >= m and tuple(f) not in seen:
                seen.add(tuple(f))
                f[0] -= c
                f[1] -= m
                if go(i + 1):
                    return True
                f[0] += c
                f[1] += m
        return False

    return go(0)


@pytest.mark.parametrize("exhaustive", [True, False])
def test_batch_finds_a_packing_when_brute_force_does(
    exhaustive: bool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not exhaustive:  # the largest-first orders alone must reach 95% too
        monkeypatch.setattr(placement, "EXACT_BATCH", 0)
    rng = random.Random(7)
    feasible = found = 0
    for case in range(400):
        caps = [(rng.choice([2000, 4000]), rng.choice([2048, 4096]))
                for _ in range(rng.randint(2, 4))]
        reqs = [(rng.randrange(100, 2600, 100), rng.randrange(128, 2700, 128))
                for _ in range(rng.randint(3, 8))]
        if not _brute_force(caps, reqs):
            continue
        feasible += 1
        s = Scheduler([node(f"n{i}", c, m) for i, (c, m) in enumerate(caps)], limit_ratio=None)
        ds = s.place_batch([pod(f"c{case}-{k}", c, m) for k, (c, m) in enumerate(reqs)],
                           explain_refusals=False)
        found += all(d.placed for d in ds)
        check_invariants(s.state)
    assert feasible > 120
    assert found / feasible >= 0.95, (found, feasible)


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.tuples(st.integers(100, 3000), st.integers(64, 6000)), min_size=1,
                      max_size=30))
def test_batch_decisions_come_back_in_input_order_and_are_bound(
    sizes: list[tuple[int, int]],
) -> None:
    s = Scheduler([node(f"n{i}") for i in range(4)])
    pods = [pod(f"p{k}", c, m) for k, (c, m) in enumerate(sizes)]
    ds = s.place_batch(pods)
    assert [d.pod.name for d in ds] == [p.name for p in pods]
    for d in ds:
        if d.placed:
            assert s.state.nodes[s.state.pod_node(d.pod.name)].name == d.node
        else:
            assert len(d.refusals) == 4
    check_invariants(s.state)


@settings(max_examples=150, deadline=None)
@given(
    caps=st.lists(st.tuples(st.sampled_from([2000, 4000]), st.sampled_from([2048, 4096])),
                  min_size=2, max_size=4),
    reqs=st.lists(st.tuples(st.integers(1, 26).map(lambda k: k * 100),
                            st.integers(1, 21).map(lambda k: k * 128)),
                  min_size=3, max_size=6),
)
def test_batch_packs_whatever_brute_force_packs(
    caps: list[tuple[int, int]], reqs: list[tuple[int, int]],
) -> None:
    """The issue's >= 95% property, as hypothesis sees it: with at most 4 nodes and 6 pods
    the exhaustive fallback always finishes inside its step budget (4**6 < EXACT_STEPS), so
    every packing brute force finds, the batch finds too."""
    if not _brute_force(caps, reqs):
        return
    s = Scheduler([node(f"n{i}", c, m) for i, (c, m) in enumerate(caps)], limit_ratio=None)
    ds = s.place_batch([pod(f"p{k}", c, m) for k, (c, m) in enumerate(reqs)],
                       explain_refusals=False)
    assert all(d.placed for d in ds)
    check_invariants(s.state)
