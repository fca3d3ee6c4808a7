"""The network layer on the real kernel, inside namespaces the lab creates (see conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from ipaddress import IPv4Address

import pytest

from llmos.network import dnsmsg
from tests.integration.network.netlab import (
    HOST_IP,
    OUTSIDE_IP,
    UPSTREAM_ANSWER,
    Lab,
    RemoteError,
)

pytestmark = pytest.mark.root

SHORT = "1"  # seconds for connections that must fail


def reply(lab: Lab, ns: str, proto: str, host: str, port: int, timeout: str = "2") -> str:
    out = lab.peer(ns, f"{proto}-get", host, str(port), timeout)
    return out.stdout.strip() if out.returncode == 0 else ""


def dns_query(lab: Lab, ns: str, server: str, name: str, qtype: int,
              tcp: bool = False) -> dnsmsg.Message:
    """Ask ``server`` directly with our own encoder, from inside ``ns``; over TCP (RFC 7766
    framing) as a resolver does after a truncated answer."""
    if tcp:
        code = (
            "import socket,sys;q=bytes.fromhex(sys.argv[1]);"
            f"s=socket.create_connection(({server!r},53),timeout=3);"
            "s.sendall(len(q).to_bytes(2,'big')+q);n=int.from_bytes(s.recv(2),'big');b=b''\n"
            "while len(b)<n: b+=s.recv(n-len(b))\n"
            "print(b.hex())"
        )
    else:
        code = (
            "import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(3);"
            f"s.sendto(bytes.fromhex(sys.argv[1]),({server!r},53));"
            "print(s.recv(4096).hex())"
        )
    query = dnsmsg.build_query(name, qtype, ident=4242).hex()
    out = lab.ns_exec(ns, "python3", "-c", code, query)
    msg = dnsmsg.parse_message(bytes.fromhex(out.stdout.strip()))
    assert msg.id == 4242
    return msg


def test_user_network_by_name_alias_and_address(lab: Lab) -> None:
    lab.call("create_network", name="front")
    web = lab.container("front", name="web", aliases=("www",))
    client = lab.container("front", name="client")
    lab.spawn(web.netns, "tcp-server", "8000", "web")

    assert lab.peer(client.netns, "resolve", "web").stdout.strip() == web.ip
    assert lab.peer(client.netns, "resolve", "www").stdout.strip() == web.ip
    assert reply(lab, client.netns, "tcp", "web", 8000) == f"web {client.ip}"
    assert reply(lab, client.netns, "tcp", "www", 8000) == f"web {client.ip}"
    assert reply(lab, client.netns, "tcp", web.ip, 8000) == f"web {client.ip}"

    gw = client.endpoint["gateway"]
    ptr = dns_query(lab, client.netns, gw, dnsmsg.reverse_name(IPv4Address(web.ip)), 12)
    assert [a.value for a in ptr.answers] == ["web"]
    # other names go to the host's resolver (the fake one in the outside namespace)
    assert lab.peer(client.netns, "resolve", "example.test").stdout.strip() == UPSTREAM_ANSWER
    unknown = dns_query(lab, client.netns, gw, "nosuchcontainer", dnsmsg.TYPE_A)
    assert unknown.rcode == dnsmsg.RCODE_NXDOMAIN
    # over TCP too: local names, and other names forwarded over TCP (the fake upstream
    # answers TCP with the next address, so the transport used shows)
    by_tcp = dns_query(lab, client.netns, gw, "www", dnsmsg.TYPE_A, tcp=True)
    assert [a.value for a in by_tcp.answers] == [web.ip]
    forwarded = dns_query(lab, client.netns, gw, "example.test", dnsmsg.TYPE_A, tcp=True)
    assert [a.value for a in forwarded.answers] == ["192.0.2.100"]
    assert UPSTREAM_ANSWER == "192.0.2.99"


def test_default_bridge_by_address_not_by_name(lab: Lab) -> None:
    a = lab.container(name="alpha")
    b = lab.container(name="beta")
    assert a.endpoint["ifname"] == "eth0"
    assert a.ip.startswith("172.29.")
    lab.spawn(a.netns, "tcp-server", "8000", "alpha")
    assert reply(lab, b.netns, "tcp", a.ip, 8000) == f"alpha {b.ip}"
    msg = dns_query(lab, b.netns, b.endpoint["gateway"], "alpha", dnsmsg.TYPE_A)
    assert msg.rcode == dnsmsg.RCODE_NXDOMAIN  # as in Docker: no names on the default bridge


def test_networks_are_isolated(lab: Lab) -> None:
    lab.call("create_network", name="neta")
    lab.call("create_network", name="netb")
    a = lab.container("neta", name="a")
    b = lab.container("netb", name="b")
    b2 = lab.container("netb", name="b2")
    lab.spawn(a.netns, "tcp-server", "8000", "a")
    lab.spawn(b.netns, "tcp-server", "8000", "b")
    assert reply(lab, b2.netns, "tcp", b.ip, 8000) == f"b {b2.ip}"  # the controls: same net
    assert reply(lab, lab.host, "tcp", a.ip, 8000) == f"a {a.endpoint['gateway']}"  # and host
    assert reply(lab, b.netns, "tcp", a.ip, 8000, SHORT) == ""
    assert reply(lab, a.netns, "tcp", b.ip, 8000, SHORT) == ""
    assert lab.peer(b.netns, "resolve", "a").returncode != 0  # names stay per network


def test_internal_network_has_no_way_out(lab: Lab) -> None:
    lab.call("create_network", name="priv", internal=True)
    p1 = lab.container("priv", name="p1")
    p2 = lab.container("priv", name="p2")
    lab.spawn(lab.outside, "tcp-server", "9000", "outside")
    lab.spawn(p1.netns, "tcp-server", "8000", "p1")
    assert reply(lab, p2.netns, "tcp", "p1", 8000) == f"p1 {p2.ip}"  # inside: fine
    assert reply(lab, lab.host, "tcp", OUTSIDE_IP, 9000) == f"outside {HOST_IP}"  # control
    routes = lab.ns_exec(p1.netns, "ip", "route").stdout
    assert "default" not in routes
    # even with a route added by hand, the host drops it
    lab.ns_exec(p1.netns, "ip", "route", "add", "default", "via", p1.endpoint["gateway"])
    assert reply(lab, p1.netns, "tcp", OUTSIDE_IP, 9000, SHORT) == ""
    # and nothing comes in: the outside machine routed at the subnet gets nowhere
    lab.ns_exec(lab.outside, "ip", "route", "add", "172.30.0.0/16", "via", HOST_IP)
    assert reply(lab, lab.outside, "tcp", p1.ip, 8000, SHORT) == ""
    # no upstream forwarding either
    msg = dns_query(lab, p1.netns, p1.endpoint["gateway"], "example.test", dnsmsg.TYPE_A)
    assert msg.rcode == dnsmsg.RCODE_NXDOMAIN and not msg.answers
    # publishing from an internal network is refused
    with pytest.raises(RemoteError, match="not connected to a non-internal network"):
        lab.call("publish", container_id=p1.netns, ports=["8080:8000"])


def test_published_ports_tcp_udp_everywhere(lab: Lab) -> None:
    web = lab.container(name="web")
    lab.spawn(web.netns, "tcp-server", "80", "web")
    lab.spawn(web.netns, "udp-server", "53", "dns")
    bindings = lab.call("publish", container_id=web.netns, ports=["8080:80", "5353:53/udp", "80"])
    assert [(b["host_port"], b["proto"]) for b in bindings[:2]] == [(8080, "tcp"), (5353, "udp")]
    random_port = bindings[2]["host_port"]
    assert 49153 <= random_port <= 60999
    assert lab.call("ports", container_id=web.netns) == bindings

    gw = web.endpoint["gateway"]
    # from the host itself: loopback (masqueraded to the gateway) and its own address
    assert reply(lab, lab.host, "tcp", "127.0.0.1", 8080) == f"web {gw}"
    assert reply(lab, lab.host, "tcp", HOST_IP, 8080) == f"web {HOST_IP}"
    # from another machine: the client's address is preserved, as with Docker
    assert reply(lab, lab.outside, "tcp", HOST_IP, 8080) == f"web {OUTSIDE_IP}"
    assert reply(lab, lab.outside, "tcp", HOST_IP, random_port) == f"web {OUTSIDE_IP}"
    # udp, the same three ways
    assert reply(lab, lab.host, "udp", "127.0.0.1", 5353) == f"dns {gw}"
    assert reply(lab, lab.host, "udp", HOST_IP, 5353) == f"dns {HOST_IP}"
    assert reply(lab, lab.outside, "udp", HOST_IP, 5353) == f"dns {OUTSIDE_IP}"

    # a loopback-only binding is not reachable from outside
    api = lab.container(name="api")
    lab.spawn(api.netns, "tcp-server", "80", "api")
    lab.call("publish", container_id=api.netns, ports=["127.0.0.1:9090:80"])
    assert reply(lab, lab.host, "tcp", "127.0.0.1", 9090) == f"api {gw}"
    assert reply(lab, lab.outside, "tcp", HOST_IP, 9090, SHORT) == ""

    # unpublish removes the DNAT
    lab.call("unpublish", container_id=web.netns)
    assert reply(lab, lab.outside, "tcp", HOST_IP, 8080, SHORT) == ""
    assert reply(lab, lab.host, "tcp", "127.0.0.1", 9090) == f"api {gw}"


def test_hairpin_and_other_network_to_published_port(lab: Lab) -> None:
    web = lab.container(name="web")
    peer = lab.container(name="peer")
    lab.spawn(web.netns, "tcp-server", "80", "web")
    lab.call("publish", container_id=web.netns, ports=["8080:80"])
    gw = web.endpoint["gateway"]
    # a container to its host's published port, landing on its own bridge: masqueraded
    assert reply(lab, peer.netns, "tcp", HOST_IP, 8080) == f"web {gw}"
    assert reply(lab, peer.netns, "tcp", gw, 8080) == f"web {gw}"
    # the container to its own published port
    assert reply(lab, web.netns, "tcp", HOST_IP, 8080) == f"web {gw}"
    # a container on another network can use published ports (as with Docker)
    lab.call("create_network", name="other")
    far = lab.container("other", name="far")
    assert reply(lab, far.netns, "tcp", HOST_IP, 8080).startswith("web ")


def test_outbound_nat_uses_host_address(lab: Lab) -> None:
    lab.spawn(lab.outside, "tcp-server", "9000", "outside")
    lab.spawn(lab.outside, "udp-server", "9001", "outside")
    lab.call("create_network", name="front")
    for c in (lab.container(name="b1"), lab.container("front", name="f1")):
        assert reply(lab, c.netns, "tcp", OUTSIDE_IP, 9000) == f"outside {HOST_IP}"
        assert reply(lab, c.netns, "udp", OUTSIDE_IP, 9001) == f"outside {HOST_IP}"
    # with no route back to the containers, the outside never sees a container address


def test_restart_restores_and_collects(lab: Lab) -> None:
    lab.call("create_network", name="front")
    web = lab.container("front", name="web", aliases=("www",))
    gone = lab.container("front", name="gone")
    client = lab.container("front", name="client")
    lab.spawn(web.netns, "tcp-server", "80", "web")
    lab.call("publish", container_id=web.netns, ports=["8080:80"])
    lab.call("publish", container_id=gone.netns, ports=["8081:80"])

    front_bridge = lab.call("state")["front"]["bridge"]
    # the daemon dies; meanwhile one container goes away (its namespace with it)
    lab.stop_agent(graceful=False)
    lab.ns_exec(lab.host, "nft", "delete", "table", "inet", "llmos")  # e.g. a firewall reload
    lab.namespaces.remove(gone.netns)
    subprocess.run(["ip", "netns", "del", gone.netns], check=True)
    # and a bridge no network claims (say, from a crash mid-create), a veth pair nobody
    # claims, and the network's own bridge deleted by hand: its ports fall off with it
    lab.ns_exec(lab.host, "ip", "link", "add", "llmos-0rphan", "type", "bridge")
    lab.ns_exec(lab.host, "ip", "link", "add", "llv0rphan", "type", "veth", "peer", "name",
                "llv0rphanpeer")
    lab.ns_exec(lab.host, "ip", "link", "del", front_bridge)
    lab.start_agent()
    report = lab.call("restore", live_containers=[web.netns, client.netns])
    assert ["front", gone.netns] in report["removed_endpoints"]
    assert sorted(report["kept_endpoints"]) == sorted(
        [["front", web.netns], ["front", client.netns]]
    )
    assert any("8081" in p for p in report["removed_ports"])

    assert reply(lab, lab.outside, "tcp", HOST_IP, 8080) == f"web {OUTSIDE_IP}"
    assert reply(lab, client.netns, "tcp", "www", 80) == f"web {client.ip}"
    state = lab.call("state")["front"]
    assert gone.ip not in state["allocated"] and "gone" not in state["dns_names"]
    assert sorted(state["endpoints"]) == sorted([web.netns, client.netns])
    assert [b["host_port"] for b in lab.call("ports")] == [8080]
    assert "llmos-0rphan" in report["removed_links"]
    assert "llv0rphan" in report["removed_links"] or "llv0rphanpeer" in report["removed_links"]
    left = lab.llmos_links()
    assert not {"llmos-0rphan", "llv0rphan", "llv0rphanpeer"} & set(left), left
    # addresses were persisted: a newcomer gets a fresh one and reaches the old ones by name
    late = lab.container("front", name="late")
    assert late.ip not in (web.ip, client.ip)
    assert reply(lab, late.netns, "tcp", "web", 80) == f"web {late.ip}"


def test_bad_input_is_refused_and_nothing_half_applied(lab: Lab) -> None:
    lab.call("create_network", name="front", subnet="10.123.0.0/16")
    links_before = lab.llmos_links()
    with pytest.raises(RemoteError, match=r"overlaps network 'front' \(10.123.0.0/16\)"):
        lab.call("create_network", name="back", subnet="10.123.4.0/24")
    with pytest.raises(RemoteError, match="already exists"):
        lab.call("create_network", name="front")
    with pytest.raises(RemoteError, match="host bits set"):
        lab.call("create_network", name="back", subnet="10.124.0.1/16")
    assert lab.llmos_links() == links_before

    web = lab.container("front", name="web")
    other = lab.container("front", name="other")
    lab.call("publish", container_id=web.netns, ports=["8080:80"])
    rules = lab.llmos_rules()
    with pytest.raises(RemoteError, match="8080/tcp: already published"):
        lab.call("publish", container_id=other.netns, ports=["9000:90", "8080:80"])
    with pytest.raises(RemoteError, match="8080/tcp: already published"):
        lab.call("publish", container_id=other.netns, ports=["127.0.0.1:8080:80"])
    with pytest.raises(RemoteError, match="InvalidPortSpec: port spec '80:x'"):
        lab.call("publish", container_id=other.netns, ports=["9001:90", "80:x"])
    with pytest.raises(RemoteError, match="65536 is out of range"):
        lab.call("publish", container_id=other.netns, ports=["65536:80"])
    assert lab.llmos_rules() == rules  # 9000 and 9001 were not applied either
    assert lab.call("ports", container_id=other.netns) == []

    # a host service already bound on the port: refused rather than silently shadowed
    lab.spawn(lab.host, "tcp-server", "7000", "hostsvc")
    with pytest.raises(RemoteError, match="7000/tcp: already in use on the host"):
        lab.call("publish", container_id=other.netns, ports=["7000:80"])

    with pytest.raises(RemoteError, match=r"NetworkInUse: network front: in use by 2"):
        lab.call("remove_network", name="front")
    with pytest.raises(RemoteError, match="predefined"):
        lab.call("remove_network", name="bridge")

    # connecting a namespace that does not exist leaks no address and no veth
    state = lab.call("state")["front"]
    with pytest.raises(RemoteError, match="LinkError"):
        lab.call("connect", network="front", container_id="ghost", netns_path="/run/netns/nope")
    assert lab.call("state")["front"] == state
    with pytest.raises(RemoteError, match="already in use"):
        lab.call("connect", network="front", container_id="dup", netns_path=web.netns, ip=web.ip)
    with pytest.raises(RemoteError, match="already connected"):
        lab.call("connect", network="front", container_id=web.netns, netns_path=web.netns)
    assert lab.call("state")["front"] == state

    lab.call("disconnect_all", container_id=web.netns)
    lab.call("disconnect_all", container_id=other.netns)
    lab.call("remove_network", name="front")
    assert not [n for n in lab.llmos_links() if n.startswith("llmos-")]
    assert not any("10.123." in r for r in lab.llmos_rules())


def test_explicit_subnet_gateway_and_address(lab: Lab) -> None:
    info = lab.call("create_network", name="lab", subnet="10.77.0.0/24", gateway="10.77.0.254")
    assert info["gateway"] == "10.77.0.254"
    c = lab.container("lab", name="fixed", ip="10.77.0.10")
    assert c.ip == "10.77.0.10"
    assert c.endpoint["mac"] == "02:42:0a:4d:00:0a"
    out = lab.ns_exec(c.netns, "ip", "-o", "addr", "show", "eth0").stdout
    assert "10.77.0.10/24" in out
    assert "default via 10.77.0.254" in lab.ns_exec(c.netns, "ip", "route").stdout
    doc = lab.call("inspect_network", name="lab")
    assert doc["IPAM"]["Config"] == [{"Subnet": "10.77.0.0/24", "Gateway": "10.77.0.254"}]
    assert doc["Containers"][c.netns]["IPv4Address"] == "10.77.0.10/24"
    # a second network gives the same namespace eth1, and no second default route
    lab.call("create_network", name="lab2")
    ep2 = lab.call(
        "connect", network="lab2", container_id=c.netns, netns_path=c.netns, name="fixed"
    )
    assert ep2["ifname"] == "eth1"
    assert lab.ns_exec(c.netns, "ip", "route").stdout.count("default") == 1


@pytest.mark.slow
def test_500_cycles_leave_nothing_behind(lab: Lab) -> None:
    lab.call("create_network", name="churn")
    ns = lab.netns("cyc")
    rules_before = lab.llmos_rules()
    links_before = lab.llmos_links()
    result = lab.call(
        "cycles",
        timeout=300,
        network="churn",
        netns=ns,
        count=500,
        publish_every=10,
    )
    print(f"500 connect/disconnect cycles (50 with a publish): {result['seconds']:.1f}s")
    assert lab.llmos_links() == links_before
    assert lab.llmos_rules() == rules_before
    container_links = lab.ns_exec(ns, "ip", "-o", "link").stdout
    assert [ln.split(":")[1].strip() for ln in container_links.splitlines()] == ["lo"]
    state = lab.call("state")["churn"]
    state.pop("bridge")
    assert state == {"allocated": [], "endpoints": [], "dns_names": []}
    assert lab.call("ports") == []
    bridge = next(n for n in links_before if n.startswith("llmos-"))
    ports = lab.ns_exec(lab.host, "ip", "-o", "link", "show", "master", bridge).stdout
    assert ports.strip() == ""


BIND = """
import socket, sys
port, proto = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
if proto == "tcp":
    s.listen(1)
