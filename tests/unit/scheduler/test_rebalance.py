"""Rebalancing plans free whole nodes, move pods only onto nodes that stay in use."""

from __future__ import annotations

from scheduler import Scheduler, Spread
from scheduler.filters import first_refusal
from tests.unit.scheduler.helpers import node, pod


def test_plan_frees_whole_nodes_and_applies_cleanly() -> None:
    nodes = [node(f"n{i}", cpu=4000, mem_mib=8192) for i in range(6)]
    s = Scheduler(nodes, strategy=Spread())  # spread: every node a little used
    for k in range(12):
        s.place(pod(f"p{k}", 300, 512))
    assert s.state.used_nodes == 6
    before = dict(s.state.assignment())
    plan = s.rebalance_plan()
    assert s.state.assignment() == before  # a plan changes nothing
    assert plan.freed
    moved_from = {m.source for m in plan.moves}
    assert set(plan.freed) <= moved_from
    s.apply_rebalance(plan)
    assert s.state.used_nodes == 6 - len(plan.freed)
    for name in plan.freed:
        assert not s.state.pods_on[s.state.node_id(name)]
    assert len(s.state.where) == 12  # nobody lost
    assert s.state.used_nodes == 1  # 12 x 300m fits one 4-core node


def test_a_node_is_drained_entirely_or_not_at_all() -> None:
    s = Scheduler([node("a", cpu=1000), node("b", cpu=1000)], strategy=Spread())
    s.place(pod("x", 600))
    s.place(pod("y", 600))
    plan = s.rebalance_plan(max_load=1.0)
    assert plan.moves == () and plan.freed == ()


def test_moves_respect_filters() -> None:
    s = Scheduler([node("a"), node("b"), node("c")], strategy=Spread())
    s.place(pod("w1", labels={"app": "w"}, anti=({"app": "w"},)))
    s.place(pod("w2", labels={"app": "w"}, anti=({"app": "w"},)))
    s.place(pod("other", ports=(80,)))
    plan = s.rebalance_plan()
    s.apply_rebalance(plan)
    for p, n in list(s.state.pods()):
        s.state.unbind(p.name)
        assert first_refusal(s.state, p, n) is None
        s.state.bind(p, n)
    assert s.state.pod_node("w1") != s.state.pod_node("w2")
