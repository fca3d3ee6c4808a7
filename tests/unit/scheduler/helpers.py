"""Small builders shared by the scheduler tests."""

from __future__ import annotations

from collections.abc import Mapping

from scheduler import MIB, HostPort, Node, Pod, Resources, Taint, Toleration


def node(name: str, cpu: int = 4000, mem_mib: int = 8192, *, pids: int = 1000,
         labels: Mapping[str, str] | None = None, taints: tuple[Taint, ...] = (),
         cordoned: bool = False) -> Node:
    """A node with cpu in millicores and memory in MiB."""
    return Node(name, Resources(cpu, mem_mib * MIB, pids, 0), labels=dict(labels or {}),
                taints=taints, cordoned=cordoned)


def pod(name: str, cpu: int = 100, mem_mib: int = 128, *, priority: int = 0,
        labels: Mapping[str, str] | None = None, selector: Mapping[str, str] | None = None,
        tolerations: tuple[Toleration, ...] = (),
        anti: tuple[Mapping[str, str], ...] = (), ports: tuple[int, ...] = (),
        limit_cpu: int = 0, limit_mem_mib: int = 0, pids: int = 0) -> Pod:
    """A pod with cpu in millicores and memory in MiB."""
    return Pod(name, Resources(cpu, mem_mib * MIB, pids, 0),
               Resources(limit_cpu, limit_mem_mib * MIB, 0, 0), priority=priority,
               labels=dict(labels or {}), node_selector=dict(selector or {}),
               tolerations=tolerations, anti_affinity=anti,
               host_ports=tuple(HostPort(p) for p in ports))