print("bound")
"""


def host_binds(lab: Lab, port: int, proto: str) -> bool:
    """Whether a host service (SO_REUSEADDR, as servers set it) could take the port now."""
    r = lab.ns_exec(lab.host, sys.executable, "-c", BIND, str(port), proto, check=False)
    assert r.returncode == 0 or "Address already in use" in r.stderr, r.stderr
    return r.returncode == 0


def test_published_ports_are_held_on_the_host(lab: Lab) -> None:
    """As docker-proxy does: while published, a host service cannot bind the port (it would
    be silently shadowed by the DNAT); after unpublish it can; a restart holds them again."""
    lab.call("create_network", name="front")
    web = lab.container("front", name="web")
    assert host_binds(lab, 8080, "tcp") and host_binds(lab, 5353, "udp")
    lab.call("publish", container_id=web.netns, ports=["8080:80", "5353:53/udp"])
    assert not host_binds(lab, 8080, "tcp")
    assert not host_binds(lab, 5353, "udp")
    lab.spawn(web.netns, "tcp-server", "80", "web")
    assert reply(lab, lab.outside, "tcp", HOST_IP, 8080) == f"web {OUTSIDE_IP}"
    assert reply(lab, lab.host, "tcp", "127.0.0.1", 8080).startswith("web ")
    lab.stop_agent(graceful=False)  # the daemon dies: its sockets with it
    assert host_binds(lab, 8080, "tcp")
    lab.start_agent()
    lab.call("restore", live_containers=[web.netns])
    assert not host_binds(lab, 8080, "tcp") and not host_binds(lab, 5353, "udp")
    lab.call("unpublish", container_id=web.netns)
    assert host_binds(lab, 8080, "tcp") and host_binds(lab, 5353, "udp")
