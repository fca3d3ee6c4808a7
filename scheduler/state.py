"""Who runs where: the mutable side of a cluster, kept as flat per-node arrays.

Nodes are numbered 0..n-1 in the order given; every per-node fact is a list indexed by that
number. Struct-of-arrays rather than one object per node because the placement loop reads
two or three numbers from a few dozen nodes per pod, and list indexing is the cheapest read
Python has. ``copy()`` gives an independent state for planning (preemption, rebalancing,
what-if) without touching the live one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence

from scheduler.errors import InvalidSpec, SchedulerError, UnknownNode, UnknownPod
from scheduler.index import FreeIndex
from scheduler.model import HostPort, Node, Pod, Resources, TaintEffect

__all__ = ["DEFAULT_LIMIT_RATIO", "ClusterState"]

#: How far declared limits may add up past a node's allocatable, per resource. 2.0 means the
#: limits on a node may sum to twice what it has; requests never overcommit.
DEFAULT_LIMIT_RATIO = 2.0


class ClusterState:
    """Placement bookkeeping for a fixed set of nodes.

    ``limit_ratio`` caps the sum of effective limits (cpu and memory) per node at
    ``allocatable * limit_ratio``; ``None`` lets limits add up without bound, as Kubernetes
    does. ``grid_sublevels`` sets the resolution of the free-capacity index (bins per
    doubling of free capacity).
    """

    def __init__(
        self,
        nodes: Sequence[Node],
        *,
        limit_ratio: float | None = DEFAULT_LIMIT_RATIO,
        grid_sublevels: int = 8,
    ) -> None:
        if limit_ratio is not None and limit_ratio < 1.0:
            raise InvalidSpec(f"limit_ratio: must be >= 1.0 or None, got {limit_ratio}")
        self.nodes: list[Node] = list(nodes)
        self.node_ids: dict[str, int] = {}
        for i, node in enumerate(self.nodes):
            if node.name in self.node_ids:
                raise InvalidSpec(f"node {node.name}: the name is used twice")
            self.node_ids[node.name] = i
        self.limit_ratio = limit_ratio
        caps = [n.allocatable for n in self.nodes]
        self.cap: list[Resources] = caps
        self.free_cpu: list[int] = [c.cpu_m for c in caps]
        self.free_mem: list[int] = [c.memory for c in caps]
        self.free_pids: list[int] = [c.pids for c in caps]
        self.free_eph: list[int] = [c.ephemeral for c in caps]
        ratio = limit_ratio if limit_ratio is not None else 0.0
        self.max_lim_cpu: list[int] = [int(c.cpu_m * ratio) for c in caps]
        self.max_lim_mem: list[int] = [int(c.memory * ratio) for c in caps]
        self.lim_cpu: list[int] = [0] * len(caps)
        self.lim_mem: list[int] = [0] * len(caps)
        self.pods_on: list[dict[str, Pod]] = [{} for _ in caps]
        self.ports_on: list[set[HostPort]] = [set() for _ in caps]
        # Label pairs of pods on each node, for anti-affinity; and the anti-affinity sets that
        # pods already there declare, because Kubernetes' anti-affinity is symmetric.
        self.labels_on: list[Counter[tuple[str, str]]] = [Counter() for _ in caps]
        self.anti_on: list[list[Mapping[str, str]]] = [[] for _ in caps]
        self.anti_pods = 0
        #: Bound pods whose effective limits exceed their requests. While there are none,
        #: limits on a node add up to its requests, so fitting requests implies fitting the
        #: limit cap (ratio >= 1) and the placement loop can skip that check.
        self.overlimit_pods = 0
        # Nodes a pod with no tolerations and no selector may use: uncordoned, no hard taint.
        self.plain_ok: list[bool] = [
            not n.cordoned
            and not any(t.effect != TaintEffect.PREFER_NO_SCHEDULE for t in n.taints)
            for n in self.nodes
        ]
        self.all_plain = all(self.plain_ok)
        #: Sum of requests over the cluster and its total allocatable (cpu, memory): how
        #: scarce each resource is, which adaptive binpacking weighs by.
        self.requested_cpu = 0
        self.requested_mem = 0
        self.total_cpu = sum(c.cpu_m for c in caps)
        self.total_mem = sum(c.memory for c in caps)
        self.where: dict[str, int] = {}
        #: Nodes with at least one pod, and the sum of their allocatable cpu and memory.
        self.used_nodes = 0
        self.used_cap_cpu = 0
        self.used_cap_mem = 0
        self.index = FreeIndex(self, grid_sublevels)

    # -- reading -----------------------------------------------------------------------------

    def node_id(self, name: str) -> int:
        """The number of the node called ``name``."""
        try:
            return self.node_ids[name]
        except KeyError:
            raise UnknownNode(f"node {name}: no such node") from None

    def free(self, node: int) -> Resources:
        """What the node has left after the requests of its pods."""
        return Resources(
            self.free_cpu[node], self.free_mem[node], self.free_pids[node], self.free_eph[node]
        )

    def used(self, node: int) -> Resources:
        """Sum of the requests of the node's pods."""
        return self.cap[node].minus(self.free(node))

    def pod_node(self, pod_name: str) -> int:
        """The node a bound pod runs on."""
        try:
            return self.where[pod_name]
        except KeyError:
            raise UnknownPod(f"pod {pod_name}: not bound to any node") from None

    def pods(self) -> Iterator[tuple[Pod, int]]:
        """Every bound pod with its node, in node order then binding order."""
        for n, pods in enumerate(self.pods_on):
            for pod in pods.values():
                yield pod, n

    def assignment(self) -> dict[str, str]:
        """Pod name -> node name, for comparing runs and for plans."""
        names = self.nodes
        return {p: names[n].name for p, n in self.where.items()}

    # -- changing ----------------------------------------------------------------------------

    def bind(self, pod: Pod, node: int) -> None:
        """Record ``pod`` as running on ``node``; the caller has already checked it fits.

        Only the cheap invariant (requests within allocatable) is rechecked: it is the one the
        property tests hold us to, and breaking it silently would corrupt every later choice.
        """
        if pod.name in self.where:
            other = self.nodes[self.where[pod.name]].name
            raise SchedulerError(f"pod {pod.name}: already bound to {other}")
        r = pod.requests
        fc = self.free_cpu[node] - r.cpu_m
        fm = self.free_mem[node] - r.memory
        fp = self.free_pids[node] - r.pids
        fe = self.free_eph[node] - r.ephemeral
        if fc < 0 or fm < 0 or fp < 0 or fe < 0:
            raise SchedulerError(
                f"pod {pod.name}: requests {tuple(r)} do not fit node {self.nodes[node].name}"
                f" with free {tuple(self.free(node))}"
            )
        self.free_cpu[node] = fc
        self.free_mem[node] = fm
        self.requested_cpu += r.cpu_m
        self.requested_mem += r.memory
        self.free_pids[node] = fp
        self.free_eph[node] = fe
        lim = pod.limits
        self.lim_cpu[node] += lim.cpu_m or r.cpu_m
        self.lim_mem[node] += lim.memory or r.memory
        if lim.cpu_m > r.cpu_m or lim.memory > r.memory:
            self.overlimit_pods += 1
        on = self.pods_on[node]
        if not on:
            self.used_nodes += 1
            self.used_cap_cpu += self.cap[node].cpu_m
            self.used_cap_mem += self.cap[node].memory
        on[pod.name] = pod
        self.where[pod.name] = node
        if pod.host_ports:
            self.ports_on[node].update(pod.host_ports)
        if pod.labels:
            self.labels_on[node].update(pod.labels.items())
        if pod.anti_affinity:
            self.anti_on[node].extend(pod.anti_affinity)
            self.anti_pods += 1
        idx = self.index
        if r.cpu_m > idx.common_cpu or r.memory > idx.common_mem:
            idx.large(r.cpu_m, r.memory, node, 1)
        idx.moved(node)

    def unbind(self, pod_name: str) -> tuple[Pod, int]:
        """Remove a bound pod; returns it and the node it left."""
        node = self.pod_node(pod_name)
        del self.where[pod_name]
        on = self.pods_on[node]
        pod = on.pop(pod_name)
        if not on:
            self.used_nodes -= 1
            self.used_cap_cpu -= self.cap[node].cpu_m
            self.used_cap_mem -= self.cap[node].memory
        r = pod.requests
        self.free_cpu[node] += r.cpu_m
        self.free_mem[node] += r.memory
        self.requested_cpu -= r.cpu_m
        self.requested_mem -= r.memory
        self.free_pids[node] += r.pids
        self.free_eph[node] += r.ephemeral
        lim = pod.limits
        self.lim_cpu[node] -= lim.cpu_m or r.cpu_m
        self.lim_mem[node] -= lim.memory or r.memory
        if lim.cpu_m > r.cpu_m or lim.memory > r.memory:
            self.overlimit_pods -= 1
        if pod.host_ports:
            self.ports_on[node].difference_update(pod.host_ports)
        if pod.labels:
            self.labels_on[node].subtract(pod.labels.items())
            self.labels_on[node] = +self.labels_on[node]
        if pod.anti_affinity:
            anti = self.anti_on[node]
            for sel in pod.anti_affinity:
                anti.remove(sel)
            self.anti_pods -= 1
        idx = self.index
        if r.cpu_m > idx.common_cpu or r.memory > idx.common_mem:
            idx.large(r.cpu_m, r.memory, node, -1)
        idx.moved(node)
        return pod, node

    def bind_all(self, placements: Iterable[tuple[Pod, int]]) -> None:
        """Bind many pods, e.g. to rebuild a state from a saved assignment."""
        for pod, node in placements:
            self.bind(pod, node)

    def copy(self) -> ClusterState:
        """An independent state with the same nodes and bindings, for planning."""
        twin = ClusterState(self.nodes, limit_ratio=self.limit_ratio,
                            grid_sublevels=self.index.sublevels)
        for pod, node in self.pods():
            twin.bind(pod, node)
        return twin
