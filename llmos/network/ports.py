"""Published-port specs (``-p``): parsing, expansion, random host ports, conflicts.

Pure code. Grammar (Docker's): ``[IP:][HOST:]CONTAINER[/PROTO]`` where HOST and CONTAINER are a
port or a range ``A-B`` and PROTO is ``tcp`` (default) or ``udp``:

* ``80``                  container 80, a random host port on all addresses
* ``8080:80``             host 8080 -> container 80
* ``127.0.0.1:8080:80/udp``
* ``127.0.0.1::80``       a random host port on 127.0.0.1
* ``8000-8001:80-81``     a range mapped one to one
* ``8000-8010:80``        the first free host port of the range -> container 80
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from llmos.network.errors import InvalidPortSpec, PortAlreadyPublished

PROTOCOLS = ("tcp", "udp")
ANY_ADDRESS = "0.0.0.0"
# Docker's dynamic range for random host ports: above the usual service ports and (on most
# hosts) disjoint from the kernel's ephemeral range used for outgoing connections.
RANDOM_PORT_RANGE = (49153, 60999)


@dataclass(frozen=True)
class PortSpec:
    """One parsed ``-p`` value; ``host_start is None`` means "pick a free host port"."""

    container_start: int
    container_end: int
    host_start: int | None = None
    host_end: int | None = None
    host_ip: str = ANY_ADDRESS
    proto: str = "tcp"

    @property
    def container_ports(self) -> range:
        return range(self.container_start, self.container_end + 1)


@dataclass(frozen=True)
class PortBinding:
    """One published port after expansion; ``host_port == 0`` until resolved."""

    container_port: int
    host_port: int
    host_ip: str = ANY_ADDRESS
    proto: str = "tcp"

    def conflicts_with(self, other: PortBinding) -> bool:
        """Same protocol and host port, and the addresses overlap (0.0.0.0 overlaps all)."""
        return (
            self.proto == other.proto
            and self.host_port == other.host_port
            and (self.host_ip == other.host_ip or ANY_ADDRESS in (self.host_ip, other.host_ip))
        )

    def describe(self) -> str:
        """``0.0.0.0:8080->80/tcp``, Docker's ``port``/``ps`` wording."""
        return f"{self.host_ip}:{self.host_port}->{self.container_port}/{self.proto}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "container_port": self.container_port,
            "host_port": self.host_port,
            "host_ip": self.host_ip,
            "proto": self.proto,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PortBinding:
        return cls(
            container_port=int(data["container_port"]),
            host_port=int(data["host_port"]),
            host_ip=str(data.get("host_ip", ANY_ADDRESS)),
            proto=str(data.get("proto", "tcp")),
        )


def _parse_range(text: str, spec: str, what: str) -> tuple[int, int]:
    parts = text.split("-")
    if len(parts) > 2 or not all(p.isdigit() for p in parts):
        raise InvalidPortSpec(f"port spec {spec!r}: {what} {text!r} is not a port or range")
    start, end = int(parts[0]), int(parts[-1])
    for value in (start, end):
        if not 1 <= value <= 65535:
            raise InvalidPortSpec(f"port spec {spec!r}: {what} {value} is out of range 1-65535")
    if end < start:
        raise InvalidPortSpec(f"port spec {spec!r}: {what} range {text!r} is reversed")
    return start, end


