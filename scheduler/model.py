"""Nodes and pods as the scheduler sees them: capacities, requests, limits and constraints.

Everything here is immutable data. Mutable placement state lives in ``state.ClusterState`` so
a node or pod description can be shared between a live scheduler, a copy used to plan, and a
simulator without anyone changing it under the others' feet.

Units are the ones Kubernetes uses: cpu in millicores, memory and ephemeral storage in bytes,
pids as a count.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from scheduler.errors import InvalidSpec

__all__ = [
    "MIB",
    "RESOURCE_NAMES",
    "HostPort",
    "Node",
    "Pod",
    "QoSClass",
    "Resources",
    "Taint",
    "TaintEffect",
    "Toleration",
    "qos_class",
]

MIB = 1 << 20

RESOURCE_NAMES = ("cpu", "memory", "pids", "ephemeral-storage")


class Resources(NamedTuple):
    """An amount of each schedulable resource.

    A tuple, not a dataclass, because the placement hot path indexes and compares these
    millions of times and tuple access is the cheapest Python offers.
    """

    cpu_m: int = 0
    memory: int = 0
    pids: int = 0
    ephemeral: int = 0

    def fits_in(self, free: Resources) -> bool:
        """True when every dimension of ``self`` is at most the same dimension of ``free``."""
        return (
            self.cpu_m <= free.cpu_m
            and self.memory <= free.memory
            and self.pids <= free.pids
            and self.ephemeral <= free.ephemeral
        )

    def plus(self, other: Resources) -> Resources:
        """Element-wise sum."""
        return Resources(
            self.cpu_m + other.cpu_m,
            self.memory + other.memory,
            self.pids + other.pids,
            self.ephemeral + other.ephemeral,
        )

    def minus(self, other: Resources) -> Resources:
        """Element-wise difference (may go negative; callers decide what that means)."""
        return Resources(
            self.cpu_m - other.cpu_m,
            self.memory - other.memory,
            self.pids - other.pids,
            self.ephemeral - other.ephemeral,
        )

    def is_zero(self) -> bool:
        """True when nothing at all is asked for."""
        return not (self.cpu_m or self.memory or self.pids or self.ephemeral)


class TaintEffect(enum.StrEnum):
    """What a taint does to pods that do not tolerate it (Kubernetes' three effects)."""

    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


@dataclass(frozen=True, slots=True)
class Taint:
    """A mark on a node that repels pods lacking a matching toleration."""

    key: str
    value: str = ""
    effect: TaintEffect = TaintEffect.NO_SCHEDULE

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{self.effect.value}" if self.value else (
            f"{self.key}:{self.effect.value}"
        )


@dataclass(frozen=True, slots=True)
class Toleration:
    """Lets a pod onto nodes with matching taints, with Kubernetes' matching rules.

    ``operator`` is ``Equal`` (key and value must match) or ``Exists`` (any value; an empty
    key then matches every taint). An empty ``effect`` matches every effect.
    """

    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: TaintEffect | None = None

    def __post_init__(self) -> None:
        if self.operator not in ("Equal", "Exists"):
            raise InvalidSpec(
                f"toleration.operator: must be Equal or Exists, got {self.operator!r}"
            )
        if self.operator == "Equal" and not self.key:
            raise InvalidSpec("toleration.key: an Equal toleration needs a key")

    def tolerates(self, taint: Taint) -> bool:
        """Whether this toleration neutralises ``taint``."""
        if self.effect is not None and self.effect != taint.effect:
            return False
        if self.operator == "Exists":
            return not self.key or self.key == taint.key
        return self.key == taint.key and self.value == taint.value


class HostPort(NamedTuple):
    """A port on the node's own address that a pod claims exclusively."""

    port: int
    protocol: str = "TCP"


class QoSClass(enum.StrEnum):
    """Kubernetes' quality-of-service classes, which order eviction under node pressure."""

    GUARANTEED = "Guaranteed"
    BURSTABLE = "Burstable"
    BEST_EFFORT = "BestEffort"


