"""The responder's sockets on loopback only (no root, no namespaces)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network

import pytest

from llmos.network import dnsmsg
from llmos.network.dns import DnsResponder, build_zone, upstreams_from_resolv_conf

LISTEN = IPv4Address("127.0.0.1")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def upstream() -> Iterator[tuple[str, int]]:
    """A fake upstream resolver on loopback answering every A query with 192.0.2.99."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            q = dnsmsg.parse_message(data)
            answer = dnsmsg.a_record(q.questions[0].name, IPv4Address("192.0.2.99"))
            sock.sendto(dnsmsg.build_response(q, [answer], authoritative=False), peer)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield sock.getsockname()
    stop.set()
    t.join()
    sock.close()


def query(port: int, name: str, qtype: int = dnsmsg.TYPE_A) -> dnsmsg.Message:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(dnsmsg.build_query(name, qtype, ident=99), (str(LISTEN), port))
        msg = dnsmsg.parse_message(s.recv(4096))
    assert msg.id == 99
    return msg


def test_answers_forwards_and_updates(upstream: tuple[str, int]) -> None:
    port = free_port()
    dns = DnsResponder([upstream], timeout=1.0, port=port)
    try:
        zone = build_zone(IPv4Network("127.0.0.0/8"), [(IPv4Address("127.0.0.5"), ["web"])])
        dns.set_zone(LISTEN, zone)
        assert [a.value for a in query(port, "web").answers] == ["127.0.0.5"]
        assert [a.value for a in query(port, "example.test").answers] == ["192.0.2.99"]
        # zones are replaced in place: the next query sees the new names
        dns.set_zone(LISTEN, build_zone(IPv4Network("127.0.0.0/8"), []))
        assert query(port, "web").rcode == dnsmsg.RCODE_NXDOMAIN
        assert dns.listen_addresses() == ["127.0.0.1"]
        dns.remove_zone(LISTEN)
        assert dns.listen_addresses() == []
    finally:
        dns.close()


def test_dead_upstream_gives_servfail() -> None:
    port = free_port()
    dead = ("127.0.0.1", free_port())  # nothing listens: ICMP unreachable, fast failure
    dns = DnsResponder([dead], timeout=0.5, port=port)
    try:
        dns.set_zone(LISTEN, build_zone(IPv4Network("127.0.0.0/8"), []))
        assert query(port, "example.test").rcode == dnsmsg.RCODE_SERVFAIL
    finally:
        dns.close()


def test_upstreams_from_resolv_conf(tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "resolv.conf"
    path.write_text("nameserver 10.0.0.53\nnameserver fd00::1\nnameserver 172.30.0.1\n")
    assert upstreams_from_resolv_conf(str(path), exclude=[IPv4Address("172.30.0.1")]) == [
        ("10.0.0.53", 53)
    ]
    assert upstreams_from_resolv_conf(str(path) + ".missing") == []