def parse_port_spec(spec: str) -> PortSpec:
    """Parse one ``-p`` value; every error names the spec and the part that is wrong."""
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidPortSpec(f"port spec {spec!r}: empty")
    text = spec.strip()
    proto = "tcp"
    if "/" in text:
        text, proto = text.rsplit("/", 1)
        proto = proto.lower()
        if proto not in PROTOCOLS:
            raise InvalidPortSpec(
                f"port spec {spec!r}: protocol {proto!r} is not one of {', '.join(PROTOCOLS)}"
            )
    if text.startswith("["):
        raise InvalidPortSpec(f"port spec {spec!r}: IPv6 host addresses are not supported")
    parts = text.split(":")
    if len(parts) > 3:
        raise InvalidPortSpec(f"port spec {spec!r}: too many ':' (want [IP:][HOST:]CONTAINER)")
    host_ip = ANY_ADDRESS
    host_text = ""
    if len(parts) == 3:
        ip_text, host_text, container_text = parts
        if ip_text:
            try:
                host_ip = str(IPv4Address(ip_text))
            except ValueError:
                raise InvalidPortSpec(
                    f"port spec {spec!r}: host address {ip_text!r} is not an IPv4 address"
                ) from None
    elif len(parts) == 2:
        host_text, container_text = parts
    else:
        container_text = parts[0]
    if not container_text:
        raise InvalidPortSpec(f"port spec {spec!r}: container port is missing")
    c_start, c_end = _parse_range(container_text, spec, "container port")
    if not host_text:
        return PortSpec(c_start, c_end, None, None, host_ip, proto)
    h_start, h_end = _parse_range(host_text, spec, "host port")
    c_len, h_len = c_end - c_start, h_end - h_start
    if c_len != h_len and c_len != 0:
        raise InvalidPortSpec(
            f"port spec {spec!r}: host range {host_text} and container range "
            f"{container_text} differ in length"
        )
    return PortSpec(c_start, c_end, h_start, h_end, host_ip, proto)


def parse_port_specs(specs: Iterable[str]) -> list[PortSpec]:
    """Parse all specs first, so one bad spec fails the lot before anything is applied."""
    return [parse_port_spec(s) for s in specs]


def resolve_bindings(
    specs: Iterable[PortSpec],
    published: Iterable[PortBinding] = (),
    is_free: Callable[[PortBinding], bool] = lambda _b: True,
    rng: random.Random | None = None,
    random_range: tuple[int, int] = RANDOM_PORT_RANGE,
) -> list[PortBinding]:
    """Expand specs to concrete bindings, choosing host ports where the spec leaves them open.

    ``published`` is what llmos already publishes (any container); ``is_free`` asks the host
    whether a port can be bound (the manager tries a bind). Raises ``PortAlreadyPublished``
    naming the clash; nothing is reserved here, so a failure leaves no trace.
    """
    taken = list(published)
    rng = rng or random.Random()
    result: list[PortBinding] = []

    def usable(b: PortBinding) -> bool:
        return not any(b.conflicts_with(t) for t in taken) and is_free(b)

    for spec in specs:
        if spec.host_start is not None and spec.host_end is not None:
            if spec.container_start == spec.container_end and spec.host_end > spec.host_start:
                # a host range for one container port: the first free port of the range
                for port in range(spec.host_start, spec.host_end + 1):
                    cand = PortBinding(spec.container_start, port, spec.host_ip, spec.proto)
                    if usable(cand):
                        break
                else:
                    raise PortAlreadyPublished(
                        f"host ports {spec.host_ip}:{spec.host_start}-{spec.host_end}"
                        f"/{spec.proto}: all already in use"
                    )
                result.append(cand)
                taken.append(cand)
                continue
            for offset, cport in enumerate(spec.container_ports):
                cand = PortBinding(cport, spec.host_start + offset, spec.host_ip, spec.proto)
                clash = next((t for t in taken if cand.conflicts_with(t)), None)
                if clash is not None:
                    raise PortAlreadyPublished(
                        f"host port {cand.host_ip}:{cand.host_port}/{cand.proto}: already "
                        f"published ({clash.describe()})"
                    )
                if not is_free(cand):
                    raise PortAlreadyPublished(
                        f"host port {cand.host_ip}:{cand.host_port}/{cand.proto}: already in "
                        "use on the host"
                    )
                result.append(cand)
                taken.append(cand)
            continue
        for cport in spec.container_ports:
            lo, hi = random_range
            for _attempt in range(200):
                cand = PortBinding(cport, rng.randint(lo, hi), spec.host_ip, spec.proto)
                if usable(cand):
                    break
            else:
                raise PortAlreadyPublished(
                    f"container port {cport}/{spec.proto}: no free random host port found "
                    f"in {lo}-{hi}"
                )
            result.append(cand)
            taken.append(cand)
    return result
