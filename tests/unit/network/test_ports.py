from __future__ import annotations

import random

import pytest

from llmos.network.errors import InvalidPortSpec, PortAlreadyPublished
from llmos.network.ports import PortBinding, PortSpec, parse_port_spec, resolve_bindings


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", PortSpec(80, 80)),
        ("8080:80", PortSpec(80, 80, 8080, 8080)),
        ("127.0.0.1:8080:80/udp", PortSpec(80, 80, 8080, 8080, "127.0.0.1", "udp")),
        ("127.0.0.1::80", PortSpec(80, 80, None, None, "127.0.0.1")),
        ("8000-8001:80-81/TCP", PortSpec(80, 81, 8000, 8001)),
        ("8000-8010:80", PortSpec(80, 80, 8000, 8010)),
        ("80-82", PortSpec(80, 82)),
        (" 53/udp ", PortSpec(53, 53, proto="udp")),
    ],
)
def test_parse(spec: str, expected: PortSpec) -> None:
    assert parse_port_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("80/sctp", "protocol 'sctp' is not one of tcp, udp"),
        ("a:b:c:d", "too many ':'"),
        ("8080:", "container port is missing"),
        ("x:80", "host port 'x' is not a port or range"),
        ("80:0", "container port 0 is out of range 1-65535"),
        ("65536:80", "host port 65536 is out of range"),
        ("90-80", "range '90-80' is reversed"),
        ("8000-8002:80-81", "differ in length"),
        ("300.1.1.1:80:80", "host address '300.1.1.1' is not an IPv4 address"),
        ("[::1]:80:80", "IPv6 host addresses are not supported"),
        ("1-2-3", "is not a port or range"),
    ],
)
def test_parse_errors_name_spec_and_part(spec: str, message: str) -> None:
    with pytest.raises(InvalidPortSpec, match=message) as info:
        parse_port_spec(spec)
    assert f"port spec {spec.strip()!r}" in str(info.value) or spec == ""


def test_conflicts() -> None:
    any80 = PortBinding(80, 8080)
    lo80 = PortBinding(80, 8080, "127.0.0.1")
    other_ip = PortBinding(80, 8080, "10.0.0.1")
    udp = PortBinding(80, 8080, proto="udp")
    assert any80.conflicts_with(lo80) and lo80.conflicts_with(any80)
    assert not lo80.conflicts_with(other_ip)
    assert not any80.conflicts_with(udp)
    assert not any80.conflicts_with(PortBinding(80, 8081))
    assert any80.describe() == "0.0.0.0:8080->80/tcp"
    assert PortBinding.from_dict(udp.to_dict()) == udp


def test_resolve_fixed_and_ranges() -> None:
    specs = [parse_port_spec(s) for s in ("8080:80", "9000-9001:90-91/udp")]
    assert resolve_bindings(specs) == [
        PortBinding(80, 8080),
        PortBinding(90, 9000, proto="udp"),
        PortBinding(91, 9001, proto="udp"),
    ]


def test_resolve_refuses_published_and_host_bound() -> None:
    published = [PortBinding(80, 8080, "127.0.0.1")]
    with pytest.raises(
        PortAlreadyPublished,
        match=r"0.0.0.0:8080/tcp: already published "
        r"\(127.0.0.1:8080->80/tcp\)",
    ):
        resolve_bindings([parse_port_spec("8080:80")], published)
    # within one request too
    with pytest.raises(PortAlreadyPublished, match="already published"):
        resolve_bindings([parse_port_spec("8080:80"), parse_port_spec("8080:81")])
    with pytest.raises(PortAlreadyPublished, match="already in use on the host"):
        resolve_bindings([parse_port_spec("7000:80")], is_free=lambda b: b.host_port != 7000)


def test_host_range_picks_first_free() -> None:
    published = [PortBinding(1, 8000), PortBinding(1, 8001)]
    got = resolve_bindings(
        [parse_port_spec("8000-8010:80")], published, is_free=lambda b: b.host_port != 8002
    )
    assert got == [PortBinding(80, 8003)]
    with pytest.raises(PortAlreadyPublished, match="8000-8001/tcp: all already in use"):
        resolve_bindings([parse_port_spec("8000-8001:80")], published)


def test_random_ports_avoid_taken() -> None:
    rng = random.Random(7)
    taken = [PortBinding(1, p) for p in range(50000, 50010)]
    got = resolve_bindings([parse_port_spec("80-85")], taken, rng=rng, random_range=(50000, 50015))
    ports = [b.host_port for b in got]
    assert len(set(ports)) == 6 and all(50010 <= p <= 50015 for p in ports)
    assert [b.container_port for b in got] == list(range(80, 86))
    with pytest.raises(PortAlreadyPublished, match="no free random host port"):
        resolve_bindings([parse_port_spec("80")], taken, rng=rng, random_range=(50000, 50009))
