"""The embedded DNS responder: container names and aliases per network, the rest forwarded.

Docker answers on 127.0.0.11 inside each container, which needs a socket and NAT rules in every
container namespace. llmos instead listens on each network's gateway address (udp/53, in the
host namespace where the daemon lives) and writes that address into the container's
resolv.conf: one socket per network, no per-container rules, and because the daemon forwards
from the host namespace, host resolvers on loopback (systemd-resolved's 127.0.0.53) keep
working, which they cannot from inside a container.

Per network: names answer only with addresses on that network, so a container cannot learn
about containers it cannot reach. The default ``bridge`` network answers no container names
(as in Docker) but forwards, so builds get working DNS; ``--internal`` networks never forward.

One thread runs a ``selectors`` loop over all listening sockets; forwarded queries run on
short-lived threads (bounded), each with its own socket and timeout, so a slow upstream never
stalls local answers. TCP (RFC 7766) is served too, on the same address: a resolver whose UDP
answer came back truncated (TC) asks again over TCP, and that query is forwarded over TCP.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from llmos.network import dnsmsg
from llmos.network.containerfiles import parse_resolv_conf

log = logging.getLogger(__name__)

IP_FREEBIND = 15  # linux/in.h; lets the socket bind before the address is on the bridge
FORWARD_TIMEOUT = 2.0
MAX_FORWARDS = 64
DNS_PORT = 53
TCP_IDLE = 10.0  # seconds a client's TCP connection may stay silent between queries
MAX_TCP_CLIENTS = 32


def upstreams_from_resolv_conf(
    path: str = "/etc/resolv.conf", exclude: Iterable[IPv4Address] = ()
) -> list[tuple[str, int]]:
    """The host's IPv4 nameservers (minus our own listeners, to avoid forwarding loops)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return []
    skip = {str(a) for a in exclude}
    result = []
    for ns in parse_resolv_conf(text).nameservers:
        try:
            addr = IPv4Address(ns)
        except ValueError:
            continue  # IPv6 upstreams: not supported by this forwarder yet
        if str(addr) not in skip:
            result.append((str(addr), DNS_PORT))
    return result


@dataclass
class Zone:
    """What one network's listener knows."""

    subnet: IPv4Network
    names: dict[str, list[IPv4Address]] = field(default_factory=dict)
    reverse: dict[IPv4Address, str] = field(default_factory=dict)
    forward: bool = True


def build_zone(
    subnet: IPv4Network,
    entries: Iterable[tuple[IPv4Address, Sequence[str]]],
    forward: bool = True,
) -> Zone:
    """A zone from (address, [name, alias, ...]) pairs; the first name is the PTR target."""
    zone = Zone(subnet=subnet, forward=forward)
    for addr, names in entries:
        for n in names:
            key = n.lower().rstrip(".")
            if key:
                zone.names.setdefault(key, [])
                if addr not in zone.names[key]:
                    zone.names[key].append(addr)
        if names:
            zone.reverse[addr] = names[0]
    return zone


def answer_locally(zone: Zone, query: dnsmsg.Message) -> bytes | None:
    """The reply for a query the zone can settle, or None to forward it.

    Pure (no sockets) so that the decision table is unit-tested.
    """
    if query.flags & dnsmsg.OPCODE_MASK:
        return dnsmsg.build_response(query, [], dnsmsg.RCODE_NOTIMP)
    if len(query.questions) != 1:
        return dnsmsg.build_response(query, [], dnsmsg.RCODE_FORMERR)
    q = query.questions[0]
    key = q.name.lower().rstrip(".")
    if key in zone.names:
        if q.qtype == dnsmsg.TYPE_A and q.qclass == dnsmsg.CLASS_IN:
            return dnsmsg.build_response(
                query, [dnsmsg.a_record(q.name, a) for a in zone.names[key]]
            )
        # the name exists but has no record of this type (AAAA, MX...): NODATA, not NXDOMAIN,
        # or resolvers would give up on the A record they asked for in parallel
        return dnsmsg.build_response(query, [])
    addr = dnsmsg.in_subnet_reverse(key, zone.subnet)
    if addr is not None and q.qtype == dnsmsg.TYPE_PTR:
        target = zone.reverse.get(addr)
        if target is not None:
            return dnsmsg.build_response(query, [dnsmsg.ptr_record(q.name, target)])
        return dnsmsg.build_response(query, [], dnsmsg.RCODE_NXDOMAIN)
    if not zone.forward:
        return dnsmsg.build_response(query, [], dnsmsg.RCODE_NXDOMAIN)
    if "." not in key:
        # single-label names that are not containers: the outside world has no answer either
        return dnsmsg.build_response(query, [], dnsmsg.RCODE_NXDOMAIN)
    return None


