"""What ``--network MODE`` means for the runtime's namespace plan.

The network layer does not create namespaces: the runtime does (CLONE_NEWNET or setns). This
pure helper tells it which, and whether to call ``NetworkManager.connect`` afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmos.network.errors import InvalidArgument

DEFAULT_NETWORK = "bridge"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class NetworkModePlan:
    """The runtime's instructions for one ``--network`` value.

    * ``new_netns``: give the container its own empty network namespace.
    * ``join_container``: instead share the namespace of that container (``container:ID``);
      the network layer does nothing for it, the owner's endpoints serve both.
    * ``network``: after the namespace exists, ``connect()`` it to this network.
    * ``use_host_etc``: bind the host's /etc/resolv.conf and /etc/hosts (``host`` mode).
    * ``loopback_only``: only ``lo``, brought up by the runtime (``none`` mode).
    * ``can_publish``: ``-p`` is meaningful (Docker ignores it for host/none/container modes).
    """

    mode: str
    new_netns: bool
    join_container: str | None = None
    network: str | None = None
    use_host_etc: bool = False
    loopback_only: bool = False
    can_publish: bool = False


def validate_network_name(name: str) -> str:
    """Docker's rule for network names, plus the reserved mode words."""
    if not _NAME.match(name):
        raise InvalidArgument(
            f"network name {name!r}: must start with a letter or digit and contain only "
            "letters, digits, '_', '.' and '-' (at most 128 characters)"
        )
    return name


def plan_network_mode(mode: str | None) -> NetworkModePlan:
    """Translate ``--network`` (None/"" = the default bridge) into a plan."""
    if mode is None or mode in ("", "default", DEFAULT_NETWORK):
        return NetworkModePlan("bridge", new_netns=True, network=DEFAULT_NETWORK, can_publish=True)
    if mode == "host":
        return NetworkModePlan("host", new_netns=False, use_host_etc=True)
    if mode == "none":
        return NetworkModePlan("none", new_netns=True, loopback_only=True)
    if mode.startswith("container:"):
        target = mode.split(":", 1)[1]
        if not target:
            raise InvalidArgument(f"network mode {mode!r}: container name or id is missing")
        return NetworkModePlan("container", new_netns=False, join_container=target)
    validate_network_name(mode)
    return NetworkModePlan("bridge", new_netns=True, network=mode, can_publish=True)
