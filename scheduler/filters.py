"""Feasibility filters: may this pod run on this node, and if not, why not.

Each filter is a small pure function ``(state, pod, node) -> Refusal | None``; ``explain``
runs them all and so answers "why is this pod pending" per node, in Kubernetes' spirit
("0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had untolerated taint").

The placement loop cannot afford to call every filter on every candidate, so
``compile_checks`` turns the filters that matter for one pod into a single predicate and
leaves out the ones that cannot refuse it (no host ports asked, no anti-affinity anywhere,
...). cpu and memory are left to the index search itself. Tests hold the two paths to the
same answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from scheduler.model import Node, Pod, TaintEffect
from scheduler.state import ClusterState

__all__ = [
    "FILTERS",
    "Filter",
    "Refusal",
    "compile_checks",
    "explain",
    "first_refusal",
    "same_on_empty_nodes",
    "summarize",
]


@dataclass(frozen=True, slots=True)
class Refusal:
    """One node's reason for not taking a pod: the filter that said no, and its words."""

    filter: str
    reason: str

    def __str__(self) -> str:
        return self.reason


Filter = Callable[[ClusterState, Pod, int], "Refusal | None"]


def cordoned(state: ClusterState, pod: Pod, node: int) -> Refusal | None:
    """A cordoned node takes no new pods, whatever they tolerate."""
    if state.nodes[node].cordoned:
        return Refusal("cordoned", "node is cordoned")
    return None


def node_selector(state: ClusterState, pod: Pod, node: int) -> Refusal | None:
    """Every selector pair must be among the node's labels."""
    if not pod.node_selector:
        return None
    labels = state.nodes[node].labels
    for key, value in pod.node_selector.items():
        if labels.get(key) != value:
            have = labels.get(key)
            return Refusal(
                "node_selector",
                f"node label {key}={have if have is not None else '<unset>'} does not match"
                f" selector {key}={value}",
            )
    return None


def _untolerated(node: Node, pod: Pod) -> str | None:
    for taint in node.taints:
        if taint.effect == TaintEffect.PREFER_NO_SCHEDULE:
            continue  # a preference, not a refusal
        if not any(t.tolerates(taint) for t in pod.tolerations):
            return str(taint)
    return None


def taints(state: ClusterState, pod: Pod, node: int) -> Refusal | None:
    """NoSchedule and NoExecute taints need a matching toleration; PreferNoSchedule does not."""
    bad = _untolerated(state.nodes[node], pod)
    if bad is not None:
        return Refusal("taints", f"node has taint {bad} that the pod does not tolerate")
    return None


_RESOURCE_WORDS = ("cpu", "memory", "pids", "ephemeral-storage")


def resources(state: ClusterState, pod: Pod, node: int) -> Refusal | None:
    """Requests must fit in what the node has left: requests never overcommit."""
    free = state.free(node)
    short = [
        f"{word} (requested {want}, free {have})"
        for word, want, have in zip(_RESOURCE_WORDS, pod.requests, free, strict=True)
        if want > have
    ]
    if short:
        return Refusal("resources", "insufficient " + ", ".join(short))
    return None


def limits(state: ClusterState, pod: Pod, node: int) -> Refusal | None:
    """Limits may overcommit, but only up to the configured ratio of allocatable."""
    if state.limit_ratio is None:
        return None
    lim = pod.effective_limits()
    over = []
    if state.lim_cpu[node] + lim.cpu_m > state.max_lim_cpu[node]:
        over.append("cpu")
    if state.lim_mem[node] + lim.memory > state.max_lim_mem[node]:
        over.append("memory")
    if over:
        return Refusal(
            "limits",
            f"limits would overcommit {' and '.join(over)} past {state.limit_ratio}x allocatable",
        )
    return None


def host_ports(state: ClusterState, pod: Pod, node: int) -> Refusal | None:
    """A host port (with its protocol) can belong to one pod per node."""
    if not pod.host_ports:
        return None
    taken = state.ports_on[node]
    for hp in pod.host_ports:
        if hp in taken:
            return Refusal("host_ports", f"host port {hp.port}/{hp.protocol} is already in use")
    return None


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def anti_affinity(state: ClusterState, pod: Pod, node: int) -> Refusal | None:
    """Refuse a node whose pods match the pod's anti-affinity, or whose pods refuse this one.

    Symmetric, as in Kubernetes: a running pod's anti-affinity keeps newcomers away too.
    """
    if pod.anti_affinity and state.pods_on[node]:
        present = state.labels_on[node]
        for sel in pod.anti_affinity:
            if all(present[(k, v)] > 0 for k, v in sel.items()):
                # Label pairs may come from different pods; confirm with one real pod.
                for other in state.pods_on[node].values():
                    if _matches(sel, other.labels):
                        pairs = ",".join(f"{k}={v}" for k, v in sel.items())
                        return Refusal(
                            "anti_affinity",
                            f"pod {other.name} on the node matches anti-affinity {pairs}",
                        )
    if state.anti_on[node] and pod.labels:
        for sel in state.anti_on[node]:
            if _matches(sel, pod.labels):
                for other in state.pods_on[node].values():
                    if sel in other.anti_affinity:
                        pairs = ",".join(f"{k}={v}" for k, v in sel.items())
                        return Refusal(
                            "anti_affinity",
                            f"pod {other.name} on the node has anti-affinity {pairs}",
                        )
    return None


