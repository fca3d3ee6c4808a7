"""The model: validation with useful messages, Kubernetes' QoS and toleration rules."""

from __future__ import annotations

import pytest

from scheduler import (
    MIB,
    FakeClock,
    InvalidSpec,
    Pod,
    QoSClass,
    Resources,
    SchedulerError,
    Taint,
    TaintEffect,
    Toleration,
    qos_class,
)
from tests.unit.scheduler.helpers import node, pod


def test_qos_classes_follow_kubernetes() -> None:
    assert qos_class(pod("be", 0, 0)) is QoSClass.BEST_EFFORT
    assert qos_class(pod("g", 500, 256, limit_cpu=500, limit_mem_mib=256)) is QoSClass.GUARANTEED
    assert qos_class(pod("b", 500, 256, limit_cpu=1000, limit_mem_mib=256)) is QoSClass.BURSTABLE
    assert qos_class(pod("b2", 500, 256)) is QoSClass.BURSTABLE
    # Limits only: requests default to the limits, so the pod is Guaranteed.
    only_limits = pod("g2", 0, 0, limit_cpu=300, limit_mem_mib=64)
    assert only_limits.requests == Resources(300, 64 * MIB)
    assert only_limits.qos is QoSClass.GUARANTEED


def test_validation_names_what_is_wrong() -> None:
    with pytest.raises(InvalidSpec, match=r"pod p: requests.cpu must be >= 0"):
        Pod("p", Resources(-1, 0))
    with pytest.raises(InvalidSpec, match=r"requests.memory=.* exceeds limits.memory"):
        pod("p", 100, 512, limit_mem_mib=256)
    with pytest.raises(InvalidSpec, match="host port 70000"):
        pod("p", ports=(70000,))
    with pytest.raises(InvalidSpec, match=r"node\.name"):
        node("")
    with pytest.raises(InvalidSpec, match="Equal or Exists"):
        Toleration("k", operator="In")
    assert issubclass(InvalidSpec, SchedulerError)


def test_toleration_matching() -> None:
    t = Taint("gpu", "yes", TaintEffect.NO_SCHEDULE)
    assert Toleration("gpu", "Equal", "yes").tolerates(t)
    assert not Toleration("gpu", "Equal", "no").tolerates(t)
    assert Toleration("gpu", "Exists").tolerates(t)
    assert Toleration(operator="Exists").tolerates(t)  # empty key: everything
    assert not Toleration("gpu", "Exists", effect=TaintEffect.NO_EXECUTE).tolerates(t)


def test_effective_limits_count_unset_as_request() -> None:
    p = pod("p", 200, 100, limit_cpu=400)
    assert p.effective_limits() == Resources(400, 100 * MIB)


def test_fake_clock_jumps_and_refuses_going_back() -> None:
    c = FakeClock(10.0)
    c.jump(5)
    assert c.now() == 15.0
    c.set(100)
    assert c.now() == 100.0
    with pytest.raises(ValueError):
        c.jump(-1)
    with pytest.raises(ValueError):
        c.set(50)
