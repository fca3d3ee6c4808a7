"""Strategy knobs: weights, and binpack keeping big machines for the pods only they hold."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from scheduler import (
    BinPack,
    ClusterState,
    InvalidSpec,
    LeastAllocated,
    MostAllocated,
    Node,
    Scheduler,
    Spread,
    Strategy,
)
from tests.unit.scheduler.helpers import node, pod
from tests.unit.scheduler.test_placement import check_invariants


def _two_lopsided_nodes(strategy: Strategy) -> Scheduler:
    """a: little cpu left, much memory; b: much cpu left, little memory."""
    s = Scheduler([node("a", 4000, 8192), node("b", 4000, 8192)], strategy=strategy)
    s.bind(pod("x", 3000, 1000), "a")  # a free: 1000 cpu, 7192 MiB
    s.bind(pod("y", 500, 7000), "b")  # b free: 3500 cpu, 1192 MiB
    return s


@pytest.mark.parametrize(("weights", "want"), [
    ({"cpu": 1, "memory": 0}, "a"),  # only cpu slack counts: a is left with 500 of 4000
    ({"cpu": 0, "memory": 1}, "b"),  # only memory slack counts: b is left with 692 MiB
    ({"cpu": 1, "memory": 1}, "b"),  # 10**0.125 + 10**0.817 > 10**0.75 + 10**0.084
    ({"cpu": 9, "memory": 1}, "a"),
])
def test_binpack_weights_choose_which_slack_counts(weights: dict[str, float], want: str) -> None:
    s = _two_lopsided_nodes(BinPack(weights, adaptive=False))
    assert s.place(pod("p", 500, 500)).node == want


@pytest.mark.parametrize(("weights", "want"), [
    ({"cpu": 1, "memory": 0}, "b"),  # most cpu left after: b (3000) over a (500)
    ({"cpu": 0, "memory": 1}, "a"),  # most memory left after: a
])
def test_spread_weights_choose_which_headroom_counts(weights: dict[str, float],
                                                     want: str) -> None:
    s = _two_lopsided_nodes(Spread(weights))
    assert s.place(pod("p", 500, 500)).node == want


def test_kubernetes_weights_are_an_integer_weighted_mean() -> None:
    state = ClusterState([node("n", 4000, 8192)])
    p = pod("p", 1000, 4096)  # cpu 25% of the node, memory 50%
    assert MostAllocated({"cpu": 3, "memory": 1}).score(state, 0, p) == (3 * 25 + 50) // 4
    assert MostAllocated({"cpu": 1, "memory": 3}).score(state, 0, p) == (25 + 3 * 50) // 4
    assert LeastAllocated({"cpu": 3, "memory": 1}).score(state, 0, p) == (3 * 75 + 50) // 4


def test_scores_follow_the_weights() -> None:
    s = _two_lopsided_nodes(BinPack({"cpu": 1, "memory": 0}, adaptive=False))
    p = pod("p", 500, 500)
    st = s.state
    # cpu only: 100 * (1 - (10**slack - 1) / 9) with slack 500/4000 on a, 3000/4000 on b.
    assert st.free_cpu[0] == 1000
    assert s.strategy.score(st, 0, p) == pytest.approx(100 * (1 - (10 ** 0.125 - 1) / 9))
    assert s.strategy.score(st, 1, p) == pytest.approx(100 * (1 - (10 ** 0.75 - 1) / 9))


@pytest.mark.parametrize("make", [
    lambda: BinPack({"gpu": 1}),
    lambda: BinPack({"cpu": -1, "memory": 1}),
    lambda: BinPack({"cpu": 0, "memory": 0}),
    lambda: Spread({"disk": 1}),
    lambda: MostAllocated({"cpu": 1.5, "memory": 1}),
    lambda: LeastAllocated({"cpu": 0, "memory": 0}),
    lambda: BinPack(base=1.0),
    lambda: BinPack(keep_big="sometimes"),
    lambda: BinPack(reserve_growth=-0.5),
])
def test_bad_weights_and_knobs_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(InvalidSpec):
        make()


# -- keeping big machines for big pods --------------------------------------------------------


def _fleet(big: int, medium: int, small: int) -> list[Node]:
    return ([node(f"big{i}", 8000, 8192) for i in range(big)]
            + [node(f"med{i}", 4000, 4096) for i in range(medium)]
            + [node(f"small{i}", 2000, 2048) for i in range(small)])


def _used(s: Scheduler, prefix: str) -> list[str]:
    st = s.state
    return [n.name for i, n in enumerate(st.nodes) if n.name.startswith(prefix) and st.pods_on[i]]


def test_big_machines_stay_free_for_big_pods_while_the_reserve_is_short() -> None:
    s = Scheduler(_fleet(3, 2, 2))
    assert s.place(pod("big-a", 5000, 5000)).node == "big0"  # fits only the big shape
    # 1 big pod running: keep ceil(0.5 * 1) + 2 = 3 roomy big nodes; there are 2. Small pods
    # fill big-a's leftovers, then the medium and small machines, not big1 and big2.
    for k in range(15):
        assert s.place(pod(f"s{k}", 1000, 1024)).placed
        check_invariants(s.state)
    assert _used(s, "big") == ["big0"]
    assert len(_used(s, "med")) == 2 and len(_used(s, "small")) == 2
    assert s.place(pod("big-b", 5000, 5000)).node in ("big1", "big2")
    # With nowhere else left, small pods do get the last big machine rather than wait.
    assert s.place(pod("s-last", 1000, 1024)).placed


def test_without_a_reserve_small_pods_strand_the_next_big_pod() -> None:
    s = Scheduler(_fleet(3, 2, 2), strategy=BinPack(keep_big="never"))
    assert s.place(pod("big-a", 5000, 5000)).placed
    for k in range(15):
        assert s.place(pod(f"s{k}", 1000, 1024)).placed
    assert len(_used(s, "big")) == 3  # largest machines first
    assert not s.place(pod("big-b", 5000, 5000), explain_refusals=False).placed


def test_big_machines_beyond_the_reserve_go_to_small_pods_before_smaller_machines() -> None:
    s = Scheduler(_fleet(6, 1, 1))
    assert s.place(pod("big-a", 5000, 5000)).node == "big0"
    for k in range(3 + 4 + 16):  # big-a's leftovers, the medium node, two big nodes
        assert s.place(pod(f"s{k}", 1000, 1024)).placed
    # 5 roomy big nodes, 3 to keep: two are spent on small pods, after the medium machine
    # and before the small one.
    assert _used(s, "big") == ["big0", "big1", "big2"]
    assert _used(s, "med") == ["med0"] and _used(s, "small") == []
    assert s.state.index.largest_first[0].roomy == 3
    assert s.place(pod("s-next", 1000, 1024)).node == "small0"


def test_a_node_a_big_pod_left_is_kept_for_the_next_one() -> None:
    s = Scheduler(_fleet(2, 0, 4))
    assert s.place(pod("big-a", 5000, 5000)).node == "big0"
    for k in range(3):  # big-a's leftovers
        assert s.place(pod(f"s{k}", 1000, 1024)).node == "big0"
    s.remove("big-a")  # big0 now has 5000 cpu free: room for another big pod
    cls = s.state.index.largest_first[0]
    assert s.state.index.is_roomy[0] and cls.roomy == 2
    for k in range(3, 7):  # the reserve is short (2 of 2): small pods go to small nodes
        assert s.place(pod(f"s{k}", 1000, 1024)).node.startswith("small")
    check_invariants(s.state)
    assert s.place(pod("big-b", 5400, 5000)).node == "big1"
    assert s.place(pod("big-c", 5000, 5000)).node == "big0"  # best fit: the tighter one