def _check_resources(owner: str, what: str, r: Resources) -> None:
    for name, value in zip(RESOURCE_NAMES, r, strict=True):
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidSpec(f"{owner}: {what}.{name} must be an integer, got {value!r}")
        if value < 0:
            raise InvalidSpec(f"{owner}: {what}.{name} must be >= 0, got {value}")


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """A machine's schedulable side: what it can give (allocatable) and who may use it.

    Identity equality: two nodes are the same only if they are the same object, because names
    are unique per cluster and comparing label maps in hot paths would be wasted work.
    """

    name: str
    allocatable: Resources
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    cordoned: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidSpec("node.name: must be a non-empty string")
        if not isinstance(self.allocatable, Resources):
            raise InvalidSpec(f"node {self.name}: allocatable must be Resources")
        _check_resources(f"node {self.name}", "allocatable", self.allocatable)


@dataclass(frozen=True, slots=True, eq=False)
class Pod:
    """What one pod asks of a node.

    ``requests`` must fit in what the node has left; ``limits`` are what the kernel enforces
    and may add up past the node's size, up to the configured overcommit ratio. A zero limit
    means "not set", as an absent limit does in Kubernetes; when a limit is set and its request
    is not, the request defaults to the limit, as Kubernetes does.
    ``anti_affinity`` holds label sets: the pod refuses a node already running a pod whose
    labels include all pairs of any one set (topology is the node itself).
    """

    name: str
    requests: Resources = field(default_factory=Resources)
    limits: Resources = field(default_factory=Resources)
    priority: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    anti_affinity: tuple[Mapping[str, str], ...] = ()
    host_ports: tuple[HostPort, ...] = ()

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidSpec("pod.name: must be a non-empty string")
        owner = f"pod {self.name}"
        if not isinstance(self.requests, Resources) or not isinstance(self.limits, Resources):
            raise InvalidSpec(f"{owner}: requests and limits must be Resources")
        _check_resources(owner, "requests", self.requests)
        _check_resources(owner, "limits", self.limits)
        # Kubernetes defaults an unset request to the limit; do it once here so every later
        # reader sees the effective request.
        req = Resources(*(r if r or not lim else lim
                          for r, lim in zip(self.requests, self.limits, strict=True)))
        if req != self.requests:
            object.__setattr__(self, "requests", req)
        for name, r, lim in zip(RESOURCE_NAMES, self.requests, self.limits, strict=True):
            if lim and r > lim:
                raise InvalidSpec(f"{owner}: requests.{name}={r} exceeds limits.{name}={lim}")
        for hp in self.host_ports:
            if not 0 < hp.port < 65536:
                raise InvalidSpec(f"{owner}: host port {hp.port} is outside 1-65535")
            if hp.protocol not in ("TCP", "UDP", "SCTP"):
                raise InvalidSpec(
                    f"{owner}: host port protocol {hp.protocol!r} is not TCP, UDP or SCTP"
                )
        for sel in self.anti_affinity:
            if not sel:
                raise InvalidSpec(f"{owner}: an anti-affinity label set must not be empty")

    @property
    def qos(self) -> QoSClass:
        """This pod's Kubernetes QoS class."""
        return qos_class(self)

    def effective_limits(self) -> Resources:
        """Limits as counted against the overcommit ratio: an unset limit counts as its request.

        Counting an unlimited pod as the whole node would make any BestEffort pod block its
        node; counting it as its request is what a cap on declared limits can honestly check.
        """
        return Resources(*(lim or r for r, lim in zip(self.requests, self.limits, strict=True)))


def qos_class(pod: Pod) -> QoSClass:
    """Kubernetes' QoS rule for a one-container pod, over cpu and memory.

    Guaranteed: cpu and memory limits set and equal to the requests. BestEffort: no cpu or
    memory request or limit at all. Everything else is Burstable.
    """
    req, lim = pod.requests, pod.limits
    if not (req.cpu_m or req.memory or lim.cpu_m or lim.memory):
        return QoSClass.BEST_EFFORT
    if lim.cpu_m and lim.memory and req.cpu_m == lim.cpu_m and req.memory == lim.memory:
        return QoSClass.GUARANTEED
    return QoSClass.BURSTABLE
