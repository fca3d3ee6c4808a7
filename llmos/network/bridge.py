"""Linux bridges, one per network, with the gateway address on them (pyroute2).

Naming: ``llmos0`` for the default network, ``llmos-<9 hex of the network id>`` for user
networks (15 characters, the kernel limit), so ``ip link`` shows whose bridge it is and
``restore()`` can tell llmos bridges that belong to no network.

The bridge gets a fixed MAC derived from the gateway address: a Linux bridge otherwise takes
the lowest MAC among its ports, which changes as containers come and go and makes every
container's cached gateway ARP entry wrong for a moment.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from llmos.network.errors import LinkError
from llmos.network.ipam import mac_for_ip
from llmos.network.links import HOST_VETH_PREFIX

DEFAULT_BRIDGE = "llmos0"
BRIDGE_PREFIX = "llmos-"


def bridge_name(network_id: str, default: bool = False) -> str:
    """``llmos0`` or ``llmos-<shortid>``."""
    return DEFAULT_BRIDGE if default else (BRIDGE_PREFIX + network_id)[:15]


def is_llmos_bridge(ifname: str) -> bool:
    return ifname == DEFAULT_BRIDGE or ifname.startswith(BRIDGE_PREFIX)


def write_sysctl(path: str, value: str) -> None:
    """Write a /proc/sys value of the calling thread's network namespace."""
    try:
        with open(path, "w", encoding="ascii") as fh:
            fh.write(value)
    except OSError as exc:
        raise LinkError(f"{path}: cannot write {value!r}: {exc.strerror}") from None


def read_sysctl(path: str) -> str:
    with open(path, encoding="ascii") as fh:
        return fh.read().strip()


def enable_forwarding() -> None:
    """Forwarding in this namespace: nothing leaves a bridge without it (Docker sets it too)."""
    if read_sysctl("/proc/sys/net/ipv4/ip_forward") != "1":
        write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")


@dataclass(frozen=True)
class BridgeInfo:
    name: str
    index: int
    addresses: tuple[str, ...]


def get_bridge(ipr: Any, name: str) -> BridgeInfo | None:
    found = ipr.link_lookup(ifname=name)
    if not found:
        return None
    idx = int(found[0])
    addrs = tuple(
        f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=idx, family=2)
    )
    return BridgeInfo(name, idx, addrs)


def ensure_bridge(ipr: Any, name: str, subnet: IPv4Network, gateway: IPv4Address) -> int:
    """Create (or repair) the bridge: gateway address, fixed MAC, up, route_localnet.

    Idempotent, so ``restore()`` can call it for every network whatever survived.
    """
    created = False
    found = ipr.link_lookup(ifname=name)
    if not found:
        try:
            ipr.link("add", ifname=name, kind="bridge", address=mac_for_ip(gateway))
        except NetlinkError as exc:
            raise LinkError(f"bridge {name}: cannot create: {exc}") from None
        created = True
        found = ipr.link_lookup(ifname=name)
    idx = int(found[0])
    try:
        want = f"{gateway}/{subnet.prefixlen}"
        have = {
            f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=idx, family=2)
        }
        if want not in have:
            ipr.addr("add", index=idx, address=str(gateway), prefixlen=subnet.prefixlen)
        ipr.link("set", index=idx, state="up")
        # 127.0.0.1 -> published port: see firewall.py for why this is set, on our bridge only
        write_sysctl(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1")
    except (NetlinkError, LinkError) as exc:
        if created:
            delete_bridge(ipr, name)
        raise LinkError(
            f"bridge {name}: cannot configure {gateway}/{subnet.prefixlen}: {exc}"
        ) from None
    return idx


def delete_bridge(ipr: Any, name: str) -> bool:
    """Remove a bridge (its ports are detached by the kernel); False if already gone."""
    found = ipr.link_lookup(ifname=name)
    if not found:
        return False
    try:
        ipr.link("del", index=found[0])
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return False
        raise LinkError(f"bridge {name}: cannot delete: {exc}") from None
    return True


def list_llmos_links(ipr: Any) -> dict[str, int]:
    """name -> index of every llmos bridge and host-side veth in this namespace."""
    result: dict[str, int] = {}
    for link in ipr.get_links():
        name = str(link.get("ifname"))
        if is_llmos_bridge(name) or name.startswith(HOST_VETH_PREFIX):
            result[name] = int(link["index"])
    return result


def bridge_ports(ipr: Any, bridge_index: int) -> list[str]:
    """Names of the links enslaved to a bridge."""
    return [
        str(link.get("ifname"))
        for link in ipr.get_links()
        if link.get("IFLA_MASTER") == bridge_index
    ]


__all__ = [
    "BRIDGE_PREFIX",
    "DEFAULT_BRIDGE",
    "BridgeInfo",
    "bridge_name",
    "bridge_ports",
    "delete_bridge",
    "enable_forwarding",
    "ensure_bridge",
    "get_bridge",
    "is_llmos_bridge",
    "list_llmos_links",
]
