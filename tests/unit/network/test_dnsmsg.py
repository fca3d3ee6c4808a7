from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv4Network

import pytest

from llmos.network import dnsmsg
from llmos.network.dns import Zone, answer_locally, build_zone


def test_name_round_trip_and_limits() -> None:
    wire = dnsmsg.encode_name("web.example.")
    assert wire == b"\x03web\x07example\x00"
    assert dnsmsg.decode_name(wire, 0) == ("web.example", len(wire))
    assert dnsmsg.encode_name("") == b"\x00"
    with pytest.raises(dnsmsg.DnsFormatError, match="1-63 bytes"):
        dnsmsg.encode_name("a" * 64)
    with pytest.raises(dnsmsg.DnsFormatError, match="1-63 bytes"):
        dnsmsg.encode_name("a..b")


def test_compression_pointers_and_loops() -> None:
    data = b"\x00" * 12 + b"\x03web\x00" + b"\x02db\xc0\x0c"
    assert dnsmsg.decode_name(data, 17) == ("db.web", 22)
    loop = b"\x00" * 12 + b"\xc0\x0c"
    with pytest.raises(dnsmsg.DnsFormatError, match="loop"):
        dnsmsg.decode_name(loop, 12)
    with pytest.raises(dnsmsg.DnsFormatError, match="past the end"):
        dnsmsg.decode_name(b"\x05ab", 0)


def test_query_parse() -> None:
    q = dnsmsg.parse_message(dnsmsg.build_query("Web", dnsmsg.TYPE_A, ident=0xBEEF))
    assert q.id == 0xBEEF and not q.is_response and q.flags & dnsmsg.FLAG_RD
    assert q.questions == [dnsmsg.Question("Web", dnsmsg.TYPE_A, dnsmsg.CLASS_IN)]
    with pytest.raises(dnsmsg.DnsFormatError, match="12-byte header"):
        dnsmsg.parse_message(b"\x00\x01")
    with pytest.raises(dnsmsg.DnsFormatError, match="truncated question"):
        dnsmsg.parse_message(dnsmsg.build_query("web")[:-2])


def test_response_structure() -> None:
    q = dnsmsg.parse_message(dnsmsg.build_query("web", ident=7))
    raw = dnsmsg.build_response(q, [dnsmsg.a_record("web", IPv4Address("172.30.0.2"), ttl=60)])
    ident, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", raw[:12])
    assert (ident, qd, an, ns, ar) == (7, 1, 1, 0, 0)
    assert flags & dnsmsg.FLAG_QR and flags & dnsmsg.FLAG_AA and flags & dnsmsg.FLAG_RD
    assert flags & dnsmsg.FLAG_RA and flags & 0xF == 0
    assert b"\xc0\x0c" in raw  # the answer points at the question name
    msg = dnsmsg.parse_message(raw)
    assert msg.answers == [
        dnsmsg.Record(
            "web",
            dnsmsg.TYPE_A,
            dnsmsg.CLASS_IN,
            60,
            IPv4Address("172.30.0.2").packed,
            "172.30.0.2",
        )
    ]


def test_response_truncates_at_512() -> None:
    q = dnsmsg.parse_message(dnsmsg.build_query("many"))
    answers = [
        dnsmsg.a_record("many", IPv4Address(f"10.0.{i // 256}.{i % 256}")) for i in range(100)
    ]
    raw = dnsmsg.build_response(q, answers)
    assert len(raw) <= 512
    msg = dnsmsg.parse_message(raw)
    assert msg.flags & dnsmsg.FLAG_TC and 0 < len(msg.answers) < 100


def test_reverse_names() -> None:
    addr = IPv4Address("172.30.0.2")
    assert dnsmsg.reverse_name(addr) == "2.0.30.172.in-addr.arpa"
    assert dnsmsg.parse_reverse_name("2.0.30.172.IN-ADDR.ARPA.") == addr
    assert dnsmsg.parse_reverse_name("0.30.172.in-addr.arpa") is None
    assert dnsmsg.in_subnet_reverse("2.0.30.172.in-addr.arpa", IPv4Network("10.0.0.0/8")) is None


ZONE = build_zone(
    IPv4Network("172.30.0.0/24"),
    [
        (IPv4Address("172.30.0.2"), ["web", "www", "0123456789ab"]),
        (IPv4Address("172.30.0.3"), ["db", "www"]),
    ],
)


def ask(name: str, qtype: int = dnsmsg.TYPE_A, z: Zone = ZONE) -> dnsmsg.Message | None:
    q = dnsmsg.parse_message(dnsmsg.build_query(name, qtype, ident=1))
    raw = answer_locally(z, q)
    return None if raw is None else dnsmsg.parse_message(raw)


def test_zone_answers_names_and_aliases_case_insensitively() -> None:
    msg = ask("WEB")
    assert msg is not None and [a.value for a in msg.answers] == ["172.30.0.2"]
    msg = ask("www.")
    assert msg is not None and sorted(a.value or "" for a in msg.answers) == [
        "172.30.0.2",
        "172.30.0.3",
    ]  # shared alias: both, as Docker does
    msg = ask("web", dnsmsg.TYPE_AAAA)
    assert msg is not None and msg.rcode == dnsmsg.RCODE_OK and msg.answers == []  # NODATA
    msg = ask("3.0.30.172.in-addr.arpa", dnsmsg.TYPE_PTR)
    assert msg is not None and [a.value for a in msg.answers] == ["db"]
    msg = ask("9.0.30.172.in-addr.arpa", dnsmsg.TYPE_PTR)
    assert msg is not None and msg.rcode == dnsmsg.RCODE_NXDOMAIN


def test_zone_forwarding_decisions() -> None:
    assert ask("example.com") is None  # forwarded
    assert ask("1.1.168.192.in-addr.arpa", dnsmsg.TYPE_PTR) is None  # not our subnet
    msg = ask("nosuch")
    assert msg is not None and msg.rcode == dnsmsg.RCODE_NXDOMAIN  # single label: not forwarded
    internal = build_zone(IPv4Network("10.0.0.0/24"), [], forward=False)
    msg = ask("example.com", z=internal)
    assert msg is not None and msg.rcode == dnsmsg.RCODE_NXDOMAIN


def test_zone_refuses_odd_queries() -> None:
    raw = bytearray(dnsmsg.build_query("web"))
    raw[2] |= 0x28  # opcode 5 (UPDATE)
    q = dnsmsg.parse_message(bytes(raw))
    reply = answer_locally(ZONE, q)
    assert reply is not None and dnsmsg.parse_message(reply).rcode == dnsmsg.RCODE_NOTIMP
    q = dnsmsg.parse_message(dnsmsg.build_query("web"))
    q.questions.append(q.questions[0])
    reply = answer_locally(ZONE, q)
    assert reply is not None and dnsmsg.parse_message(reply).rcode == dnsmsg.RCODE_FORMERR
