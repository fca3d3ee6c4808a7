"""Filters: each refusal names its reason, and the fast path agrees with the filters."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler import (
    ClusterState,
    Scheduler,
    Taint,
    TaintEffect,
    Toleration,
    explain,
    summarize,
)
from scheduler.filters import compile_checks, first_refusal
from tests.unit.scheduler.helpers import node, pod


def test_node_selector_must_match_every_pair() -> None:
    s = Scheduler([node("a", labels={"zone": "x", "disk": "ssd"}), node("b", labels={"zone": "y"})])
    d = s.place(pod("p", selector={"zone": "y"}))
    assert d.node == "b"
    d = s.place(pod("q", selector={"zone": "x", "disk": "hdd"}))
    assert not d.placed
    assert d.refusals["a"].filter == "node_selector"
    assert "disk=ssd does not match selector disk=hdd" in d.refusals["a"].reason
    assert "zone=y does not match selector zone=x" in d.refusals["b"].reason


def test_taints_need_tolerations_but_prefer_no_schedule_does_not() -> None:
    tainted = node("gpu", taints=(Taint("gpu", "true", TaintEffect.NO_SCHEDULE),))
    soft = node("soft", taints=(Taint("spot", "", TaintEffect.PREFER_NO_SCHEDULE),))
    s = Scheduler([tainted])
    d = s.place(pod("plain"))
    assert not d.placed and d.refusals["gpu"].filter == "taints"
    assert "gpu=true:NoSchedule" in d.refusals["gpu"].reason
    assert s.place(pod("ok", tolerations=(Toleration("gpu", "Equal", "true"),))).node == "gpu"
    assert Scheduler([soft]).place(pod("p")).node == "soft"
    noexec = node("ne", taints=(Taint("k", "v", TaintEffect.NO_EXECUTE),))
    s2 = Scheduler([noexec])
    assert not s2.place(pod("p")).placed
    wrong = Toleration("k", "Exists", effect=TaintEffect.NO_SCHEDULE)
    assert not s2.place(pod("q", tolerations=(wrong,))).placed
    assert s2.place(pod("r", tolerations=(Toleration("k", "Exists"),))).node == "ne"


def test_anti_affinity_is_symmetric() -> None:
    s = Scheduler([node("a"), node("b")])
    assert s.place(pod("web-1", labels={"app": "web"})).placed
    d2 = s.place(pod("web-2", labels={"app": "web"}, anti=({"app": "web"},)))
    assert d2.placed and d2.node != s.state.nodes[s.state.pod_node("web-1")].name
    # A third replica refusing its peers has nowhere left to go.
    d3 = s.place(pod("web-3", labels={"app": "web"}, anti=({"app": "web"},)))
    assert not d3.placed
    assert {r.filter for r in d3.refusals.values()} == {"anti_affinity"}
    # And a pod without anti-affinity is kept away by the one already there (symmetric).
    s2 = Scheduler([node("a")])
    s2.place(pod("lonely", anti=({"app": "db"},)))
    d = s2.place(pod("db", labels={"app": "db"}))
    assert not d.placed
    assert "has anti-affinity app=db" in d.refusals["a"].reason


def test_host_ports_conflict_per_protocol() -> None:
    s = Scheduler([node("a")])
    assert s.place(pod("p1", ports=(80,))).placed
    d = s.place(pod("p2", ports=(80,)))
    assert not d.placed
    assert d.refusals["a"].reason == "host port 80/TCP is already in use"
    assert s.place(pod("p3", ports=(8080,))).placed
    s.remove("p1")
    assert s.place(pod("p4", ports=(80,))).placed


def test_cordoned_nodes_take_nothing_new() -> None:
    s = Scheduler([node("a", cordoned=True), node("b")])
    assert s.place(pod("p")).node == "b"
    s.cordon("b")
    d = s.place(pod("q"))
    assert not d.placed
    assert {r.filter for r in d.refusals.values()} == {"cordoned"}
    assert s.state.pod_node("p") == 1  # running pods stay
    s.cordon("a", False)
    assert s.place(pod("r")).node == "a"


def test_resources_and_limits_refusals() -> None:
    s = Scheduler([node("a", cpu=1000, mem_mib=1024)], limit_ratio=1.5)
    assert s.place(pod("big", 800, 512)).placed
    d = s.place(pod("more", 300, 100))
    assert d.refusals["a"].reason == "insufficient cpu (requested 300, free 200)"
    # Requests fit, but the limits would pass 1.5x allocatable memory.
    d = s.place(pod("burst", 100, 100, limit_mem_mib=1200))
    assert d.refusals["a"].filter == "limits"
    assert "memory past 1.5x" in d.refusals["a"].reason
    assert s.place(pod("fine", 100, 100, limit_mem_mib=900)).placed


def test_summary_reads_like_kube_scheduler() -> None:
    s = Scheduler([node("a", cpu=100), node("b", cpu=100), node("c", cordoned=True)])
    p = pod("p", cpu=500)
    line = summarize(explain(s.state, p), 3)
    assert line == "0/3 nodes are available: 2 insufficient cpu, 1 node(s) cordoned"
    assert s.why_pending(p) == line


_labels = st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(["a", "b"]),
                          max_size=2)


@settings(max_examples=60, deadline=None)
@given(
    caps=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 4096),
                            st.booleans(), st.booleans(), _labels), min_size=1, max_size=6),
    pods=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 2048), _labels,
                            st.booleans(), st.booleans(), st.booleans(),
                            st.sampled_from([0, 80, 443])), max_size=14),
)
def test_fast_checks_agree_with_the_filters(
    caps: list[tuple[int, int, bool, bool, dict[str, str]]],
    pods: list[tuple[int, int, dict[str, str], bool, bool, bool, int]],
) -> None:
    nodes = [
        node(f"n{i}", c, m, labels=lab, cordoned=cord,
             taints=(Taint("t", "x"),) if taint else ())
        for i, (c, m, cord, taint, lab) in enumerate(caps)
    ]
    state = ClusterState(nodes, limit_ratio=1.5)
    placed = 0
    for k, (c, m, lab, sel, tol, anti, port) in enumerate(pods):
        p = pod(f"p{k}", c, m, labels=lab, selector={"app": "a"} if sel else None,
                tolerations=(Toleration("t", "Exists"),) if tol else (),
                anti=({"app": "a"},) if anti else (), ports=(port,) if port else (),
                limit_mem_mib=2 * m)
        check = compile_checks(state, p)
        for n in range(len(nodes)):
            resources_ok = (p.requests.cpu_m <= state.free_cpu[n]
                            and p.requests.memory <= state.free_mem[n])
            fast = (not nodes[n].cordoned and resources_ok
                    and (check is None or check(n)))
            assert fast == (first_refusal(state, p, n) is None), (n, first_refusal(state, p, n))
        for n in range(len(nodes)):
            if first_refusal(state, p, n) is None:
                state.bind(p, n)
                placed += 1
                break
