"""Resources.from_oci: every runtime-spec field read, every mistake named."""

from __future__ import annotations

from typing import Any

import pytest

from llmos.cgroups import (
    DeviceRule,
    InvalidResources,
    NetworkPriority,
    RdmaLimit,
    Resources,
    ThrottleDevice,
    WeightDevice,
)

FULL: dict[str, Any] = {
    "devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 136, "access": "rw"},
    ],
    "memory": {
        "limit": 536870912,
        "reservation": 536870912,
        "swap": 1073741824,
        "kernel": -1,
        "kernelTCP": -1,
        "swappiness": 0,
        "disableOOMKiller": False,
        "useHierarchy": True,
        "checkBeforeUpdate": True,
    },
    "cpu": {
        "shares": 1024,
        "quota": 1000000,
        "burst": 1000,
        "period": 500000,
        "realtimeRuntime": 950000,
        "realtimePeriod": 1000000,
        "cpus": "2-3",
        "mems": "0-7",
        "idle": 0,
    },
    "pids": {"limit": 32771},
    "blockIO": {
        "weight": 10,
        "leafWeight": 10,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 500, "leafWeight": 300}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}],
    },
    "hugepageLimits": [{"pageSize": "2MB", "limit": 9223372036854771712}],
    "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
    "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
    "unified": {"io.max": "8:0 rbps=1000", "memory.high": "1000"},
}


def test_the_runtime_spec_example_is_read_completely() -> None:
    r = Resources.from_oci(FULL)
    assert r.devices == [
        DeviceRule(False, "a", None, None, "rwm"),
        DeviceRule(True, "c", 1, 3, "rwm"),
        DeviceRule(True, "c", 136, None, "rw"),
    ]
    assert (r.memory_limit, r.memory_reservation, r.memory_swap) == (512 << 20, 512 << 20, 1 << 30)
    assert (r.memory_kernel, r.memory_kernel_tcp, r.memory_swappiness) == (-1, -1, 0)
    assert r.memory_disable_oom_killer is False and r.memory_use_hierarchy is True
    assert r.memory_check_before_update is True
    assert (r.cpu_shares, r.cpu_quota, r.cpu_period, r.cpu_burst) == (1024, 1000000, 500000, 1000)
    assert (r.cpu_realtime_runtime, r.cpu_realtime_period, r.cpu_idle) == (950000, 1000000, 0)
    assert (r.cpuset_cpus, r.cpuset_mems) == ("2-3", "0-7")
    assert r.pids_limit == 32771
    assert (r.blkio_weight, r.blkio_leaf_weight) == (10, 10)
    assert r.blkio_weight_devices == [WeightDevice(8, 0, 500, 300)]
    assert r.blkio_throttle_read_bps == [ThrottleDevice(8, 0, 600)]
    assert r.blkio_throttle_write_iops == [ThrottleDevice(8, 16, 300)]
    assert r.blkio_throttle_write_bps == [] and r.blkio_throttle_read_iops == []
    assert r.hugepage_limits == [("2MB", 9223372036854771712)]
    assert r.network_class_id == 1048577
    assert r.network_priorities == [NetworkPriority("eth0", 500)]
    assert r.rdma == {"mlx5_1": RdmaLimit(3, 10000)}
    assert r.unified == {"io.max": "8:0 rbps=1000", "memory.high": "1000"}


def test_empty_and_null_mean_nothing_asked() -> None:
    assert Resources.from_oci({}) == Resources()
    assert Resources.from_oci({"memory": None, "cpu": {"shares": None}}) == Resources()


def test_docker_unset_swappiness_is_unset() -> None:
    assert Resources.from_oci({"memory": {"swappiness": -1}}).memory_swappiness is None
    assert Resources.from_oci({"memory": {"swappiness": 2**64 - 1}}).memory_swappiness is None


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"memroy": {}}, "linux.resources.memroy: unknown field"),
        ({"memory": {"limt": 1}}, "linux.resources.memory.limt: unknown field"),
        ({"memory": {"limit": "1g"}}, "linux.resources.memory.limit: must be an integer"),
        ({"memory": {"limit": True}}, "linux.resources.memory.limit: must be an integer"),
        ({"memory": {"limit": -2}}, "linux.resources.memory.limit: must be >= -1"),
        ({"memory": {"swappiness": 101}}, "swappiness: must be 0..100"),
        ({"memory": []}, "linux.resources.memory: must be an object"),
        ({"cpu": {"cpus": 3}}, "linux.resources.cpu.cpus: must be a string"),
        ({"cpu": {"idle": 2}}, "linux.resources.cpu.idle: must be 0 or 1"),
        ({"cpu": {"shares": -1}}, "linux.resources.cpu.shares: must be >= 0"),
        ({"pids": {"limit": 1.5}}, "linux.resources.pids.limit: must be an integer"),
        ({"devices": [{"type": "c"}]}, r"linux.resources.devices\[0\].allow: required"),
        ({"devices": [{"allow": True, "type": "x"}]}, r"devices\[0\].type: must be one of"),
        ({"devices": [{"allow": True, "access": "rx"}]}, r"devices\[0\].access: must be"),
        ({"devices": {"allow": True}}, "linux.resources.devices: must be a list"),
        ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, r"\[0\].pageSize: must look"),
        ({"blockIO": {"weightDevice": [{"major": 8}]}}, r"weightDevice\[0\].minor: must be"),
        (
            {"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1, "x": 1}]}},
            r"throttleReadBpsDevice\[0\].x: unknown field",
        ),
        ({"unified": {"../memory.max": "1"}}, "must be a cgroup file name"),
        ({"unified": {"memory.max": 1}}, r"unified.memory.max: must be a string"),
        ({"rdma": {"mlx": {"hcaHandles": "3"}}}, r"rdma.mlx.hcaHandles: must be an integer"),
    ],
)
def test_mistakes_name_the_field(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidResources, match=message):
        Resources.from_oci(raw)


def test_device_rule_lines() -> None:
    assert DeviceRule(False).v1_line() == "a *:* rwm"
    assert DeviceRule(True, "c", 1, -1, "r").v1_line() == "c 1:* r"
    assert RdmaLimit(hca_handles=2).line("mlx4_0") == "mlx4_0 hca_handle=2 hca_object=max"