class DnsResponder:
    """UDP and TCP listeners on gateway addresses, one ``Zone`` each, in a background
    thread."""

    def __init__(
        self,
        upstreams: Sequence[tuple[str, int]] | None = None,
        timeout: float = FORWARD_TIMEOUT,
        port: int = DNS_PORT,
    ) -> None:
        self.port = port
        self._explicit_upstreams = list(upstreams) if upstreams is not None else None
        self.timeout = timeout
        self._lock = threading.Lock()
        self._zones: dict[str, Zone] = {}
        self._sockets: dict[str, socket.socket] = {}
        self._tcp: dict[str, socket.socket] = {}
        self._tcp_slots = threading.BoundedSemaphore(MAX_TCP_CLIENTS)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._forward_slots = threading.BoundedSemaphore(MAX_FORWARDS)
        self._stop = False
        self._thread: threading.Thread | None = None

    # -- configuration -------------------------------------------------------------------------

    def upstreams(self) -> list[tuple[str, int]]:
        """Explicit upstreams, else the host's resolv.conf read afresh (it may change)."""
        if self._explicit_upstreams is not None:
            return list(self._explicit_upstreams)
        with self._lock:
            own = [IPv4Address(ip) for ip in self._sockets]
        return upstreams_from_resolv_conf(exclude=own)

    def listen_addresses(self) -> list[str]:
        with self._lock:
            return sorted(self._sockets)

    def set_zone(self, listen_ip: IPv4Address, zone: Zone) -> None:
        """Start listening on ``listen_ip`` (if not yet) and serve ``zone`` there."""
        key = str(listen_ip)
        with self._lock:
            self._zones[key] = zone
            if key in self._sockets:
                return
            made: list[socket.socket] = []
            try:
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    sock = socket.socket(socket.AF_INET, kind)
                    made.append(sock)
                    sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind((key, self.port))
                    if kind == socket.SOCK_STREAM:
                        sock.listen(16)
                    sock.setblocking(False)
            except OSError:
                for sock in made:
                    sock.close()
                del self._zones[key]
                raise
            udp, tcp = made
            self._sockets[key] = udp
            self._tcp[key] = tcp
            self._selector.register(udp, selectors.EVENT_READ, key)
            self._selector.register(tcp, selectors.EVENT_READ, ("tcp", key))
        self._ensure_thread()
        self._wake()

    def remove_zone(self, listen_ip: IPv4Address) -> None:
        key = str(listen_ip)
        with self._lock:
            self._zones.pop(key, None)
            for sock in (self._sockets.pop(key, None), self._tcp.pop(key, None)):
                if sock is not None:
                    self._selector.unregister(sock)
                    sock.close()
        self._wake()

    def zone(self, listen_ip: IPv4Address) -> Zone | None:
        with self._lock:
            return self._zones.get(str(listen_ip))

    def close(self) -> None:
        """Stop the thread and close every socket (idempotent)."""
        self._stop = True
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            for sock in [*self._sockets.values(), *self._tcp.values()]:
                try:
                    self._selector.unregister(sock)
                except (KeyError, ValueError):
                    pass
                sock.close()
            self._sockets.clear()
            self._tcp.clear()
            self._zones.clear()
        try:
            self._selector.close()
        finally:
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass

    # -- serving -------------------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="llmos-dns", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop:
            for key, _events in self._selector.select(timeout=1.0):
                if key.data is None:
                    try:
                        os.read(self._wake_r, 4096)
                    except OSError:
                        pass
                    continue
                if isinstance(key.data, tuple):
                    self._accept(key.data[1])
                    continue
                with self._lock:
                    sock = self._sockets.get(key.data)
                if sock is not None:
                    self._drain(sock, key.data)

    def _drain(self, sock: socket.socket, listen: str) -> None:
        while True:
            try:
                data, peer = sock.recvfrom(4096)
            except OSError:  # EAGAIN: drained; anything else: the socket was just removed
                return
            with self._lock:  # per datagram: a zone replaced a moment ago must be seen
                zone = self._zones.get(listen)
            if zone is None:
                return
            query = _query(data)
            if query is None:
                continue  # not answerable: we cannot even echo an id reliably
            reply = answer_locally(zone, query)
            if reply is not None:
                self._send(sock, reply, peer)
                continue
            if not self._forward_slots.acquire(blocking=False):
                self._send(sock, dnsmsg.build_response(query, [], dnsmsg.RCODE_SERVFAIL), peer)
                continue
            threading.Thread(
                target=self._forward, args=(sock, data, query, peer), daemon=True
            ).start()

    def _accept(self, listen: str) -> None:
        with self._lock:
            server = self._tcp.get(listen)
        if server is None:
            return
        try:
            conn, _peer = server.accept()
        except OSError:  # EAGAIN, or the socket was just removed
            return
        if not self._tcp_slots.acquire(blocking=False):
            conn.close()  # busy: the client falls back to its next server
            return
        threading.Thread(target=self._serve_tcp, args=(conn, listen), daemon=True).start()

    def _serve_tcp(self, conn: socket.socket, listen: str) -> None:
        """Length-prefixed queries on one connection, answered in order, until the client
        closes it or stays silent for TCP_IDLE."""
        try:
            conn.settimeout(TCP_IDLE)
            while not self._stop:
                data = _recv_framed(conn)
                if data is None:
                    return
                with self._lock:
                    zone = self._zones.get(listen)
                query = _query(data)
                if zone is None or query is None:
                    return
                reply = answer_locally(zone, query)
                if reply is None:
                    reply = self._forward_tcp(data) or dnsmsg.build_response(
                        query, [], dnsmsg.RCODE_SERVFAIL)
                conn.sendall(len(reply).to_bytes(2, "big") + reply)
        except OSError as exc:
            log.debug("dns: tcp client on %s: %s", listen, exc)
        finally:
            conn.close()
            self._tcp_slots.release()

    def _forward_tcp(self, data: bytes) -> bytes | None:
        for upstream in self.upstreams():
            try:
                with socket.create_connection(upstream, timeout=self.timeout) as up:
                    up.sendall(len(data).to_bytes(2, "big") + data)
                    reply = _recv_framed(up)
            except OSError:
                continue
            if reply is not None and reply[:2] == data[:2]:
                return reply
        return None

    @staticmethod
    def _send(sock: socket.socket, data: bytes, peer: tuple[str, int]) -> None:
        try:
            sock.sendto(data, peer)
        except OSError as exc:
            log.debug("dns: reply to %s failed: %s", peer, exc)

    def _forward(
        self, sock: socket.socket, data: bytes, query: dnsmsg.Message, peer: tuple[str, int]
    ) -> None:
        try:
            for upstream in self.upstreams():
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
                    up.settimeout(self.timeout)
                    try:
                        up.connect(upstream)
                        up.send(data)
                        reply = up.recv(4096)
                    except OSError:
                        continue
                if len(reply) >= 2 and reply[:2] == data[:2]:
                    self._send(sock, reply, peer)
                    return
            self._send(sock, dnsmsg.build_response(query, [], dnsmsg.RCODE_SERVFAIL), peer)
        finally:
            self._forward_slots.release()


def _query(data: bytes) -> dnsmsg.Message | None:
    """A query worth answering, or None (malformed, or a response sent to us)."""
    try:
        query = dnsmsg.parse_message(data)
    except dnsmsg.DnsFormatError:
        return None
    return None if query.is_response else query


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _recv_framed(sock: socket.socket) -> bytes | None:
    """One DNS-over-TCP message (2-byte length, then the message); None at a clean end."""
    head = _recv_exact(sock, 2)
    if head is None:
        return None
    size = int.from_bytes(head, "big")
    return _recv_exact(sock, size) if size else None


def zone_entries(
    records: Mapping[IPv4Address, Sequence[str]],
) -> list[tuple[IPv4Address, Sequence[str]]]:
    """Stable ordering for ``build_zone`` input (by address)."""
    return sorted(records.items())
