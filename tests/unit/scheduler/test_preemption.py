"""Preemption evicts only lower-priority pods, and the fewest (then lowest) possible."""

from __future__ import annotations

import itertools
import random

from scheduler import Scheduler, plan_preemption
from scheduler.model import Pod
from scheduler.state import ClusterState
from tests.unit.scheduler.helpers import node, pod


def test_evicts_the_single_pod_that_frees_enough() -> None:
    s = Scheduler([node("a", cpu=4000, mem_mib=4096)])
    for name, cpu, prio in (("small1", 500, 1), ("small2", 500, 1), ("big", 2500, 2),
                            ("mid", 500, 3)):
        s.bind(pod(name, cpu, 256, priority=prio), "a")
    d = s.preempt(pod("urgent", 2000, 512, priority=10))
    assert d.node == "a"
    assert d.victims == ("big",)  # one victim beats two smaller, lower ones
    assert "big" not in s.state.where


def test_never_touches_equal_or_higher_priority() -> None:
    s = Scheduler([node("a", cpu=1000)])
    s.bind(pod("same", 900, priority=5), "a")
    assert s.preemption_plan(pod("p", 500, priority=5)) is None
    d = s.preempt(pod("p", 500, priority=5))
    assert not d.placed and d.refusals
    s2 = Scheduler([node("a", cpu=1000)])
    s2.bind(pod("higher", 900, priority=9), "a")
    assert s2.preemption_plan(pod("p", 500, priority=5)) is None


def test_prefers_lowest_priority_among_equally_few() -> None:
    s = Scheduler([node("a", cpu=2000), node("b", cpu=2000)])
    s.bind(pod("a-low", 2000, priority=1), "a")
    s.bind(pod("b-lower", 2000, priority=0), "b")
    plan = s.preemption_plan(pod("p", 1000, priority=5))
    assert plan is not None and plan.node == "b"
    assert [v.name for v in plan.victims] == ["b-lower"]


def test_conflicting_pods_must_go_and_higher_conflicts_block() -> None:
    s = Scheduler([node("a"), node("b")])
    s.bind(pod("port-low", 100, ports=(80,), priority=0), "a")
    s.bind(pod("port-high", 100, ports=(80,), priority=9), "b")
    plan = s.preemption_plan(pod("p", 100, ports=(80,), priority=5))
    assert plan is not None and plan.node == "a"
    assert [v.name for v in plan.victims] == ["port-low"]


def _minimal_by_brute_force(state: ClusterState, p: Pod) -> tuple[int, int] | None:
    """(fewest victims, lowest highest priority among such sets) over every node."""
    best: tuple[int, int] | None = None
    for n in range(len(state.nodes)):
        lower = [q for q in state.pods_on[n].values() if q.priority < p.priority]
        for k in range(1, len(lower) + 1):
            hits = []
            for combo in itertools.combinations(lower, k):
                free_c = state.free_cpu[n] + sum(q.requests.cpu_m for q in combo)
                free_m = state.free_mem[n] + sum(q.requests.memory for q in combo)
                if free_c >= p.requests.cpu_m and free_m >= p.requests.memory:
                    hits.append(max(q.priority for q in combo))
            if hits:
                cand = (k, min(hits))
                best = cand if best is None or cand < best else best
                break
    return best


def test_fewest_victims_matches_brute_force_on_random_cases() -> None:
    rng = random.Random(3)
    checked = 0
    for case in range(150):
        nodes = [node(f"n{i}", cpu=4000, mem_mib=4096) for i in range(rng.randint(1, 3))]
        s = Scheduler(nodes, limit_ratio=None)
        k = 0
        for n in nodes:
            free_c, free_m = 4000, 4096
            while True:
                c, m = rng.randrange(200, 2000, 100), rng.randrange(128, 2048, 128)
                if c > free_c or m > free_m:
                    break
                s.bind(pod(f"c{case}-{k}", c, m, priority=rng.randint(0, 4)), n.name)
                free_c, free_m, k = free_c - c, free_m - m, k + 1
        p = pod(f"c{case}-new", rng.randrange(500, 4000, 100), rng.randrange(256, 4096, 128),
                priority=rng.randint(1, 5))
        if s.place(p, explain_refusals=False).placed:
            continue
        want = _minimal_by_brute_force(s.state, p)
        plan = plan_preemption(s.state, p)
        if want is None:
            assert plan is None
            continue
        checked += 1
        assert plan is not None
        assert all(v.priority < p.priority for v in plan.victims)
        assert (len(plan.victims), max(v.priority for v in plan.victims)) == want
        s.apply_preemption(plan)
        assert s.state.pod_node(p.name) == s.state.node_id(plan.node)
    assert checked > 30
