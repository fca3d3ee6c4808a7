"""Values the NetworkManager hands out, and the host-port probe it uses before publishing."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from llmos.network.errors import InvalidArgument, PortAlreadyPublished
from llmos.network.ports import PortBinding


@dataclass(frozen=True)
class Endpoint:
    """A container's attachment to one network, as the runtime and ``inspect`` need it."""

    network: str
    container_id: str
    ip: IPv4Address
    prefixlen: int
    mac: str
    gateway: IPv4Address
    ifname: str
    host_veth: str


@dataclass(frozen=True)
class NetworkInfo:
    id: str
    name: str
    bridge: str
    subnet: IPv4Network
    gateway: IPv4Address
    internal: bool
    default: bool
    containers: tuple[str, ...]


@dataclass
class RestoreReport:
    """What ``restore()`` found and mended, for the daemon's log."""

    networks: list[str] = field(default_factory=list)
    kept_endpoints: list[tuple[str, str]] = field(default_factory=list)
    removed_endpoints: list[tuple[str, str]] = field(default_factory=list)
    removed_links: list[str] = field(default_factory=list)
    removed_ports: list[str] = field(default_factory=list)


def host_port_free(binding: PortBinding) -> bool:
    """Try to bind the host port, so we do not silently shadow a host service with DNAT."""
    kind = socket.SOCK_STREAM if binding.proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            # TIME_WAIT leftovers must not count as "in use"; a listener still does
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((binding.host_ip, binding.host_port))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise InvalidArgument(
                    f"port {binding.describe()}: {binding.host_ip} is not an address of this host"
                ) from None
            return False
    return True


def hold_host_port(binding: PortBinding) -> socket.socket:
    """Bind the host port (and listen, for TCP) for as long as it is published.

    Docker's docker-proxy and podman's conmon hold published ports the same way: a host
    service started later then fails to bind with "address in use" instead of being silently
    shadowed by the DNAT rule. Nothing ever reaches this socket: the DNAT rewrites the
    traffic before local delivery. Not inherited by children (Python's sockets are CLOEXEC).
    """
    kind = socket.SOCK_STREAM if binding.proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            # TIME_WAIT leftovers must not count as "in use"; a listener still does
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((binding.host_ip, binding.host_port))
        if kind == socket.SOCK_STREAM:
            sock.listen(1)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRNOTAVAIL:
            raise InvalidArgument(
                f"port {binding.describe()}: {binding.host_ip} is not an address of this host"
            ) from None
        raise PortAlreadyPublished(
            f"host port {binding.host_ip}:{binding.host_port}/{binding.proto}: already in use "
            f"on the host ({exc.strerror})"
        ) from None
    return sock
