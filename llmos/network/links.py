"""veth endpoints and network-namespace plumbing, with pyroute2.

Entering a container's namespace: pyroute2's own ``IPRoute(netns=...)`` forks a helper process
per socket (and creates the namespace if the name is unknown), which is slow for 500 cycles
and wrong for a path that has gone away. Instead ``run_in_netns`` runs a function on a
short-lived thread that ``setns(2)``-es into the namespace: network namespaces are per thread,
so the daemon's other threads never change namespace, and a thread that exits takes its
namespace membership with it (no "switch back" step that could fail and strand a thread).

An endpoint is made in one trip into the container namespace: the veth pair is created there
(``ethN`` stays, the host side is born directly in the host namespace through its fd), then
``ethN`` gets its MAC, address, ``up`` and the default route, and ``lo`` is brought up. The
host side is then enslaved to the bridge. A failure removes the pair, which removes both ends.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from llmos.network.errors import InvalidArgument, LinkError

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"
HOST_VETH_PREFIX = "llv"
IFNAMSIZ = 15  # usable characters (16 with the NUL)

_libc = ctypes.CDLL(None, use_errno=True)


def netns_path(netns: str) -> str:
    """A namespace given as a path (``/proc/<pid>/ns/net``) or an ``ip netns`` name."""
    if not netns:
        raise InvalidArgument("netns: empty")
    if "/" in netns:
        return netns
    return os.path.join(NETNS_RUN_DIR, netns)


def open_netns(netns: str) -> int:
    """An fd for the namespace, with an error that names it when it does not exist."""
    path = netns_path(netns)
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise LinkError(f"netns {netns}: cannot open {path}: {exc.strerror}") from None


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def run_in_netns(netns_fd: int, fn: Callable[[], T]) -> T:
    """Run ``fn`` on a fresh thread inside the namespace ``netns_fd`` and return its result."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            _setns(netns_fd)
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="llmos-netns")
    thread.start()
    thread.join()
    if "error" in box:
        err = box["error"]
        if isinstance(err, OSError) and err.errno == errno.EINVAL:
            raise LinkError("setns: the path is not a network namespace") from err
        raise err
    result: T = box["result"]
    return result


def host_veth_name(network_id: str, container_id: str) -> str:
    """Deterministic host-side name, so restore() can find a container's veth again."""
    digest = hashlib.sha256(f"{network_id}/{container_id}".encode()).hexdigest()
    return (HOST_VETH_PREFIX + digest)[:IFNAMSIZ]


def _lookup(ipr: Any, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return int(found[0]) if found else None


def link_names(ipr: Any) -> list[str]:
    """Names of all links in ``ipr``'s namespace."""
    return [str(link.get("ifname")) for link in ipr.get_links()]


@dataclass(frozen=True)
class EndpointSpec:
    """Everything needed to wire one container into one network."""

    host_ifname: str
    address: IPv4Address
    subnet: IPv4Network
    gateway: IPv4Address
    mac: str
    bridge_index: int
    default_route: bool
    ifname: str | None = None  # None: the first free ethN in the container
    mtu: int = 1500


def _next_ifname(names: list[str]) -> str:
    taken = set(names)
    n = 0
    while f"eth{n}" in taken:
        n += 1
    return f"eth{n}"


def create_endpoint(host_ipr: Any, container_netns: str, spec: EndpointSpec) -> tuple[str, bool]:
    """Create and configure the veth pair.

    Returns the interface name inside the container and whether the default route was added.

    Either the endpoint is complete or nothing is left behind.
    """
    host_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        nsfd = open_netns(container_netns)
        try:

            def inside() -> tuple[str, bool]:
                with IPRoute() as ipr:
                    ifname = spec.ifname or _next_ifname(link_names(ipr))
                    step = f"creating veth {ifname}/{spec.host_ifname}"
                    try:
                        ipr.link(
                            "add",
                            ifname=ifname,
                            kind="veth",
                            address=spec.mac,
                            mtu=spec.mtu,
                            peer={
                                "ifname": spec.host_ifname,
                                "net_ns_fd": host_fd,
                                "mtu": spec.mtu,
                            },
                        )
                        routed = False
                        try:
                            step = f"looking up {ifname}"
                            idx = _lookup(ipr, ifname)
                            if idx is None:
                                raise LinkError(f"{ifname}: vanished right after creation")
                            step = f"adding {spec.address}/{spec.subnet.prefixlen} to {ifname}"
                            ipr.addr(
                                "add",
                                index=idx,
                                address=str(spec.address),
                                prefixlen=spec.subnet.prefixlen,
                            )
                            step = f"bringing {ifname} and lo up"
                            ipr.link("set", index=idx, state="up")
                            lo = _lookup(ipr, "lo")
                            if lo is not None:
                                ipr.link("set", index=lo, state="up")
                            # never replace a default route someone else (another network,
                            # a container sharing this namespace) already installed
                            if spec.default_route and not _has_default_route(ipr):
                                step = f"adding the default route via {spec.gateway}"
                                ipr.route(
                                    "add", dst="0.0.0.0/0", gateway=str(spec.gateway), oif=idx
                                )
                                routed = True
                        except BaseException:
                            idx = _lookup(ipr, ifname)
                            if idx is not None:
                                ipr.link("del", index=idx)
                            raise
                    except NetlinkError as exc:
                        raise LinkError(f"netns {container_netns}: {step}: {exc}") from None
                    return ifname, routed

            ifname, routed = run_in_netns(nsfd, inside)
        finally:
            os.close(nsfd)
    finally:
        os.close(host_fd)
    try:
        attach_host_side(host_ipr, spec.host_ifname, spec.bridge_index)
    except BaseException:
        delete_link(host_ipr, spec.host_ifname)
        raise
    return ifname, routed


def attach_host_side(host_ipr: Any, host_ifname: str, bridge_index: int) -> None:
    """Enslave a host veth to its bridge, hairpin on, up. Idempotent: `restore()` calls it
    for surviving endpoints, whose bridge may have been deleted and re-created meanwhile
    (the kernel detaches ports from a deleted bridge, cutting the containers off)."""
    idx = _lookup(host_ipr, host_ifname)
    if idx is None:
        raise LinkError(f"{host_ifname}: host side of the veth is missing")
    try:
        host_ipr.link("set", index=idx, master=bridge_index)
        # hairpin: with br_netfilter, a container reaching its own published port is DNATed
        # at the bridge layer and must be sent back out of the port it came in (Docker does
        # the same when it runs without the userland proxy)
        host_ipr.brport("set", index=idx, mode=1)
        host_ipr.link("set", index=idx, state="up")
    except NetlinkError as exc:
        raise LinkError(f"{host_ifname}: cannot attach to bridge {bridge_index}: {exc}") from None


def _has_default_route(ipr: Any) -> bool:
    return any(r["dst_len"] == 0 for r in ipr.get_routes(family=2, table=254))


def delete_link(ipr: Any, ifname: str) -> bool:
    """Delete a link by name; False if it was already gone (a dead container's veth)."""
    idx = _lookup(ipr, ifname)
    if idx is None:
        return False
    try:
        ipr.link("del", index=idx)
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return False
        raise LinkError(f"{ifname}: cannot delete: {exc}") from None
    return True
