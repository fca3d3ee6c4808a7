"""IP address management: subnets for networks, addresses for endpoints.

Pure code (no kernel, no files): the manager persists ``NetworkIpam.to_dict()`` in its state
file (see ``store.py``) so that addresses survive a daemon restart.

Address ranges, and why:

* ``bridge`` (the default network, bridge ``llmos0``) uses ``172.29.0.0/16``, and user networks
  are carved as /24s out of ``172.30.0.0/16`` (256 networks before the pool runs dry; a
  /24 = 253 containers each, which is what Docker's users meet in practice).
* Both sit at the top of 172.16.0.0/12, which Docker fills from the bottom (172.17 for
  ``docker0``, then 172.18, 172.19, ... for user networks), and away from podman's
  10.88.0.0/16 + 10.89.0.0/16 and the 192.168.x/10.x ranges home and office LANs use, so llmos
  can coexist with both engines on one host.
* Whatever the pool, the manager passes the host's own routes as ``taken`` so that an automatic
  choice never shadows a network the host can already reach (Docker does the same).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from llmos.network.errors import AddressUnavailable, InvalidArgument, PoolExhausted

DEFAULT_BRIDGE_SUBNET = IPv4Network("172.29.0.0/16")
DEFAULT_POOL = IPv4Network("172.30.0.0/16")
DEFAULT_POOL_PREFIXLEN = 24

# A network needs a gateway and at least one container address besides network/broadcast.
_MAX_PREFIXLEN = 30


def parse_subnet(text: str) -> IPv4Network:
    """Parse a ``--subnet`` value, refusing host bits so a typo is not silently masked."""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise InvalidArgument(f"subnet {text!r}: not a CIDR subnet ({exc})") from None
    if not isinstance(net, IPv4Network):
        raise InvalidArgument(f"subnet {text}: only IPv4 subnets are supported")
    if str(net.network_address) != text.split("/", 1)[0]:
        raise InvalidArgument(f"subnet {text}: host bits set; did you mean {net}?")
    if net.prefixlen > _MAX_PREFIXLEN:
        raise InvalidArgument(
            f"subnet {text}: too small, need at least a /{_MAX_PREFIXLEN} "
            "(gateway plus one container)"
        )
    return net


def parse_address(text: str, what: str = "address") -> IPv4Address:
    """Parse one IPv4 address, naming the field in the error."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"{what} {text!r}: not an IP address") from None
    if not isinstance(addr, IPv4Address):
        raise InvalidArgument(f"{what} {text}: only IPv4 is supported")
    return addr


def default_gateway(subnet: IPv4Network) -> IPv4Address:
    """The first host address, as Docker does, so ``.1`` is the gateway users expect."""
    return subnet.network_address + 1


def check_gateway(subnet: IPv4Network, gateway: IPv4Address) -> None:
    """A gateway must be a usable host address of its subnet."""
    if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument(f"gateway {gateway}: not a host address of subnet {subnet}")


def find_overlap(
    subnet: IPv4Network, existing: Mapping[str, IPv4Network]
) -> tuple[str, IPv4Network] | None:
    """The first existing network (name, subnet) that shares an address with ``subnet``."""
    for name, other in sorted(existing.items()):
        if subnet.overlaps(other):
            return name, other
    return None


def pick_subnet(
    taken: Iterable[IPv4Network],
    pool: IPv4Network = DEFAULT_POOL,
    prefixlen: int = DEFAULT_POOL_PREFIXLEN,
) -> IPv4Network:
    """The lowest /prefixlen of ``pool`` that overlaps nothing in ``taken``.

    Lowest-first keeps choices deterministic (tests, and users reading ``network ls``).
    """
    taken_list = list(taken)
    for candidate in pool.subnets(new_prefix=prefixlen):
        if not any(candidate.overlaps(t) for t in taken_list):
            return candidate
    raise PoolExhausted(
        f"default address pool {pool}: no free /{prefixlen} left; pass --subnet explicitly"
    )


@dataclass
class NetworkIpam:
    """Addresses of one network.

    Allocation is sequential from a cursor that wraps (as Docker's allocator does) rather than
    lowest-free: an address released a moment ago is not handed out again at once, so stale
    ARP entries and conntrack flows of the old container do not hit the new one.
    """

    subnet: IPv4Network
    gateway: IPv4Address
    allocated: set[IPv4Address] = field(default_factory=set)
    cursor: IPv4Address | None = None

    def __post_init__(self) -> None:
        check_gateway(self.subnet, self.gateway)

    def _usable(self, addr: IPv4Address) -> bool:
        return (
            addr in self.subnet
            and addr != self.subnet.network_address
            and addr != self.subnet.broadcast_address
            and addr != self.gateway
        )

    @property
    def capacity(self) -> int:
        """Container addresses the subnet can hold (minus network, broadcast, gateway)."""
        return self.subnet.num_addresses - 3

    def allocate(self, requested: IPv4Address | None = None) -> IPv4Address:
        """Reserve ``requested`` or the next free address after the cursor."""
        if requested is not None:
            if requested == self.gateway:
                raise AddressUnavailable(
                    f"address {requested}: is the gateway of network {self.subnet}"
                )
            if not self._usable(requested):
                raise AddressUnavailable(
                    f"address {requested}: not a usable host address of subnet {self.subnet}"
                )
            if requested in self.allocated:
                raise AddressUnavailable(f"address {requested}: already in use")
            self.allocated.add(requested)
            return requested
        if len(self.allocated) >= self.capacity:
            raise PoolExhausted(f"subnet {self.subnet}: no free address left")
        first = int(self.subnet.network_address) + 1
        last = int(self.subnet.broadcast_address) - 1
        start = int(self.cursor) + 1 if self.cursor is not None else first
        span = last - first + 1
        for step in range(span):
            value = first + (start - first + step) % span
            addr = IPv4Address(value)
            if addr != self.gateway and addr not in self.allocated:
                self.allocated.add(addr)
                self.cursor = addr
                return addr
        raise PoolExhausted(f"subnet {self.subnet}: no free address left")  # pragma: no cover

    def release(self, addr: IPv4Address) -> None:
        """Give an address back; releasing a free address is a no-op (idempotent cleanup)."""
        self.allocated.discard(addr)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the state file."""
        return {
            "subnet": str(self.subnet),
            "gateway": str(self.gateway),
            "allocated": sorted(str(a) for a in self.allocated),
            "cursor": str(self.cursor) if self.cursor is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NetworkIpam:
        """Inverse of ``to_dict``; tolerant of a missing cursor (older state files)."""
        cursor = data.get("cursor")
        return cls(
            subnet=IPv4Network(data["subnet"]),
            gateway=IPv4Address(data["gateway"]),
            allocated={IPv4Address(a) for a in data.get("allocated", [])},
            cursor=IPv4Address(cursor) if cursor else None,
        )


def mac_for_ip(addr: IPv4Address) -> str:
    """Docker's scheme: 02:42 (locally administered) followed by the four address bytes.

    Deterministic, so a container that gets the same address back gets the same MAC and
    neighbours' ARP caches stay right, and unique within a network because addresses are.
    """
    return "02:42:" + ":".join(f"{b:02x}" for b in addr.packed)
