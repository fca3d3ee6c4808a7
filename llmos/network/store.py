"""The network layer's persisted state: networks, their IPAM, endpoints, published ports.

One JSON file (``<state_dir>/network.json``) written tmp + fsync + rename, so a crash leaves
either the old or the new state, never a torn file. The kernel objects (bridges, veths, nft
table) are derived from it by ``NetworkManager.restore()``. JSON rather than SQLite: the state
is small (hundreds of endpoints), read once at start, and humans debugging a host can read it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from llmos.network.ipam import NetworkIpam
from llmos.network.ports import PortBinding

STATE_FILE = "network.json"
FORMAT_VERSION = 1


@dataclass
class EndpointRecord:
    container_id: str
    name: str
    aliases: list[str]
    ip: IPv4Address
    mac: str
    ifname: str
    host_veth: str
    netns: str
    default_route: bool
    seq: int  # connection order: the lowest non-internal endpoint carries published ports

    def to_dict(self) -> dict[str, Any]:
        return {
            "container_id": self.container_id,
            "name": self.name,
            "aliases": list(self.aliases),
            "ip": str(self.ip),
            "mac": self.mac,
            "ifname": self.ifname,
            "host_veth": self.host_veth,
            "netns": self.netns,
            "default_route": self.default_route,
            "seq": self.seq,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EndpointRecord:
        return cls(
            container_id=d["container_id"],
            name=d["name"],
            aliases=list(d.get("aliases", [])),
            ip=IPv4Address(d["ip"]),
            mac=d["mac"],
            ifname=d["ifname"],
            host_veth=d["host_veth"],
            netns=d.get("netns", ""),
            default_route=bool(d.get("default_route", False)),
            seq=int(d.get("seq", 0)),
        )


@dataclass
class NetworkRecord:
    id: str
    name: str
    bridge: str
    internal: bool
    default: bool
    created: float
    ipam: NetworkIpam
    endpoints: dict[str, EndpointRecord] = field(default_factory=dict)

    @property
    def subnet(self) -> IPv4Network:
        return self.ipam.subnet

    @property
    def gateway(self) -> IPv4Address:
        return self.ipam.gateway

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "bridge": self.bridge,
            "internal": self.internal,
            "default": self.default,
            "created": self.created,
            "ipam": self.ipam.to_dict(),
            "endpoints": {cid: ep.to_dict() for cid, ep in sorted(self.endpoints.items())},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkRecord:
        return cls(
            id=d["id"],
            name=d["name"],
            bridge=d["bridge"],
            internal=bool(d.get("internal", False)),
            default=bool(d.get("default", False)),
            created=float(d.get("created", 0.0)),
            ipam=NetworkIpam.from_dict(d["ipam"]),
            endpoints={
                cid: EndpointRecord.from_dict(e) for cid, e in d.get("endpoints", {}).items()
            },
        )


@dataclass
class PublishedRecord:
    container_id: str
    network: str
    container_ip: IPv4Address
    binding: PortBinding

    def to_dict(self) -> dict[str, Any]:
        return {
            "container_id": self.container_id,
            "network": self.network,
            "container_ip": str(self.container_ip),
            "binding": self.binding.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PublishedRecord:
        return cls(
            container_id=d["container_id"],
            network=d["network"],
            container_ip=IPv4Address(d["container_ip"]),
            binding=PortBinding.from_dict(d["binding"]),
        )


@dataclass
class State:
    networks: dict[str, NetworkRecord] = field(default_factory=dict)
    published: list[PublishedRecord] = field(default_factory=list)
    seq: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "seq": self.seq,
            "networks": {n: r.to_dict() for n, r in sorted(self.networks.items())},
            "published": [p.to_dict() for p in self.published],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> State:
        if d.get("version", FORMAT_VERSION) != FORMAT_VERSION:
            raise ValueError(f"network state format {d.get('version')} is not supported")
        return cls(
            networks={n: NetworkRecord.from_dict(r) for n, r in d.get("networks", {}).items()},
            published=[PublishedRecord.from_dict(p) for p in d.get("published", [])],
            seq=int(d.get("seq", 0)),
        )


def atomic_write_json(path: str, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` so readers see the old or the new file, whole."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".network.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class StateStore:
    """Load/save ``State`` in a directory."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, STATE_FILE)

    def load(self) -> State:
        try:
            with open(self.path, encoding="utf-8") as fh:
                return State.from_dict(json.load(fh))
        except FileNotFoundError:
            return State()

    def save(self, state: State) -> None:
        atomic_write_json(self.path, state.to_dict())

    def delete(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
