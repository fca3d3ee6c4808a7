from __future__ import annotations

import json
import os
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from llmos.network.ipam import NetworkIpam
from llmos.network.ports import PortBinding
from llmos.network.store import (
    EndpointRecord,
    NetworkRecord,
    PublishedRecord,
    State,
    StateStore,
    atomic_write_json,
)


def sample() -> State:
    ipam = NetworkIpam(IPv4Network("172.30.0.0/24"), IPv4Address("172.30.0.1"))
    ip = ipam.allocate()
    ep = EndpointRecord(
        "c1", "web", ["www"], ip, "02:42:ac:1e:00:02", "eth0", "llvabc", "/proc/1/ns/net", True, 1
    )
    net = NetworkRecord("f" * 64, "front", "llmos-fffffffff", False, False, 1.5, ipam, {"c1": ep})
    pub = PublishedRecord("c1", "front", ip, PortBinding(80, 8080))
    return State({"front": net}, [pub], seq=1)


def test_round_trip(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path / "net"))
    assert store.load() == State()
    state = sample()
    store.save(state)
    assert store.load() == state
    data = json.loads((tmp_path / "net" / "network.json").read_text())
    assert data["version"] == 1 and data["networks"]["front"]["ipam"]["allocated"] == ["172.30.0.2"]
    store.delete()
    store.delete()
    assert store.load() == State()


def test_atomic_write_leaves_no_temp_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    atomic_write_json(str(path), {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(str(path), {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}  # the old file, whole
    assert os.listdir(tmp_path) == ["x.json"]


def test_unknown_version_refused() -> None:
    with pytest.raises(ValueError, match="format 99"):
        State.from_dict({"version": 99})
