from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from llmos.network.errors import AddressUnavailable, InvalidArgument, PoolExhausted
from llmos.network.ipam import (
    DEFAULT_BRIDGE_SUBNET,
    DEFAULT_POOL,
    NetworkIpam,
    check_gateway,
    default_gateway,
    find_overlap,
    mac_for_ip,
    parse_address,
    parse_subnet,
    pick_subnet,
)

A = IPv4Address
N = IPv4Network


def test_default_ranges_do_not_overlap() -> None:
    assert not DEFAULT_BRIDGE_SUBNET.overlaps(DEFAULT_POOL)


def test_parse_subnet_errors_name_the_input() -> None:
    assert parse_subnet("10.1.0.0/16") == N("10.1.0.0/16")
    with pytest.raises(
        InvalidArgument,
        match=r"subnet 10.1.0.1/16: host bits set; did you mean "
        r"10.1.0.0/16\?",
    ):
        parse_subnet("10.1.0.1/16")
    with pytest.raises(InvalidArgument, match="not a CIDR subnet"):
        parse_subnet("banana")
    with pytest.raises(InvalidArgument, match="only IPv4"):
        parse_subnet("fd00::/64")
    with pytest.raises(InvalidArgument, match="too small"):
        parse_subnet("10.0.0.0/31")
    with pytest.raises(InvalidArgument, match="gateway 'x': not an IP address"):
        parse_address("x", "gateway")


def test_gateway_rules() -> None:
    net = N("10.0.0.0/24")
    assert default_gateway(net) == A("10.0.0.1")
    check_gateway(net, A("10.0.0.254"))
    for bad in ("10.0.0.0", "10.0.0.255", "10.0.1.1"):
        with pytest.raises(InvalidArgument, match=f"gateway {bad}: not a host address"):
            check_gateway(net, A(bad))


def test_overlap_detection() -> None:
    existing = {"front": N("172.30.0.0/24"), "big": N("10.0.0.0/8")}
    assert find_overlap(N("172.30.0.128/25"), existing) == ("front", N("172.30.0.0/24"))
    assert find_overlap(N("10.200.0.0/16"), existing) == ("big", N("10.0.0.0/8"))
    assert find_overlap(N("0.0.0.0/0"), existing) is not None
    assert find_overlap(N("172.30.1.0/24"), existing) is None


def test_pick_subnet_skips_taken_and_host_routes() -> None:
    assert pick_subnet([]) == N("172.30.0.0/24")
    taken = [N("172.30.0.0/24"), N("172.30.1.0/25"), N("172.30.2.7/32")]
    assert pick_subnet(taken) == N("172.30.3.0/24")
    assert pick_subnet([N("172.30.0.0/23")], prefixlen=23) == N("172.30.2.0/23")
    with pytest.raises(PoolExhausted, match="no free /24 left; pass --subnet"):
        pick_subnet([N("172.30.0.0/16")])


def test_allocate_sequential_skips_gateway_and_does_not_reuse_at_once() -> None:
    ipam = NetworkIpam(N("10.0.0.0/29"), A("10.0.0.1"))  # hosts .1-.6, gateway .1
    assert ipam.capacity == 5
    got = [ipam.allocate() for _ in range(3)]
    assert got == [A("10.0.0.2"), A("10.0.0.3"), A("10.0.0.4")]
    ipam.release(A("10.0.0.2"))
    assert ipam.allocate() == A("10.0.0.5")  # not the just-released .2
    assert ipam.allocate() == A("10.0.0.6")
    assert ipam.allocate() == A("10.0.0.2")  # wrapped around
    with pytest.raises(PoolExhausted, match=r"10\.0\.0\.0/29: no free address left"):
        ipam.allocate()
    ipam.release(A("10.0.0.4"))
    ipam.release(A("10.0.0.4"))  # idempotent
    assert ipam.allocate() == A("10.0.0.4")


def test_gateway_not_first_address() -> None:
    ipam = NetworkIpam(N("10.0.0.0/29"), A("10.0.0.6"))
    assert [ipam.allocate() for _ in range(5)] == [A(f"10.0.0.{i}") for i in range(1, 6)]


def test_explicit_requests() -> None:
    ipam = NetworkIpam(N("10.0.0.0/24"), A("10.0.0.1"))
    assert ipam.allocate(A("10.0.0.50")) == A("10.0.0.50")
    with pytest.raises(AddressUnavailable, match=r"10\.0\.0\.50: already in use"):
        ipam.allocate(A("10.0.0.50"))
    with pytest.raises(AddressUnavailable, match="is the gateway"):
        ipam.allocate(A("10.0.0.1"))
    for bad in ("10.0.0.0", "10.0.0.255", "10.0.1.5"):
        with pytest.raises(AddressUnavailable, match="not a usable host address"):
            ipam.allocate(A(bad))


def test_round_trip() -> None:
    ipam = NetworkIpam(N("10.0.0.0/24"), A("10.0.0.1"))
    ipam.allocate()
    ipam.allocate(A("10.0.0.9"))
    data = ipam.to_dict()
    assert data == {
        "subnet": "10.0.0.0/24",
        "gateway": "10.0.0.1",
        "allocated": ["10.0.0.2", "10.0.0.9"],
        "cursor": "10.0.0.2",
    }
    again = NetworkIpam.from_dict(data)
    assert again == ipam
    assert again.allocate() == A("10.0.0.3")


def test_mac_like_docker() -> None:
    assert mac_for_ip(A("172.17.0.2")) == "02:42:ac:11:00:02"
