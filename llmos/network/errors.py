"""One exception tree for the network layer.

The daemon maps ``NetworkError`` to a user-facing error (exit code 125 in the CLI), so every
message names the offending input (``subnet 172.30.0.0/24: overlaps network "front"
(172.30.0.0/16)``) rather than the internal step that failed.
"""

from __future__ import annotations


class NetworkError(Exception):
    """Base of every error raised by ``llmos.network``."""


class InvalidArgument(NetworkError, ValueError):
    """Input that can never be valid (bad CIDR, bad name, bad port spec)."""


class InvalidPortSpec(InvalidArgument):
    """A ``-p`` value that cannot be parsed."""


class SubnetOverlap(NetworkError):
    """A requested subnet overlaps another llmos network (or a host route)."""


class PoolExhausted(NetworkError):
    """No free subnet is left in the default pool, or no free address in a subnet."""


class AddressUnavailable(NetworkError):
    """An explicitly requested address is outside the subnet or already taken."""


class NetworkNotFound(NetworkError, KeyError):
    """No network with that name or id."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain message
        return str(self.args[0]) if self.args else "network not found"


class NetworkExists(NetworkError):
    """A network with that name already exists."""


class NetworkInUse(NetworkError):
    """The network still has endpoints, or it is a predefined network."""


class EndpointExists(NetworkError):
    """The container is already connected to that network."""


class EndpointNotFound(NetworkError, KeyError):
    """The container is not connected to that network."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "endpoint not found"


class PortAlreadyPublished(NetworkError):
    """The host address/port/protocol is already published or bound on the host."""


class FirewallError(NetworkError):
    """``nft`` refused a ruleset (the table is left as it was: transactions are atomic)."""


class LinkError(NetworkError):
    """A netlink operation on a bridge, veth or namespace failed."""
