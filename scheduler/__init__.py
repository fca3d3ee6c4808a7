"""llmos's cluster placement: where each pod runs, chosen by requests and packed tight.

The public surface is re-exported here; the modules behind it are implementation detail.
The pipeline is small pure pieces (``filters`` -> ``strategies`` -> choice in ``placement``),
with ``preemption`` and ``rebalance`` returning plans that the ``Scheduler`` applies.
``scheduler.simulate`` replays traces and measures quality and speed.

Example::

    from scheduler import Node, Pod, Resources, Scheduler, MIB
    s = Scheduler([Node("n1", Resources(4000, 8192 * MIB, 1000, 0))])
    d = s.place(Pod("web", Resources(500, 256 * MIB)))
    assert d.node == "n1"
"""

from scheduler.clock import Clock, FakeClock, MonotonicClock
from scheduler.errors import InvalidSpec, SchedulerError, TraceError, UnknownNode, UnknownPod
from scheduler.filters import FILTERS, Refusal, explain, summarize
from scheduler.model import (
    MIB,
    HostPort,
    Node,
    Pod,
    QoSClass,
    Resources,
    Taint,
    TaintEffect,
    Toleration,
    qos_class,
)
from scheduler.placement import Decision, Scheduler, batch_order
from scheduler.preemption import PreemptionPlan, plan_preemption
from scheduler.rebalance import Move, RebalancePlan, plan_rebalance
from scheduler.state import DEFAULT_LIMIT_RATIO, ClusterState
from scheduler.strategies import (
    STRATEGIES,
    BinPack,
    LeastAllocated,
    MostAllocated,
    Spread,
    Strategy,
    make_strategy,
)

__all__ = [
    "DEFAULT_LIMIT_RATIO",
    "FILTERS",
    "MIB",
    "STRATEGIES",
    "BinPack",
    "Clock",
    "ClusterState",
    "Decision",
    "FakeClock",
    "HostPort",
    "InvalidSpec",
    "LeastAllocated",
    "MonotonicClock",
    "MostAllocated",
    "Move",
    "Node",
    "Pod",
    "PreemptionPlan",
    "QoSClass",
    "RebalancePlan",
    "Refusal",
    "Resources",
    "Scheduler",
    "SchedulerError",
    "Spread",
    "Strategy",
    "Taint",
    "TaintEffect",
    "Toleration",
    "TraceError",
    "UnknownNode",
    "UnknownPod",
    "batch_order",
    "explain",
    "make_strategy",
    "plan_preemption",
    "plan_rebalance",
    "qos_class",
    "summarize",
]