#: Every filter, cheapest and most decisive first.
FILTERS: tuple[Filter, ...] = (
    cordoned,
    node_selector,
    taints,
    resources,
    limits,
    host_ports,
    anti_affinity,
)


def first_refusal(state: ClusterState, pod: Pod, node: int) -> Refusal | None:
    """The first filter that refuses, or None when the node can take the pod."""
    for f in FILTERS:
        refusal = f(state, pod, node)
        if refusal is not None:
            return refusal
    return None


def explain(state: ClusterState, pod: Pod) -> dict[str, Refusal]:
    """Node name -> why it refuses ``pod``, for every node that does."""
    out: dict[str, Refusal] = {}
    for n, node in enumerate(state.nodes):
        refusal = first_refusal(state, pod, n)
        if refusal is not None:
            out[node.name] = refusal
    return out


_SHORT = re.compile(r"([\w-]+) \(requested")


def summarize(refusals: Mapping[str, Refusal], total: int) -> str:
    """One line in kube-scheduler's form: ``0/3 nodes are available: 2 insufficient cpu, ...``.

    Reasons are grouped by filter and, for resources, by the dimension that fell short, so a
    thousand refusals read as a few counts.
    """
    counts: dict[str, int] = {}
    for r in refusals.values():
        if r.filter == "resources":
            key = "insufficient " + "+".join(_SHORT.findall(r.reason))
        else:
            key = {
                "cordoned": "node(s) cordoned",
                "node_selector": "node(s) didn't match the node selector",
                "taints": "node(s) had untolerated taints",
                "limits": "node(s) would overcommit limits",
                "host_ports": "node(s) didn't have free host ports",
                "anti_affinity": "node(s) didn't satisfy anti-affinity",
            }.get(r.filter, r.filter)
        counts[key] = counts.get(key, 0) + 1
    parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{total - len(refusals)}/{total} nodes are available: {parts}"


def compile_checks(state: ClusterState, pod: Pod) -> Callable[[int], bool] | None:
    """One predicate with every check this pod needs besides cpu and memory, or None.

    None means "any indexed node with room will do", the common case that keeps the
    placement loop to two comparisons per node. Cordoned nodes are never indexed, so the
    cordon filter needs no check here.
    """
    checks: list[Callable[[int], bool]] = []
    if pod.node_selector or pod.tolerations:
        nodes = state.nodes
        sel = tuple(pod.node_selector.items())
        cache: dict[int, bool] = {}

        def static_ok(n: int) -> bool:
            ok = cache.get(n)
            if ok is None:
                labels = nodes[n].labels
                ok = all(labels.get(k) == v for k, v in sel) and (
                    _untolerated(nodes[n], pod) is None)
                cache[n] = ok
            return ok

        checks.append(static_ok)
    elif not state.all_plain:
        checks.append(state.plain_ok.__getitem__)
    r = pod.requests
    if r.pids:
        free_pids, want_pids = state.free_pids, r.pids
        checks.append(lambda n: free_pids[n] >= want_pids)
    if r.ephemeral:
        free_eph, want_eph = state.free_eph, r.ephemeral
        checks.append(lambda n: free_eph[n] >= want_eph)
    lim_set = pod.limits
    if state.limit_ratio is not None and (
        state.overlimit_pods or lim_set.cpu_m > r.cpu_m or lim_set.memory > r.memory
    ):
        lim = pod.effective_limits()
        lc, lm = lim.cpu_m, lim.memory
        lim_cpu, lim_mem = state.lim_cpu, state.lim_mem
        max_cpu, max_mem = state.max_lim_cpu, state.max_lim_mem
        checks.append(lambda n: lim_cpu[n] + lc <= max_cpu[n] and lim_mem[n] + lm <= max_mem[n])
    if pod.host_ports:
        checks.append(lambda n: host_ports(state, pod, n) is None)
    if pod.anti_affinity or (state.anti_pods and pod.labels):
        checks.append(lambda n: anti_affinity(state, pod, n) is None)
    if not checks:
        return None
    combined = checks[0]
    for check in checks[1:]:
        combined = _both(combined, check)
    return combined


def _both(a: Callable[[int], bool], b: Callable[[int], bool]) -> Callable[[int], bool]:
    # Nested closures beat all(<genexpr>) by a wide margin for two or three checks.
    return lambda n: a(n) and b(n)


def same_on_empty_nodes(state: ClusterState, pod: Pod) -> bool:
    """Whether ``compile_checks`` gives one answer for every empty node of a shape.

    True when only resources and node-free facts are checked (no selector, no toleration
    needed, no tainted or cordoned node indexed): empty nodes of a shape then differ in
    nothing the checks read, so testing one stands for all.
    """
    return not (pod.node_selector or pod.tolerations) and state.all_plain
