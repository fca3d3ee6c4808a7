"""nftables rules for llmos networks, in llmos's own ``table inet llmos`` and nowhere else.

The whole table is generated from state (``build_ruleset``, pure) and replaced in one ``nft -j``
transaction (``add table; delete table; add table; chains; rules``): the kernel applies all of
it or none of it, so a bad port or a crash mid-way never leaves half a ruleset, and there is no
diffing of rule handles to get wrong. Other tables and chains (the host's firewall, Docker's,
podman's) are never read or changed; deleting our table removes every llmos rule.

Chains (all ours, created with our own policy ``accept``: we only add drops for llmos
traffic, we never change the policy of anything that exists):

* ``prerouting`` (nat, dstnat) and ``output`` (nat, -100): ``fib daddr type local`` -> jump
  ``published``, which DNATs published ports to container addresses. The prerouting hook
  serves other hosts and containers (hairpin); the output hook serves the host itself, both its
  own addresses and 127.0.0.1. Kernel NAT, no userland proxy on the data path.
* ``postrouting`` (nat, srcnat): masquerade each non-internal subnet going out of its bridge;
  masquerade hairpin traffic (a container reaching a published port that lands back on its
  own bridge: without it the reply would go container-to-container and bypass the DNAT);
  masquerade 127.0.0.0/8 sources leaving through a bridge.
* ``forward`` (filter, 0): established/related accept; internal networks: nothing in or out;
  DNAT'd (published) traffic accepted; same-bridge accepted (matters with br_netfilter);
  bridge-to-other-bridge dropped (isolation); unsolicited traffic into bridges dropped;
  outbound from non-internal bridges accepted.

127.0.0.1 -> container: after the output-hook DNAT the packet still has source 127.0.0.1 and
the kernel refuses to route a loopback source out of a non-loopback device unless
``route_localnet`` is set on that device. We set it on llmos's own bridges only (never
``all``/``default``) and masquerade the loopback source to the gateway address, so the
container answers the bridge and conntrack maps the reply back. This is Docker's choice with
``userland-proxy: false``; the alternative (a userland proxy on 127.0.0.1) puts a copy loop on
the data path, which this design rules out.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from llmos.network.errors import FirewallError
from llmos.network.ports import ANY_ADDRESS, PortBinding

FAMILY = "inet"
TABLE = "llmos"
NFT = "nft"

Expr = dict[str, Any]
Command = dict[str, Any]


@dataclass(frozen=True)
class FirewallNetwork:
    """What the ruleset needs to know about a network."""

    name: str
    bridge: str
    subnet: IPv4Network
    internal: bool = False


@dataclass(frozen=True)
class FirewallPort:
    """A published port resolved to its container address."""

    binding: PortBinding
    container_ip: IPv4Address
    container_id: str = ""


# -- expression helpers (nft JSON schema, see libnftables-json(5)) -----------------------------


def _match(left: Expr, right: Any, op: str = "==") -> Expr:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> Expr:
    return {"meta": {"key": key}}


def _payload(protocol: str, fld: str) -> Expr:
    return {"payload": {"protocol": protocol, "field": fld}}


def _prefix(net: IPv4Network) -> Any:
    if net.prefixlen == 32:
        return str(net.network_address)
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _names(names: Sequence[str]) -> Any:
    return names[0] if len(names) == 1 else {"set": sorted(names)}


def _fib_local() -> Expr:
    return _match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")


ACCEPT: Expr = {"accept": None}
DROP: Expr = {"drop": None}
MASQUERADE: Expr = {"masquerade": None}


def _table() -> dict[str, Any]:
    return {"family": FAMILY, "name": TABLE}


def _chain(name: str, ctype: str | None = None, hook: str | None = None, prio: int = 0) -> Command:
    chain: dict[str, Any] = {"family": FAMILY, "table": TABLE, "name": name}
    if ctype is not None:
        chain.update({"type": ctype, "hook": hook, "prio": prio, "policy": "accept"})
    return {"add": {"chain": chain}}


def _rule(chain: str, exprs: list[Expr], comment: str) -> Command:
    return {
        "add": {
            "rule": {
                "family": FAMILY,
                "table": TABLE,
                "chain": chain,
                "expr": exprs,
                "comment": comment[:128],
            }
        }
    }


# -- the ruleset ---------------------------------------------------------------------------------


def dnat_rule(port: FirewallPort) -> Command:
    """``[ip daddr H] <proto> dport HP dnat ip to CIP:CP`` in chain ``published``."""
    b = port.binding
    exprs: list[Expr] = []
    if b.host_ip != ANY_ADDRESS:
        exprs.append(_match(_payload("ip", "daddr"), b.host_ip))
    exprs.append(_match(_payload(b.proto, "dport"), b.host_port))
    exprs.append(
        {"dnat": {"family": "ip", "addr": str(port.container_ip), "port": b.container_port}}
    )
    return _rule("published", exprs, f"{port.container_id[:12]} {b.describe()}")


def build_ruleset(
    networks: Iterable[FirewallNetwork], ports: Iterable[FirewallPort] = ()
) -> dict[str, Any]:
    """The complete ``table inet llmos`` as one nft JSON transaction (replaces the old table)."""
    nets = sorted(networks, key=lambda n: n.bridge)
    bridges = [n.bridge for n in nets]
    cmds: list[Command] = [
        {"metainfo": {"json_schema_version": 1}},
        {"add": {"table": _table()}},
        {"delete": {"table": _table()}},
        {"add": {"table": _table()}},
        _chain("published"),
        _chain("prerouting", "nat", "prerouting", -100),
        _chain("output", "nat", "output", -100),
        _chain("postrouting", "nat", "postrouting", 100),
        _chain("forward", "filter", "forward", 0),
    ]
    cmds.append(
        _rule(
            "prerouting",
            [_fib_local(), {"jump": {"target": "published"}}],
            "published ports, from other hosts and containers",
        )
    )
    cmds.append(
        _rule(
            "output",
            [_fib_local(), {"jump": {"target": "published"}}],
            "published ports, from the host itself",
        )
    )
    cmds.extend(
        dnat_rule(p)
        for p in sorted(
            ports, key=lambda p: (p.binding.proto, p.binding.host_port, p.binding.host_ip)
        )
    )

    # postrouting: source NAT
    for n in nets:
        if not n.internal:
            cmds.append(
                _rule(
                    "postrouting",
                    [
                        _match(_payload("ip", "saddr"), _prefix(n.subnet)),
                        _match(_meta("oifname"), n.bridge, "!="),
                        MASQUERADE,
                    ],
                    f"outbound NAT for network {n.name}",
                )
            )
        cmds.append(
            _rule(
                "postrouting",
                [
                    _match(_meta("oifname"), n.bridge),
                    _match(_payload("ip", "saddr"), _prefix(n.subnet)),
                    _match({"ct": {"key": "status"}}, "dnat", "in"),
                    MASQUERADE,
                ],
                f"hairpin NAT for network {n.name}",
            )
        )
    if bridges:
        cmds.append(
            _rule(
                "postrouting",
                [
                    _match(_meta("oifname"), _names(bridges)),
                    _match(_payload("ip", "saddr"), _prefix(IPv4Network("127.0.0.0/8"))),
                    MASQUERADE,
                ],
                "published ports reached through 127.0.0.1",
            )
        )

    # forward: filtering
    cmds.append(
        _rule(
            "forward",
            [
                _match({"ct": {"key": "state"}}, {"set": ["established", "related"]}, "in"),
                ACCEPT,
            ],
            "replies",
        )
    )
    for n in nets:
        if n.internal:
            cmds.append(
                _rule(
                    "forward",
                    [
                        _match(_meta("iifname"), n.bridge),
                        _match(_meta("oifname"), n.bridge, "!="),
                        DROP,
                    ],
                    f"internal network {n.name}: no way out",
                )
            )
            cmds.append(
                _rule(
                    "forward",
                    [
                        _match(_meta("oifname"), n.bridge),
                        _match(_meta("iifname"), n.bridge, "!="),
                        DROP,
                    ],
                    f"internal network {n.name}: no way in",
                )
            )
    if bridges:
        cmds.append(
            _rule(
                "forward",
                [
                    _match(_meta("oifname"), _names(bridges)),
                    _match({"ct": {"key": "status"}}, "dnat", "in"),
                    ACCEPT,
                ],
                "published ports",
            )
        )
    for n in nets:
        cmds.append(
            _rule(
                "forward",
                [
                    _match(_meta("iifname"), n.bridge),
                    _match(_meta("oifname"), n.bridge),
                    ACCEPT,
                ],
                f"within network {n.name}",
            )
        )
    if bridges:
        cmds.append(
            _rule(
                "forward",
                [
                    _match(_meta("iifname"), _names(bridges)),
                    _match(_meta("oifname"), _names(bridges)),
                    DROP,
                ],
                "isolation between networks",
            )
        )
        cmds.append(
            _rule(
                "forward",
                [
                    _match(_meta("oifname"), _names(bridges)),
                    DROP,
                ],
                "no unsolicited traffic into networks",
            )
        )
    outbound = [n.bridge for n in nets if not n.internal]
    if outbound:
        cmds.append(
            _rule(
                "forward",
                [
                    _match(_meta("iifname"), _names(outbound)),
                    ACCEPT,
                ],
                "outbound",
            )
        )
    return {"nftables": cmds}


def delete_ruleset() -> dict[str, Any]:
    """A transaction that removes the table whether or not it exists."""
    return {
        "nftables": [
            {"metainfo": {"json_schema_version": 1}},
            {"add": {"table": _table()}},
            {"delete": {"table": _table()}},
        ]
    }


def commands_in(ruleset: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The objects of one kind ("rule", "chain", ...) added by a transaction (for tests)."""
    return [c["add"][kind] for c in ruleset["nftables"] if kind in c.get("add", {})]


