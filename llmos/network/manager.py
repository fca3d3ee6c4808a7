"""NetworkManager: the network layer's one entry point for the daemon and the runtime.

It owns the persisted state (``store.py``) and derives the kernel objects from it: bridges and
veths (``bridge.py``/``links.py``), the ``inet llmos`` nft table (``firewall.py``) and the DNS
zones (``dns.py``). Everything acts on the network namespace of the thread that created the
manager (the daemon's, i.e. the host's; the integration tests run it inside a namespace that
stands for the host).

Each mutating call validates everything first, then changes the kernel, then commits the
in-memory state and persists it; a failure on the way undoes the kernel changes made so far, so
bad input leaves nothing half-applied. A crash between kernel and file is mended by
``restore()``, which the daemon runs at start.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from pyroute2 import IPRoute

from llmos.network import bridge as br
from llmos.network import firewall as fw
from llmos.network import links
from llmos.network.containerfiles import container_resolv_conf, hostname_content, hosts_content
from llmos.network.dns import DnsResponder, Zone, build_zone
from llmos.network.errors import (
    EndpointExists,
    EndpointNotFound,
    InvalidArgument,
    NetworkError,
    NetworkExists,
    NetworkInUse,
    NetworkNotFound,
    SubnetOverlap,
)
from llmos.network.ipam import (
    DEFAULT_BRIDGE_SUBNET,
    DEFAULT_POOL,
    DEFAULT_POOL_PREFIXLEN,
    NetworkIpam,
    check_gateway,
    default_gateway,
    find_overlap,
    mac_for_ip,
    parse_address,
    parse_subnet,
    pick_subnet,
)
from llmos.network.model import (
    Endpoint,
    NetworkInfo,
    RestoreReport,
    hold_host_port,
    host_port_free,
)
from llmos.network.modes import DEFAULT_NETWORK, validate_network_name
from llmos.network.ports import PortBinding, PortSpec, parse_port_spec, resolve_bindings
from llmos.network.store import (
    STATE_FILE,
    EndpointRecord,
    NetworkRecord,
    PublishedRecord,
    State,
    StateStore,
)

RESERVED_NAMES = ("host", "none", "default")

log = logging.getLogger(__name__)


class NetworkManager:
    """Networks, endpoints, published ports and DNS for one host (see module docstring)."""

    def __init__(
        self,
        state_dir: str,
        *,
        pool: IPv4Network = DEFAULT_POOL,
        pool_prefixlen: int = DEFAULT_POOL_PREFIXLEN,
        default_subnet: IPv4Network = DEFAULT_BRIDGE_SUBNET,
        dns: bool = True,
        dns_upstreams: Sequence[tuple[str, int]] | None = None,
        host_resolv_conf: str = "/etc/resolv.conf",
        check_host_ports: bool = True,
        nft: str = fw.NFT,
    ) -> None:
        self.state_dir = state_dir
        self.pool = pool
        self.pool_prefixlen = pool_prefixlen
        self.default_subnet = default_subnet
        self.host_resolv_conf = host_resolv_conf
        self.check_host_ports = check_host_ports
        self.nft = nft
        self._store = StateStore(state_dir)
        self._state = self._store.load()
        self._lock = threading.RLock()
        self._ipr: Any = IPRoute()
        self._dns = DnsResponder(dns_upstreams) if dns else None
        self._held: dict[PortBinding, socket.socket] = {}  # see model.hold_host_port
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Release sockets (DNS listeners, netlink); kernel objects stay for the next start."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._release_held(keep=())
            if self._dns is not None:
                self._dns.close()
            self._ipr.close()

    def __enter__(self) -> NetworkManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- lookups --------------------------------------------------------------------------------

    def _network(self, ref: str) -> NetworkRecord:
        """By name, full id, or unique id prefix (as Docker resolves network references)."""
        if ref in self._state.networks:
            return self._state.networks[ref]
        matches = [n for n in self._state.networks.values() if ref and n.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        raise NetworkNotFound(f"network {ref}: not found")

    def _info(self, rec: NetworkRecord) -> NetworkInfo:
        return NetworkInfo(
            id=rec.id,
            name=rec.name,
            bridge=rec.bridge,
            subnet=rec.subnet,
            gateway=rec.gateway,
            internal=rec.internal,
            default=rec.default,
            containers=tuple(sorted(rec.endpoints)),
        )

    @staticmethod
    def _endpoint(rec: NetworkRecord, ep: EndpointRecord) -> Endpoint:
        return Endpoint(
            network=rec.name,
            container_id=ep.container_id,
            ip=ep.ip,
            prefixlen=rec.subnet.prefixlen,
            mac=ep.mac,
            gateway=rec.gateway,
            ifname=ep.ifname,
            host_veth=ep.host_veth,
        )

    def list_networks(self) -> list[NetworkInfo]:
        with self._lock:
            return [self._info(r) for _, r in sorted(self._state.networks.items())]

    def get_network(self, name: str) -> NetworkInfo:
        """By name, id or unique id prefix."""
        with self._lock:
            return self._info(self._network(name))

    def inspect_network(self, name: str) -> dict[str, Any]:
        """Docker's ``network inspect`` shape where the field exists."""
        with self._lock:
            rec = self._network(name)
            return {
                "Name": rec.name,
                "Id": rec.id,
                "Created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(rec.created)),
                "Driver": "bridge",
                "Internal": rec.internal,
                "IPAM": {
                    "Driver": "default",
                    "Config": [{"Subnet": str(rec.subnet), "Gateway": str(rec.gateway)}],
                },
                "Options": {"com.docker.network.bridge.name": rec.bridge},
                "Containers": {
                    cid: {
                        "Name": ep.name,
                        "MacAddress": ep.mac,
                        "IPv4Address": f"{ep.ip}/{rec.subnet.prefixlen}",
                    }
                    for cid, ep in sorted(rec.endpoints.items())
                },
            }

    def endpoints(self, container_id: str) -> list[Endpoint]:
        """A container's endpoints in connection order."""
        with self._lock:
            found = [
                (ep.seq, self._endpoint(rec, ep))
                for rec in self._state.networks.values()
                for cid, ep in rec.endpoints.items()
                if cid == container_id
            ]
            return [e for _, e in sorted(found, key=lambda t: t[0])]

    def ports(self, container_id: str | None = None) -> list[PortBinding]:
        """Published ports of one container (or all): what ``llmos port`` prints."""
        with self._lock:
            return [
                p.binding
                for p in self._state.published
                if container_id is None or p.container_id == container_id
            ]

    # -- kernel sync helpers ----------------------------------------------------------------------

    def _save(self) -> None:
        self._store.save(self._state)
        self._release_held(keep={p.binding for p in self._state.published})

    def _hold(self, bindings: Iterable[PortBinding]) -> None:
        """Hold the host ports of new bindings; all or none (see model.hold_host_port)."""
        if not self.check_host_ports:
            return
        made: list[PortBinding] = []
        try:
            for b in bindings:
                if b not in self._held:
                    self._held[b] = hold_host_port(b)
                    made.append(b)
        except BaseException:
            for b in made:
                self._held.pop(b).close()
            raise

    def _release_held(self, keep: Collection[PortBinding]) -> None:
        for b in [b for b in self._held if b not in keep]:
            self._held.pop(b).close()

    def _apply_firewall(
        self,
        networks: Iterable[NetworkRecord] | None = None,
        published: Iterable[PublishedRecord] | None = None,
    ) -> None:
        nets = self._state.networks.values() if networks is None else networks
        pubs = self._state.published if published is None else published
        fw.apply(
            [fw.FirewallNetwork(n.name, n.bridge, n.subnet, n.internal) for n in nets],
            [fw.FirewallPort(p.binding, p.container_ip, p.container_id) for p in pubs],
            self.nft,
        )

    def _zone(self, rec: NetworkRecord) -> Zone:
        entries: list[tuple[IPv4Address, Sequence[str]]] = []
        if not rec.default:  # Docker's default bridge has no name resolution between peers
            for cid, ep in sorted(rec.endpoints.items()):
                names = [ep.name, *ep.aliases, cid[:12]]
                entries.append((ep.ip, [n for n in names if n]))
        return build_zone(rec.subnet, entries, forward=not rec.internal)

    def _sync_dns(self, rec: NetworkRecord) -> None:
        """Publish the network's names; a listener that cannot bind degrades, not fails.

        Port 53 on the gateway can be taken by a host resolver bound to the wildcard address
        (dnsmasq without bind-interfaces). Refusing to create networks for that would be worse
        than containers on that network using the host's resolvers, so it is logged and
        ``container_files`` falls back to them.
        """
        if self._dns is None:
            return
        try:
            self._dns.set_zone(rec.gateway, self._zone(rec))
        except OSError as exc:
            log.warning(
                "network %s: DNS responder cannot listen on %s:53 (%s); containers on it "
                "use the host's resolvers",
                rec.name,
                rec.gateway,
                exc.strerror,
            )

    def _host_routes(self) -> list[IPv4Network]:
        """Routes of the host (minus default and our bridges): auto subnets must avoid them."""
        ours = {
            int(i)
            for b in (r.bridge for r in self._state.networks.values())
            for i in self._ipr.link_lookup(ifname=b)
        }
        result = []
        for route in self._ipr.get_routes(family=socket.AF_INET, table=254):
            dst = route.get("RTA_DST")
            if not dst or route["dst_len"] == 0 or route.get("RTA_OIF") in ours:
                continue
            result.append(IPv4Network(f"{dst}/{route['dst_len']}", strict=False))
        return result

    # -- networks -------------------------------------------------------------------------------

    def ensure_default_network(self) -> NetworkInfo:
        """The ``bridge`` network (``llmos0``); created on first use, like docker0."""
        with self._lock:
            if DEFAULT_NETWORK in self._state.networks:
                return self._info(self._state.networks[DEFAULT_NETWORK])
            return self._create(
                DEFAULT_NETWORK, self.default_subnet, None, internal=False, default=True
            )

    def create_network(
        self,
        name: str,
        subnet: str | IPv4Network | None = None,
        gateway: str | IPv4Address | None = None,
        internal: bool = False,
    ) -> NetworkInfo:
        """``llmos network create [--subnet S] [--gateway G] [--internal] NAME``."""
        validate_network_name(name)
        if name in RESERVED_NAMES or name == DEFAULT_NETWORK:
            raise NetworkExists(f"network {name}: the name is reserved (predefined network)")
        net = parse_subnet(subnet) if isinstance(subnet, str) else subnet
        gw = parse_address(gateway, "gateway") if isinstance(gateway, str) else gateway
        if gw is not None and net is None:
            raise InvalidArgument(f"gateway {gw}: --gateway needs --subnet")
        with self._lock:
            return self._create(name, net, gw, internal=internal, default=False)

    def _create(
        self,
        name: str,
        subnet: IPv4Network | None,
        gateway: IPv4Address | None,
        internal: bool,
        default: bool,
    ) -> NetworkInfo:
        if name in self._state.networks:
            raise NetworkExists(f"network {name}: already exists")
        existing = {n.name: n.subnet for n in self._state.networks.values()}
        if subnet is None:
            taken = list(existing.values()) + self._host_routes()
            subnet = pick_subnet(taken, self.pool, self.pool_prefixlen)
        else:
            clash = find_overlap(subnet, existing)
            if clash is not None:
                raise SubnetOverlap(f"subnet {subnet}: overlaps network {clash[0]!r} ({clash[1]})")
        gateway = gateway if gateway is not None else default_gateway(subnet)
        check_gateway(subnet, gateway)
        net_id = secrets.token_hex(32)
        rec = NetworkRecord(
            id=net_id,
            name=name,
            bridge=br.bridge_name(net_id, default=default),
            internal=internal,
            default=default,
            created=time.time(),
            ipam=NetworkIpam(subnet, gateway),
        )
        br.enable_forwarding()
        br.ensure_bridge(self._ipr, rec.bridge, subnet, gateway)
        try:
            self._apply_firewall([*self._state.networks.values(), rec])
            self._sync_dns(rec)
        except BaseException:
            br.delete_bridge(self._ipr, rec.bridge)
            if self._dns is not None:
                self._dns.remove_zone(gateway)
            try:
                self._apply_firewall()
            except NetworkError:
                pass
            raise
        self._state.networks[name] = rec
        self._save()
        return self._info(rec)

    def remove_network(self, name: str) -> None:
        """``llmos network rm``: refused while containers are connected, or for ``bridge``."""
        with self._lock:
            if name == DEFAULT_NETWORK:
                raise NetworkInUse(f"network {name}: predefined network, cannot be removed")
            rec = self._network(name)
            if rec.default:
                raise NetworkInUse(f"network {rec.name}: predefined network, cannot be removed")
            if rec.endpoints:
                names = ", ".join(sorted(ep.name or cid[:12] for cid, ep in rec.endpoints.items()))
                raise NetworkInUse(
                    f"network {rec.name}: in use by {len(rec.endpoints)} container(s): {names}"
                )
            remaining = [n for n in self._state.networks.values() if n.name != rec.name]
            self._apply_firewall(remaining)
            if self._dns is not None:
                self._dns.remove_zone(rec.gateway)
            br.delete_bridge(self._ipr, rec.bridge)
            del self._state.networks[rec.name]
            self._save()

    # -- endpoints ------------------------------------------------------------------------------

    def connect(
        self,
        network: str,
        container_id: str,
        netns_path: str,
        name: str = "",
        aliases: Sequence[str] = (),
        ip: str | IPv4Address | None = None,
    ) -> Endpoint:
        """Wire the container's namespace into the network (veth, address, route, DNS name)."""
        if not container_id:
            raise InvalidArgument("container_id: empty")
        requested = parse_address(ip, "ip") if isinstance(ip, str) else ip
        with self._lock:
            if network == DEFAULT_NETWORK:
                self.ensure_default_network()
            rec = self._network(network)
            if container_id in rec.endpoints:
                raise EndpointExists(
                    f"container {name or container_id[:12]}: already connected to network "
                    f"{rec.name}"
                )
            if requested is not None and rec.default:
                raise InvalidArgument(
                    f"ip {requested}: user-specified addresses need a user-defined network"
                )
            has_route = any(
                ep.default_route
                for other in self._state.networks.values()
                for cid, ep in other.endpoints.items()
                if cid == container_id
            )
            addr = rec.ipam.allocate(requested)
            try:
                bridge_idx = br.ensure_bridge(self._ipr, rec.bridge, rec.subnet, rec.gateway)
                spec = links.EndpointSpec(
                    host_ifname=links.host_veth_name(rec.id, container_id),
                    address=addr,
                    subnet=rec.subnet,
                    gateway=rec.gateway,
                    mac=mac_for_ip(addr),
                    bridge_index=bridge_idx,
                    default_route=not rec.internal and not has_route,
                )
                links.delete_link(self._ipr, spec.host_ifname)  # a leftover of a crash
                ifname, routed = links.create_endpoint(self._ipr, netns_path, spec)
            except BaseException:
                rec.ipam.release(addr)
                raise
            self._state.seq += 1
            ep = EndpointRecord(
                container_id=container_id,
                name=name,
                aliases=[a for a in aliases if a],
                ip=addr,
                mac=spec.mac,
                ifname=ifname,
                host_veth=spec.host_ifname,
                netns=netns_path,
                default_route=routed,
                seq=self._state.seq,
            )
            rec.endpoints[container_id] = ep
            try:
                self._sync_dns(rec)
                self._save()
            except BaseException:
                del rec.endpoints[container_id]
                rec.ipam.release(addr)
                links.delete_link(self._ipr, spec.host_ifname)
                raise
            return self._endpoint(rec, ep)

    def disconnect(self, network: str, container_id: str, force: bool = False) -> None:
        """Remove the endpoint: veth (both ends), address, DNS names, ports published on it."""
        with self._lock:
            rec = self._network(network)
            ep = rec.endpoints.get(container_id)
            if ep is None:
                if force:
                    return
                raise EndpointNotFound(
                    f"container {container_id[:12]}: not connected to network {rec.name}"
                )
            dropped = [
                p
                for p in self._state.published
                if p.container_id == container_id and p.network == rec.name
            ]
            if dropped:
                kept = [p for p in self._state.published if p not in dropped]
                self._apply_firewall(published=kept)
                self._state.published = kept
            links.delete_link(self._ipr, ep.host_veth)
            del rec.endpoints[container_id]
            rec.ipam.release(ep.ip)
            self._sync_dns(rec)
            self._save()

    def disconnect_all(self, container_id: str) -> None:
        """Everything of one container (the runtime calls it when the container is deleted)."""
        with self._lock:
            if any(p.container_id == container_id for p in self._state.published):
                self.unpublish(container_id)
            for rec in list(self._state.networks.values()):
                if container_id in rec.endpoints:
                    self.disconnect(rec.name, container_id)

    # -- published ports ------------------------------------------------------------------------

    def publish(
        self,
        container_id: str,
        ports: Iterable[str | PortSpec],
        network: str | None = None,
    ) -> list[PortBinding]:
        """DNAT host ports to the container; returns the bindings with host ports resolved.

        All specs are parsed and checked (against published ports and the host's listeners)
        before one nft transaction applies them all, so an error applies none.
        """
        specs = [p if isinstance(p, PortSpec) else parse_port_spec(p) for p in ports]
        with self._lock:
            target = self._publish_target(container_id, network)
            ep = target.endpoints[container_id]
            bindings = resolve_bindings(
                specs,
                [p.binding for p in self._state.published],
                is_free=host_port_free if self.check_host_ports else (lambda _b: True),
            )
            new = [PublishedRecord(container_id, target.name, ep.ip, b) for b in bindings]
            published = [*self._state.published, *new]
            self._hold(bindings)
            try:
                self._apply_firewall(published=published)
            except BaseException:
                self._release_held(keep={p.binding for p in self._state.published})
                raise
            self._state.published = published
            self._save()
            return bindings

    def _publish_target(self, container_id: str, network: str | None) -> NetworkRecord:
        if network is not None:
            rec = self._network(network)
            if container_id not in rec.endpoints:
                raise EndpointNotFound(
                    f"container {container_id[:12]}: not connected to network {rec.name}"
                )
            if rec.internal:
                raise InvalidArgument(
                    f"network {rec.name}: internal, ports cannot be published from it"
                )
            return rec
        candidates = sorted(
            (rec.endpoints[container_id].seq, rec.name)
            for rec in self._state.networks.values()
            if container_id in rec.endpoints and not rec.internal
        )
        if not candidates:
            raise EndpointNotFound(
                f"container {container_id[:12]}: not connected to a non-internal network, "
                "nothing to publish ports to"
            )
        return self._state.networks[candidates[0][1]]

    def unpublish(self, container_id: str, ports: Iterable[PortBinding] | None = None) -> None:
        """Remove the container's published ports (all, or the given bindings)."""
        with self._lock:
            wanted = None if ports is None else set(ports)
            kept = [
                p
                for p in self._state.published
                if p.container_id != container_id
                or (wanted is not None and p.binding not in wanted)
            ]
            if len(kept) == len(self._state.published):
                return
            self._apply_firewall(published=kept)
            self._state.published = kept
            self._save()

    # -- container files ------------------------------------------------------------------------

    def container_files(
        self, container_id: str, hostname: str, aliases: Sequence[str] = ()
    ) -> dict[str, str]:
        """/etc/hosts, /etc/resolv.conf and /etc/hostname contents for a connected container.

        The nameserver is the gateway of the container's first network, where our DNS
        responder listens; without DNS the host's (non-loopback) resolvers are used.
        """
        eps = self.endpoints(container_id)
        try:
            with open(self.host_resolv_conf, encoding="utf-8") as fh:
                host_resolv = fh.read()
        except OSError:
            host_resolv = ""
        dns_server = None
        if eps and self._dns is not None and self._dns.zone(eps[0].gateway) is not None:
            dns_server = str(eps[0].gateway)
        return {
            "hosts": hosts_content(hostname, [str(e.ip) for e in eps], aliases),
            "resolv.conf": container_resolv_conf(host_resolv, dns_server),
            "hostname": hostname_content(hostname),
        }

    # -- restart and cleanup --------------------------------------------------------------------

    def restore(self, live_containers: Collection[str] | None = None) -> RestoreReport:
        """Re-create bridges, rules and DNS from state; drop what belongs to no container.

        An endpoint survives if its host veth still exists (the kernel removes a veth pair when
        the container's namespace dies) and, when ``live_containers`` is given, its container
        is in it. llmos links that no endpoint or network claims are deleted.
        """
        report = RestoreReport()
        with self._lock:
            self.ensure_default_network()
            br.enable_forwarding()
            present = br.list_llmos_links(self._ipr)
            for rec in self._state.networks.values():
                bridge_index = br.ensure_bridge(self._ipr, rec.bridge, rec.subnet, rec.gateway)
                report.networks.append(rec.name)
                for cid, ep in list(rec.endpoints.items()):
                    alive = ep.host_veth in present and (
                        live_containers is None or cid in live_containers
                    )
                    if alive:
                        links.attach_host_side(self._ipr, ep.host_veth, bridge_index)
                        report.kept_endpoints.append((rec.name, cid))
                        continue
                    links.delete_link(self._ipr, ep.host_veth)
                    del rec.endpoints[cid]
                    rec.ipam.release(ep.ip)
                    report.removed_endpoints.append((rec.name, cid))
            claimed = {r.bridge for r in self._state.networks.values()} | {
                ep.host_veth for r in self._state.networks.values() for ep in r.endpoints.values()
            }
            for name in sorted(set(present) - claimed):
                if br.is_llmos_bridge(name):
                    br.delete_bridge(self._ipr, name)
                else:
                    links.delete_link(self._ipr, name)
                report.removed_links.append(name)
            kept_ports = []
            for p in self._state.published:
                owner = self._state.networks.get(p.network)
                if owner is not None and p.container_id in owner.endpoints:
                    kept_ports.append(p)
                else:
                    report.removed_ports.append(f"{p.container_id[:12]} {p.binding.describe()}")
            self._apply_firewall(published=kept_ports)
            self._state.published = kept_ports
            for p in kept_ports:
                try:
                    self._hold([p.binding])
                except NetworkError as exc:
                    # Taken while no daemon held it: the DNAT still wins; say so.
                    log.warning("published port %s: %s", p.binding.describe(), exc)
            for rec in self._state.networks.values():
                self._sync_dns(rec)
            self._save()
        return report

    def teardown_all(self) -> None:
        """Remove every llmos bridge, veth, rule, DNS listener and the state file (tests)."""
        with self._lock:
            for rec in self._state.networks.values():
                for ep in rec.endpoints.values():
                    links.delete_link(self._ipr, ep.host_veth)
                if self._dns is not None:
                    self._dns.remove_zone(rec.gateway)
            for name in br.list_llmos_links(self._ipr):
                if br.is_llmos_bridge(name):
                    br.delete_bridge(self._ipr, name)
                else:
                    links.delete_link(self._ipr, name)
            fw.remove(self.nft)
            self._state = State()
            self._store.delete()
            self._release_held(keep=())


def state_file(state_dir: str) -> str:
    """Where the manager keeps its state (for tools and tests)."""
    return os.path.join(state_dir, STATE_FILE)


__all__ = [
    "Endpoint",
    "NetworkInfo",
    "NetworkManager",
    "RestoreReport",
    "state_file",
]
