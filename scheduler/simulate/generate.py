"""Synthetic traces, so anyone can reproduce the published numbers from a seed.

Workloads (pod sizes; nodes are 32 cores / 128 GiB unless said otherwise):

- ``uniform``: cpu 0.1-4 cores and memory 128 MiB-16 GiB, independent and uniform.
- ``bimodal``: 70% small pods (0.1-0.5 core, 128 MiB-1 GiB), 30% large (4-8 cores,
  8-32 GiB): two populations that pack differently.
- ``heavy``: heavy-tailed like production traces (Google's Borg traces show most tasks tiny
  and a long tail of big ones): lognormal cpu (median 0.3 core), memory per core lognormal
  around 4 GiB with a wide spread, so some pods are cpu-heavy and some memory-heavy.
- ``mixed``: the heavy-tailed pods plus a few very large ones (40-56 cores, 160-224 GiB,
  0.2% of pods) on mixed machines: 60% 16-core, 30% 32-core, 10% 64-core. The very large
  pods fit only the biggest machines: a packer that lets small pods fill them strands them.

Arrivals are Poisson over an hour; 40% of pods run to the end, the rest for an exponential
time with a 10-minute mean. The number of pods is set so the demand at the end is ``load``
of the cluster's capacity in its scarcer resource. With ``batch > 1`` pods arrive in groups
of that size sharing one timestamp (jobs of many tasks).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from scheduler.errors import InvalidSpec
from scheduler.model import MIB, Node, Pod, Resources
from scheduler.simulate.trace import DEFAULT_PIDS, PodSpec, Trace

__all__ = ["WORKLOADS", "generate", "make_nodes"]

GIB = 1024 * MIB
HORIZON_S = 3600.0
MEAN_DURATION_S = 600.0
LONG_RUNNING = 0.4

Sizer = Callable[[random.Random], tuple[int, int]]


def _uniform(rng: random.Random) -> tuple[int, int]:
    return rng.randrange(100, 4001, 10), rng.randrange(128, 16385) * MIB


def _bimodal(rng: random.Random) -> tuple[int, int]:
    if rng.random() < 0.7:
        return rng.randrange(100, 501, 10), rng.randrange(128, 1025) * MIB
    return rng.randrange(4000, 8001, 50), rng.randrange(8192, 32769) * MIB


def _heavy(rng: random.Random) -> tuple[int, int]:
    cpu = min(16000, max(50, round(300 * math.exp(rng.gauss(0.0, 1.0)))))
    per_core = 4096 * math.exp(rng.gauss(0.0, 0.6))  # MiB per core
    mem_mib = min(64 * 1024, max(64, round(cpu / 1000 * per_core)))
    return cpu, mem_mib * MIB


def _mixed(rng: random.Random) -> tuple[int, int]:
    if rng.random() < 0.002:
        return rng.randrange(40000, 56001, 100), rng.randrange(160, 225) * GIB
    return _heavy(rng)


WORKLOADS: dict[str, Sizer] = {
    "uniform": _uniform,
    "bimodal": _bimodal,
    "heavy": _heavy,
    "mixed": _mixed,
}


def make_nodes(count: int, workload: str = "uniform") -> tuple[Node, ...]:
    """``count`` nodes: equal 32-core/128 GiB machines, or the mixed fleet for ``mixed``."""
    nodes = []
    for i in range(count):
        if workload == "mixed":
            # Deterministic mix by position: every 10 nodes are 6 small, 3 medium, 1 large.
            k = i % 10
            cores = 16 if k < 6 else 32 if k < 9 else 64
        else:
            cores = 32
        nodes.append(Node(f"node-{i:05d}", Resources(cores * 1000, cores * 4 * GIB,
                                                     DEFAULT_PIDS, 0)))
    return tuple(nodes)


def generate(
    workload: str,
    nodes: int = 1000,
    *,
    load: float = 0.7,
    seed: int = 0,
    batch: int = 1,
) -> Trace:
    """A reproducible trace of ``workload`` on ``nodes`` machines (see the module doc)."""
    try:
        sizer = WORKLOADS[workload]
    except KeyError:
        raise InvalidSpec(
            f"workload: must be one of {', '.join(WORKLOADS)}, got {workload!r}") from None
    if nodes < 1 or not 0 < load <= 1.5 or batch < 1:
        raise InvalidSpec("generate: need nodes >= 1, 0 < load <= 1.5 and batch >= 1")
    fleet = make_nodes(nodes, workload)
    rng = random.Random(f"{workload}/{nodes}/{seed}")
    # Mean pod size by sampling, to size the trace for the wanted load.
    probe = random.Random(seed ^ 0x5EED)
    sample = [sizer(probe) for _ in range(4000)]
    mean_cpu = sum(c for c, _ in sample) / len(sample)
    mean_mem = sum(m for _, m in sample) / len(sample)
    cap_cpu = sum(n.allocatable.cpu_m for n in fleet)
    cap_mem = sum(n.allocatable.memory for n in fleet)
    # Pods alive at the end: the long-running ones plus a steady state of the others.
    alive = LONG_RUNNING + (1 - LONG_RUNNING) * MEAN_DURATION_S / HORIZON_S
    count = int(load / max(mean_cpu / cap_cpu, mean_mem / cap_mem) / alive)
    specs: list[PodSpec] = []
    t = 0.0
    rate = count / HORIZON_S
    for i in range(count):
        if i % batch == 0:
            t += rng.expovariate(rate / batch)
        cpu, mem = sizer(rng)
        duration = 0.0 if rng.random() < LONG_RUNNING else max(
            1.0, round(rng.expovariate(1.0 / MEAN_DURATION_S), 1))
        pod = Pod(f"pod-{i:06d}", Resources(cpu, mem))
        specs.append(PodSpec(pod, round(t, 3), duration))
    name = f"{workload}-{nodes}" + (f"-batch{batch}" if batch > 1 else "")
    return Trace(fleet, tuple(specs), name=name)
