"""llmos networking: bridges, veth endpoints, IPAM, nftables NAT/ports and embedded DNS.

``NetworkManager`` (manager.py) is the entry point; the other modules are the pure planning
pieces (ipam, ports, firewall.build_ruleset, dnsmsg, containerfiles, modes) and the kernel
executors (bridge, links, firewall.apply, dns.DnsResponder).
"""

from llmos.network.errors import (
    AddressUnavailable,
    EndpointExists,
    EndpointNotFound,
    FirewallError,
    InvalidArgument,
    InvalidPortSpec,
    LinkError,
    NetworkError,
    NetworkExists,
    NetworkInUse,
    NetworkNotFound,
    PoolExhausted,
    PortAlreadyPublished,
    SubnetOverlap,
)
from llmos.network.manager import Endpoint, NetworkInfo, NetworkManager, RestoreReport
from llmos.network.modes import NetworkModePlan, plan_network_mode
from llmos.network.ports import PortBinding, PortSpec, parse_port_spec

__all__ = [
    "AddressUnavailable",
    "Endpoint",
    "EndpointExists",
    "EndpointNotFound",
    "FirewallError",
    "InvalidArgument",
    "InvalidPortSpec",
    "LinkError",
    "NetworkError",
    "NetworkExists",
    "NetworkInUse",
    "NetworkInfo",
    "NetworkManager",
    "NetworkModePlan",
    "NetworkNotFound",
    "PoolExhausted",
    "PortAlreadyPublished",
    "PortBinding",
    "PortSpec",
    "RestoreReport",
    "SubnetOverlap",
    "parse_port_spec",
    "plan_network_mode",
]
