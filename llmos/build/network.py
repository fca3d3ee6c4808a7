"""The network of RUN steps: a namespace of their own on the default bridge, out through NAT.

Docker gives RUN the bridge network, so `apt-get install` reaches the mirror while the step
cannot touch the host's interfaces or listen on its ports. The bridge, its addresses and its
rules belong to whoever owns the network state: llmosd when it runs (asked over its socket,
so its address allocator and nftables table stay the only ones), otherwise this process
(a NetworkManager on the same state directory, closed when the build ends).
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from .errors import BuildError

__all__ = [
    "OWNER_PREFIX",
    "BuildNetwork",
    "DaemonBuildNetwork",
    "LocalBuildNetwork",
    "open_build_network",
]

OWNER_PREFIX = "llmos-build-"
"""Endpoints of build steps are named like their containers; the daemon accepts no other."""


class BuildNetwork(Protocol):
    """Wires a step's network namespace to the default bridge, and unwires it."""

    def attach(self, netns: str, owner: str, hostname: str) -> dict[str, str]:
        """Connect the namespace held at `netns`; returns /etc files ("hosts",
        "resolv.conf") that name the step's address and reachable resolvers."""
        ...

    def detach(self, owner: str) -> None: ...

    def close(self) -> None: ...


def _check(netns: str, owner: str) -> None:
    if not owner.startswith(OWNER_PREFIX) or len(owner) > 64 or "/" in owner:
        raise BuildError(f"build network: {owner!r} is not a build step's name")
    if not os.path.isabs(netns):
        raise BuildError(f"build network: {netns!r} is not an absolute path")


class LocalBuildNetwork:
    """No daemon: this process owns the bridge for the build's length."""

    def __init__(self, state_dir: str) -> None:
        from llmos.network import NetworkManager

        self.manager = NetworkManager(state_dir, dns=False)
        # What llmosd does when it starts: the bridge, forwarding and the NAT rules may be
        # gone (a reboot, a flushed ruleset) while the state file says they exist.
        self.manager.restore()

    def attach(self, netns: str, owner: str, hostname: str) -> dict[str, str]:
        return attach_with(self.manager, netns, owner, hostname)

    def detach(self, owner: str) -> None:
        detach_with(self.manager, owner)

    def close(self) -> None:
        self.manager.close()


def attach_with(manager: Any, netns: str, owner: str, hostname: str) -> dict[str, str]:
    """The one implementation both owners run (the daemon's API calls it too)."""
    from llmos.network.modes import DEFAULT_NETWORK

    _check(netns, owner)
    manager.connect(DEFAULT_NETWORK, owner, netns, name=owner)
    try:
        files: dict[str, str] = manager.container_files(owner, hostname)
    except BaseException:
        manager.disconnect(DEFAULT_NETWORK, owner, force=True)
        raise
    return {"hosts": files["hosts"], "resolv.conf": files["resolv.conf"]}


def detach_with(manager: Any, owner: str) -> None:
    from llmos.network.modes import DEFAULT_NETWORK

    _check("/", owner)
    manager.disconnect(DEFAULT_NETWORK, owner, force=True)


class DaemonBuildNetwork:
    """llmosd owns the bridge: ask it, over its socket."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def attach(self, netns: str, owner: str, hostname: str) -> dict[str, str]:
        _check(netns, owner)
        reply = self.transport.call("build.network_attach",
                                    {"netns": netns, "id": owner, "hostname": hostname})
        return {"hosts": str(reply["hosts"]), "resolv.conf": str(reply["resolv.conf"])}

    def detach(self, owner: str) -> None:
        self.transport.call("build.network_detach", {"id": owner})

    def close(self) -> None:
        self.transport.close()


def open_build_network(root: str | None = None) -> BuildNetwork:
    """llmosd's, if its socket answers; else one owned by this process on the engine's state
    directory (LLMOS_ROOT/network, as llmosd --root keeps it)."""
    from llmos.client.transport import SocketTransport

    try:
        transport = SocketTransport(timeout=5)
        transport.call("version", {})
    except (OSError, ValueError, ConnectionError):
        pass
    else:
        return DaemonBuildNetwork(transport)
    root = root or os.environ.get("LLMOS_ROOT", "/var/lib/llmos")
    return LocalBuildNetwork(os.path.join(root, "network"))
