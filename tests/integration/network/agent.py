"""Runs a NetworkManager inside the namespace that stands for the host, driven over stdio.

The tests start it with ``ip netns exec HOSTNS python3 agent.py STATE_DIR UPSTREAM`` and send
one JSON request per line; this is the daemon's position (it owns the manager and its DNS
threads), so killing and restarting the agent is a daemon restart.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import traceback
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from llmos.network import NetworkError, NetworkManager
from llmos.network.ports import PortBinding


def plain(value: Any) -> Any:
    """JSON-ready form of the manager's return values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, IPv4Address | IPv4Network):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


class Agent:
    def __init__(self, state_dir: str, upstream: str | None) -> None:
        upstreams = [(upstream, 53)] if upstream else []
        self.mgr = NetworkManager(state_dir, dns_upstreams=upstreams)

    def op_state(self) -> dict[str, Any]:
        """Internals the tests assert on: allocations and DNS names per network."""
        out: dict[str, Any] = {}
        dns = self.mgr._dns
        for name, rec in self.mgr._state.networks.items():
            zone = dns.zone(rec.gateway) if dns is not None else None
            out[name] = {
                "bridge": rec.bridge,
                "allocated": sorted(str(a) for a in rec.ipam.allocated),
                "endpoints": sorted(rec.endpoints),
                "dns_names": sorted(zone.names) if zone is not None else [],
            }
        return out

    def op_cycles(
        self, network: str, netns: str, count: int, publish_every: int = 0
    ) -> dict[str, Any]:
        """connect (+ publish) + disconnect ``count`` times; returns the elapsed seconds."""
        start = time.monotonic()
        for i in range(count):
            cid = f"cycle{i:06d}"
            self.mgr.connect(network, cid, netns, name=f"c{i}", aliases=[f"a{i}"])
            if publish_every and i % publish_every == 0:
                self.mgr.publish(cid, ["80"])
            self.mgr.disconnect_all(cid)
        return {"seconds": time.monotonic() - start}

    def op_publish(self, container_id: str, ports: list[str], network: str | None = None) -> Any:
        return self.mgr.publish(container_id, ports, network)

    def op_unpublish(self, container_id: str) -> None:
        self.mgr.unpublish(container_id)

    def op_ports(self, container_id: str | None = None) -> list[PortBinding]:
        return self.mgr.ports(container_id)

    def dispatch(self, op: str, kwargs: dict[str, Any]) -> Any:
        method = getattr(self, f"op_{op}", None)
        if method is not None:
            return method(**kwargs)
        return getattr(self.mgr, op)(**kwargs)


def main() -> int:
    state_dir = sys.argv[1]
    upstream = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
    agent = Agent(state_dir, upstream)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "exit":
            break
        try:
            result = agent.dispatch(req["op"], req.get("kwargs", {}))
            reply: dict[str, Any] = {"ok": plain(result)}
        except NetworkError as exc:
            reply = {"error": type(exc).__name__, "message": str(exc)}
        except Exception as exc:
            reply = {
                "error": type(exc).__name__,
                "message": str(exc),
                "traceback": traceback.format_exc(),
            }
        print(json.dumps(reply), flush=True)
    agent.mgr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
