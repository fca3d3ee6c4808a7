"""The generated nft JSON, compared structurally (no nft, no root)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Any

from llmos.network import firewall as fw
from llmos.network.ports import PortBinding

BRIDGE = fw.FirewallNetwork("bridge", "llmos0", IPv4Network("172.29.0.0/16"))
FRONT = fw.FirewallNetwork("front", "llmos-abc", IPv4Network("172.30.0.0/24"))
PRIV = fw.FirewallNetwork("priv", "llmos-def", IPv4Network("172.30.1.0/24"), internal=True)
WEB = fw.FirewallPort(PortBinding(80, 8080), IPv4Address("172.29.0.2"), "c" * 64)
DNS = fw.FirewallPort(PortBinding(53, 5353, "127.0.0.1", "udp"), IPv4Address("172.30.0.9"), "d")


def rules(ruleset: dict[str, Any], chain: str) -> list[dict[str, Any]]:
    return [r for r in fw.commands_in(ruleset, "rule") if r["chain"] == chain]


def by_comment(ruleset: dict[str, Any], chain: str, comment: str) -> list[Any]:
    found = [r for r in rules(ruleset, chain) if r["comment"] == comment]
    assert len(found) == 1, (comment, [r["comment"] for r in rules(ruleset, chain)])
    return list(found[0]["expr"])


def test_only_our_table_and_atomic_replace() -> None:
    rs = fw.build_ruleset([BRIDGE, FRONT], [WEB])
    cmds = rs["nftables"]
    assert cmds[0] == {"metainfo": {"json_schema_version": 1}}
    table = {"family": "inet", "name": "llmos"}
    assert cmds[1:4] == [
        {"add": {"table": table}},
        {"delete": {"table": table}},
        {"add": {"table": table}},
    ]
    for cmd in cmds[1:]:
        ((verb, body),) = cmd.items()
        assert verb == "add" or body == {"table": table}
        ((kind, obj),) = body.items()
        if kind != "table":
            assert (obj["family"], obj["table"]) == ("inet", "llmos")


def test_base_chains_have_our_own_accept_policy() -> None:
    chains = {c["name"]: c for c in fw.commands_in(fw.build_ruleset([]), "chain")}
    assert set(chains) == {"published", "prerouting", "output", "postrouting", "forward"}
    assert "hook" not in chains["published"]
    expect = {
        "prerouting": ("nat", "prerouting", -100),
        "output": ("nat", "output", -100),
        "postrouting": ("nat", "postrouting", 100),
        "forward": ("filter", "forward", 0),
    }
    for name, (ctype, hook, prio) in expect.items():
        c = chains[name]
        assert (c["type"], c["hook"], c["prio"], c["policy"]) == (ctype, hook, prio, "accept")


def test_published_ports_are_dnat_for_local_destinations() -> None:
    rs = fw.build_ruleset([BRIDGE, FRONT], [WEB, DNS])
    fib_jump = [
        {
            "match": {
                "op": "==",
                "left": {"fib": {"result": "type", "flags": ["daddr"]}},
                "right": "local",
            }
        },
        {"jump": {"target": "published"}},
    ]
    assert [r["expr"] for r in rules(rs, "prerouting")] == [fib_jump]
    assert [r["expr"] for r in rules(rs, "output")] == [fib_jump]
    dnat = [r["expr"] for r in rules(rs, "published")]
    assert dnat == [
        [
            {
                "match": {
                    "op": "==",
                    "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                    "right": 8080,
                }
            },
            {"dnat": {"family": "ip", "addr": "172.29.0.2", "port": 80}},
        ],
        [
            {
                "match": {
                    "op": "==",
                    "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                    "right": "127.0.0.1",
                }
            },
            {
                "match": {
                    "op": "==",
                    "left": {"payload": {"protocol": "udp", "field": "dport"}},
                    "right": 5353,
                }
            },
            {"dnat": {"family": "ip", "addr": "172.30.0.9", "port": 53}},
        ],
    ]
    assert rules(rs, "published")[0]["comment"] == "cccccccccccc 0.0.0.0:8080->80/tcp"


def test_masquerade_rules() -> None:
    rs = fw.build_ruleset([BRIDGE, FRONT, PRIV])
    out = by_comment(rs, "postrouting", "outbound NAT for network front")
    assert out == [
        {
            "match": {
                "op": "==",
                "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                "right": {"prefix": {"addr": "172.30.0.0", "len": 24}},
            }
        },
        {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "llmos-abc"}},
        {"masquerade": None},
    ]
    comments = [r["comment"] for r in rules(rs, "postrouting")]
    assert "outbound NAT for network priv" not in comments  # internal: no way out
    hairpin = by_comment(rs, "postrouting", "hairpin NAT for network front")
    assert {"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}} in hairpin
    loop = by_comment(rs, "postrouting", "published ports reached through 127.0.0.1")
    assert loop[0]["match"]["right"] == {"set": ["llmos-abc", "llmos-def", "llmos0"]}


def test_forward_order_isolation_and_internal() -> None:
    rs = fw.build_ruleset([BRIDGE, FRONT, PRIV])
    comments = [r["comment"] for r in rules(rs, "forward")]
    assert comments == [
        "replies",
        "internal network priv: no way out",
        "internal network priv: no way in",
        "published ports",
        "within network front",  # sorted by bridge name: "llmos-..." before "llmos0"
        "within network priv",
        "within network bridge",
        "isolation between networks",
        "no unsolicited traffic into networks",
        "outbound",
    ]
    out = by_comment(rs, "forward", "outbound")
    assert out[0]["match"]["right"] == {"set": ["llmos-abc", "llmos0"]}  # not the internal one
    iso = by_comment(rs, "forward", "isolation between networks")
    assert iso[-1] == {"drop": None}


def test_empty_state_still_valid() -> None:
    rs = fw.build_ruleset([])
    assert [r["comment"] for r in rules(rs, "forward")] == ["replies"]
    assert rules(rs, "postrouting") == []


def test_delete_ruleset() -> None:
    table = {"family": "inet", "name": "llmos"}
    assert fw.delete_ruleset()["nftables"][1:] == [
        {"add": {"table": table}},
        {"delete": {"table": table}},
    ]
