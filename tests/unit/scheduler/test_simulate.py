"""The simulator: traces on disk, the lower bound, compaction, and what a replay reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler import (
    MIB,
    BinPack,
    ClusterState,
    MostAllocated,
    Node,
    Resources,
    Scheduler,
    TraceError,
    make_strategy,
)
from scheduler.simulate import (
    PodSpec,
    Trace,
    compaction,
    generate,
    lower_bound,
    read_trace,
    replay,
    write_trace,
)
from scheduler.simulate.bounds import LowerBound, percentile
from scheduler.simulate.engine import fragmentation
from scheduler.simulate.trace import DEFAULT_PIDS
from tests.unit.scheduler.helpers import node, pod


def test_lower_bound_on_equal_nodes_is_the_ceiling_per_resource() -> None:
    nodes = [node(f"n{i}", cpu=4000, mem_mib=4096) for i in range(10)]
    pods = [pod(f"p{k}", 1000, 100) for k in range(9)]  # 9 cores: 3 nodes by cpu
    assert lower_bound(pods, nodes) == 3
    pods.append(pod("fat", 100, 4000 * 2))  # memory now needs 3 nodes as well
    assert lower_bound(pods, nodes) == 3
    pods.append(pod("fatter", 100, 4096 * 2))
    assert lower_bound(pods, nodes) == 5  # memory: 17092 MiB over 4096 MiB nodes


def test_lower_bound_on_mixed_nodes_takes_the_largest_first() -> None:
    nodes = [node("s1", 1000), node("s2", 1000), node("big", 8000)]
    assert LowerBound(nodes)([8000, 0, 0, 0]) == 1
    assert LowerBound(nodes)([8001, 0, 0, 0]) == 2
    assert LowerBound(nodes)([10000, 0, 0, 0]) == 3


def test_percentile_matches_numpy_linear() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(11)), 90) == 9.0


def test_compaction_finds_the_smallest_cluster_that_fits() -> None:
    nodes = [node(f"n{i}", cpu=1000, mem_mib=1024) for i in range(10)]
    pods = [pod(f"p{k}", 500, 100) for k in range(7)]  # needs 4 nodes

    def fits(subset: list[Node] | tuple[Node, ...]) -> bool:
        s = Scheduler(list(subset))
        return all(s.place(p, explain_refusals=False).placed for p in pods)

    p90, per_seed = compaction(nodes, fits, start=1)
    assert per_seed == [4] * 11 and p90 == 4.0


def test_trace_round_trips_through_csv(tmp_path: Path) -> None:
    trace = generate("mixed", 12, seed=1)
    write_trace(trace, tmp_path / "n.csv", tmp_path / "p.csv")
    back = read_trace(tmp_path / "n.csv", tmp_path / "p.csv")
    assert [n.allocatable for n in back.nodes] == [n.allocatable for n in trace.nodes]
    assert [(s.pod.name, s.pod.requests, s.arrival, s.duration) for s in back.pods] == [
        (s.pod.name, s.pod.requests, s.arrival, s.duration) for s in trace.pods]


@pytest.mark.parametrize(("nodes_csv", "pods_csv", "where"), [
    ("name,cpu_m,memory_mib\nn1,4000,1024\n", "name,arrival_s,duration_s,cpu_m\np,0,0,1\n",
     "p.csv:1: column memory_mib: header lacks"),
    ("name,cpu_m,memory_mib\nn1,-4,1024\n", "name,arrival_s,duration_s,cpu_m,memory_mib\n",
     "n.csv:2: column cpu_m: '-4' is not valid: must be >= 0"),
    ("name,cpu_m,memory_mib\nn1,4000,1024\n",
     "name,arrival_s,duration_s,cpu_m,memory_mib\np,0,0,100,64\nq,soon,0,100,64\n",
     "p.csv:3: column arrival_s: 'soon' is not valid"),
    ("name,cpu_m,memory_mib,labels\nn1,4000,1024,zone\n",
     "name,arrival_s,duration_s,cpu_m,memory_mib\n",
     "n.csv:2: column labels: 'zone' is not valid: expected k=v;k=v"),
    ("name,cpu_m,memory_mib\nn1,4000,1024\n",
     "name,arrival_s,duration_s,cpu_m,memory_mib,limit_cpu_m\np,0,0,500,64,100\n",
     "p.csv:2: column limit_cpu_m: limit 100 is below the request 500"),
    ("name,cpu_m,memory_mib\nn1,4000,1024\n", "name,arrival_s,duration_s,cpu_m,memory_mib,x\n",
     "p.csv:1: column x: unknown column"),
    ("name,cpu_m,memory_mib\n", "name,arrival_s,duration_s,cpu_m,memory_mib\n",
     "n.csv:1: no nodes"),
    ("name,cpu_m,memory_mib\nn1,4000,1024\n",
     "name,arrival_s,duration_s,cpu_m,memory_mib\np,0,0,1,1\np,1,0,1,1\n",
     "p.csv:3: column name: pod 'p' appears twice"),
])
def test_bad_csv_names_file_line_and_column(tmp_path: Path, nodes_csv: str, pods_csv: str,
                                            where: str) -> None:
    (tmp_path / "n.csv").write_text(nodes_csv)
    (tmp_path / "p.csv").write_text(pods_csv)
    with pytest.raises(TraceError) as info:
        read_trace(tmp_path / "n.csv", tmp_path / "p.csv")
    assert where in str(info.value)


def _tiny_trace() -> Trace:
    nodes = tuple(node(f"n{i}", cpu=2000, mem_mib=2048) for i in range(3))
    pods = (
        PodSpec(pod("a", 1500, 512), 0.0, 10.0),
        PodSpec(pod("b", 1500, 512), 1.0, 0.0),
        PodSpec(pod("c", 1500, 512), 2.0, 0.0),
        PodSpec(pod("d", 1500, 512), 3.0, 0.0),  # waits for a to leave at t=10
        PodSpec(pod("vip", 2000, 512, priority=10), 20.0, 0.0),  # preempts one of b, c, d
        PodSpec(pod("huge", 5000, 512), 30.0, 0.0),  # never fits anywhere
    )
    return Trace(nodes, pods, name="tiny")


def test_replay_reports_waits_preemptions_and_why_pending() -> None:
    r = replay(_tiny_trace())
    assert r.placed_late >= 1
    assert r.preemptions == 1
    assert r.pending == 2  # the preempted pod finds no room again, and huge never does
    assert r.unfit == 1  # huge: larger than every node, so not in the lower bound
    assert any("insufficient cpu" in reason for reason in r.pending_reasons)
    assert r.nodes_used_peak == 3
    # At t=30 the trace wants b, c, d, vip (6500 cpu, 2000 per node): 4 nodes of this
    # shape, more than the cluster has. Running pods alone need 3.
    assert r.lower_bound_peak == 4 and r.running_bound_peak == 3
    assert r.pending_at_peak == 1 and r.pending_max == 2  # the evicted pod; then huge too
    assert r.placements_per_s > 0
    assert r.samples and r.samples[-1].t >= 30.0
    assert {"nodes_total", "nodes_used_peak", "lower_bound_peak", "placed", "pending",
            "preemptions", "placements_per_s", "pending_at_peak",
            "pending_max"} <= set(r.to_json())


def test_binpack_packs_at_least_as_tight_as_most_allocated_on_a_small_trace() -> None:
    trace = generate("bimodal", 60, seed=3)
    ours = replay(trace, BinPack(), keep_samples=False)
    theirs = replay(trace, MostAllocated(), keep_samples=False)
    assert ours.pending == 0
    assert ours.nodes_used_peak <= theirs.nodes_used_peak
    assert ours.ratio < 1.05


def test_mixed_nodes_big_pods_are_not_stranded_with_make_room() -> None:
    trace = generate("mixed", 120, seed=2)
    big = [s for s in trace.pods if s.pod.requests.cpu_m > 32000]
    assert big  # the trace has pods that only the 64-core machines can hold
    greedy = replay(trace, BinPack(keep_big="never"), keep_samples=False)
    assert greedy.pending > 0  # small pods filled the big machines first
    kept = replay(trace, BinPack(), keep_samples=False)
    assert kept.pending == 0  # the default keeps roomy big machines in reserve for them
    moved = replay(trace, BinPack(keep_big="never"), make_room=True, keep_samples=False)
    assert moved.pending == 0 and moved.moves > 0
    assert moved.ratio < 1.05


def test_make_room_moves_pods_aside_and_keeps_everyone_running() -> None:
    s = Scheduler([node("big", cpu=8000, mem_mib=8192), node("a", cpu=4000, mem_mib=4096),
                   node("b", cpu=4000, mem_mib=4096)])
    for k in range(6):
        s.bind(pod(f"small{k}", 1000, 512), "big")
    s.bind(pod("other", 3000, 512), "a")
    huge = pod("huge", 6000, 2048)
    assert not s.place(huge, explain_refusals=False).placed
    before = s.state.assignment()
    plan = s.make_room_plan(huge)
    assert plan is not None and plan.freed == ("big",)
    assert s.state.assignment() == before  # planning changed nothing
    assert all(m.source == "big" and m.target != "big" for m in plan.moves)
    d = s.make_room(huge)
    assert d.node == "big"
    assert len(s.state.where) == 8  # every small pod still runs somewhere


def test_node_memory_units_are_bytes() -> None:
    assert Node("n", Resources(1, 3 * MIB)).allocatable.memory == 3 * MIB


def test_a_preempted_pod_runs_its_remaining_time_after_it_is_placed_again() -> None:
    nodes = (node("n", cpu=2000, mem_mib=2048),)
    pods = (
        PodSpec(pod("a", 1500, 512), 0.0, 100.0),
        PodSpec(pod("vip", 2000, 512, priority=10), 10.0, 20.0),  # evicts a until t=30
    )
    r = replay(Trace(nodes, pods, name="requeue"))
    assert r.preemptions == 1 and r.placed_again == 1 and r.pending == 0
    assert r.placed == 2 and r.placed_late == 0  # each pod once; a's second start is "again"
    used = {s.t: s.nodes_used for s in r.samples}
    assert used[100.0] == 1  # a's first departure time is void: it restarted at 30
    assert used[120.0] == 0  # 30 + the 90 s it had left


def _evict_then_idle() -> Trace:
    """a lands on the big node; vip (only the big node fits it) evicts a at t=2 while the
    small node is empty; c comes and goes later, the first departure after the eviction."""
    nodes = (node("big", cpu=4000, mem_mib=4096), node("small", cpu=2000, mem_mib=2048))
    pods = (
        PodSpec(pod("a", 1500, 512), 0.0, 0.0),
        PodSpec(pod("vip", 3000, 512, priority=10), 2.0, 0.0),
        PodSpec(pod("c", 100, 64), 5.0, 2.0),  # leaves at t=7
    )
    return Trace(nodes, pods, name="evict")


def test_an_evicted_pod_is_retried_at_once_not_at_the_next_departure() -> None:
    r = replay(_evict_then_idle())
    assert r.preemptions == 1
    at = {s.t: s for s in r.samples}
    assert at[2.0].pending == 0 and at[2.0].nodes_used == 2  # a moved to the small node
    assert r.pending_max == 0


def test_placed_counts_each_pod_once() -> None:
    r = replay(_evict_then_idle())
    assert r.pods_total == 3
    assert r.placed == 3 and r.placed_again == 1 and r.placed_late == 0
    assert r.placed + r.pending == r.pods_total


def test_evicted_pods_are_retried_by_priority_in_the_same_instant() -> None:
    # top needs all of n1 and evicts low and mid there; at once mid (higher) takes n2, and
    # low, which may evict no one, waits.
    nodes = (node("n1", cpu=2000, mem_mib=2048), node("n2", cpu=1000, mem_mib=2048))
    pods = (
        PodSpec(pod("low", 1000, 64, priority=0), 0.0, 0.0),
        PodSpec(pod("mid", 1000, 64, priority=5), 0.0, 0.0),
        PodSpec(pod("top", 2000, 64, priority=9), 1.0, 0.0),
    )
    r = replay(Trace(nodes, pods, name="cascade"))
    at = {s.t: s for s in r.samples}
    assert r.preemptions == 2
    assert at[1.0].pending == 1 and at[1.0].nodes_used == 2
    assert r.pending == 1


@pytest.mark.parametrize("strategy", ["binpack", "spread", "least-allocated", "most-allocated"])
def test_lower_bound_is_the_traces_demand_whatever_the_strategy(strategy: str) -> None:
    nodes = tuple(node(f"n{i}", cpu=2000, mem_mib=2048) for i in range(2))
    pods = (
        PodSpec(pod("a", 1500, 512), 0.0, 0.0),
        PodSpec(pod("b", 1500, 512), 1.0, 0.0),
        PodSpec(pod("c", 1500, 512), 2.0, 10.0),  # waits: both nodes have 500 left
        PodSpec(pod("d", 100, 64), 20.0, 0.0),
    )
    r = replay(Trace(nodes, pods, name="demand"), make_strategy(strategy))
    # 4500 cpu wanted at t=2 on 2000-cpu nodes: 3, although only 2 nodes run pods. c's
    # own run ends at t=12 by the trace, so it leaves the demand then, waiting or not.
    assert r.lower_bound_peak == 3 and r.running_bound_peak == 2
    assert r.pending_at_peak == 1 and r.pending == 1
    assert {s.t: s.lower_bound for s in r.samples}[20.0] == 2
    assert r.ratio == pytest.approx(2 / 3)


def test_fragmentation_counts_free_room_no_probe_fits() -> None:
    st = ClusterState([node(f"n{i}", cpu=4000, mem_mib=4096) for i in range(3)])
    st.bind(pod("x", 3000, 1024), 0)  # n0 free: 1000 cpu, 3072 MiB
    st.bind(pod("y", 1000, 3584), 1)  # n1 free: 3000 cpu, 512 MiB; n2 empty: not counted
    assert fragmentation(st, [pod("p", 1500, 1024)]) == (1.0, 1.0)  # fits neither
    assert fragmentation(st, [pod("p", 800, 256)]) == (0.0, 0.0)  # fits both
    # Fits n1 only: n0's 1000 of 4000 free cpu and 3072 of 3584 free MiB are stranded.
    assert fragmentation(st, [pod("p", 2000, 256)]) == (0.25, 3072 / 3584)
    assert fragmentation(st, [pod("p", 1500, 1024), pod("q", 2000, 256)]) == (0.25, 3072 / 3584)
    assert fragmentation(st, []) == (1.0, 1.0)  # nothing to fit: all of it is unusable


def test_utilisation_and_fragmentation_of_a_tiny_replay() -> None:
    nodes = tuple(node(f"n{i}", cpu=4000, mem_mib=4096) for i in range(2))
    pods = (
        PodSpec(pod("a", 3000, 1024), 0.0, 0.0),  # n0
        PodSpec(pod("b", 2000, 2048), 1.0, 0.0),  # n0 has 1000 cpu left: n1
        # cpu is the scarcer resource (5000/8000 vs 3072/8192 MiB asked), so binpack weighs
        # its slack 4x: n0 is left with 500/4000 cpu and 2560/4096 MiB, n1 would be left
        # with 1500 and 1536: 4 * 10**0.125 + 10**0.625 = 9.55 < 5 * 10**0.375 = 11.86.
        PodSpec(pod("c", 500, 512), 2.0, 0.0),
    )
    r = replay(Trace(nodes, pods, name="util"))
    # The peak (2 nodes) is first reached at t=1, holding 5000 of 8000 cpu, 3072 of 8192 MiB.
    assert r.nodes_used_peak == 2
    assert (r.cpu_util_at_peak, r.mem_util_at_peak) == (5000 / 8000, 3072 / 8192)
    assert r.pending == 0
    # Nothing waits, so the probe is the median pod by cpu, b (2000 cpu, 2048 MiB): it fits
    # n1 (2000, 2048 free) but not n0 (500, 2560 free), whose room is the stranded part.
    assert (r.fragmentation_cpu, r.fragmentation_mem) == (500 / 2500, 2560 / 4608)


def test_optional_columns_and_open_ended_durations_round_trip(tmp_path: Path) -> None:
    (tmp_path / "n.csv").write_text(
        "name,cpu_m,memory_mib,pids,labels\n"
        "n1,4000,4096,512,zone=a;disk=ssd\n"
        "n2,2000,2048,,\n")
    (tmp_path / "p.csv").write_text(
        "name,arrival_s,duration_s,cpu_m,memory_mib,limit_cpu_m,limit_memory_mib,priority,"
        "labels\n"
        "web,0,,500,256,1000,512,5,app=web;tier=front\n"
        "db,1.5,0,1000,1024,,,-1,\n"
        "job,2,30.5,250,128.5,250,,,\n")
    trace = read_trace(tmp_path / "n.csv", tmp_path / "p.csv")
    n1, n2 = trace.nodes
    assert n1.allocatable == Resources(4000, 4096 * MIB, 512, 0)
    assert dict(n1.labels) == {"zone": "a", "disk": "ssd"}
    assert n2.allocatable.pids == DEFAULT_PIDS and dict(n2.labels) == {}
    web, db, job = trace.pods
    assert (web.arrival, web.duration) == (0.0, 0.0)  # empty duration: runs to the end
    assert (db.arrival, db.duration) == (1.5, 0.0)  # 0: runs to the end too
    assert (job.arrival, job.duration) == (2.0, 30.5)
    assert web.pod.limits == Resources(1000, 512 * MIB) and web.pod.priority == 5
    assert dict(web.pod.labels) == {"app": "web", "tier": "front"}
    assert db.pod.limits == Resources() and db.pod.priority == -1
    assert job.pod.requests.memory == round(128.5 * MIB) and job.pod.limits.cpu_m == 250

    write_trace(trace, tmp_path / "n2.csv", tmp_path / "p2.csv")
    back = read_trace(tmp_path / "n2.csv", tmp_path / "p2.csv")
    assert [(n.name, n.allocatable, dict(n.labels)) for n in back.nodes] == [
        (n.name, n.allocatable, dict(n.labels)) for n in trace.nodes]
    assert [(s.pod.name, s.arrival, s.duration, s.pod.requests, s.pod.limits, s.pod.priority,
             dict(s.pod.labels)) for s in back.pods] == [
        (s.pod.name, s.arrival, s.duration, s.pod.requests, s.pod.limits, s.pod.priority,
         dict(s.pod.labels)) for s in trace.pods]

    # Open-ended pods never leave: the cluster still runs web and db when job has gone.
    r = replay(back)
    last = r.samples[-1]
    assert last.t == 32.5 and last.nodes_used == 1 and r.placed == 3