# -- execution -----------------------------------------------------------------------------------


def run_nft(ruleset: dict[str, Any], nft: str = NFT) -> None:
    """Apply a JSON transaction atomically; raise ``FirewallError`` with nft's own message."""
    try:
        proc = subprocess.run(
            [nft, "-j", "-f", "-"],
            input=json.dumps(ruleset),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except FileNotFoundError:
        raise FirewallError(f"{nft}: not found; install the nftables package") from None
    if proc.returncode != 0:
        raise FirewallError(f"nft rejected the llmos ruleset: {proc.stderr.strip()}")


def apply(
    networks: Iterable[FirewallNetwork], ports: Iterable[FirewallPort] = (), nft: str = NFT
) -> None:
    """Replace ``table inet llmos`` with the ruleset for this state."""
    run_nft(build_ruleset(networks, ports), nft)


def remove(nft: str = NFT) -> None:
    """Delete ``table inet llmos`` (and so every llmos rule)."""
    run_nft(delete_ruleset(), nft)


def list_table(nft: str = NFT) -> dict[str, Any] | None:
    """``nft -j list table inet llmos`` parsed, or None when the table does not exist."""
    proc = subprocess.run(
        [nft, "-j", "list", "table", FAMILY, TABLE],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if proc.returncode != 0:
        return None
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def rule_count(nft: str = NFT) -> int:
    """Rules currently in our table (0 when absent): tests use it to prove nothing leaks."""
    listing = list_table(nft)
    if listing is None:
        return 0
    return sum(1 for obj in listing.get("nftables", []) if "rule" in obj)
