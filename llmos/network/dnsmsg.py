"""DNS wire format (RFC 1035): just enough to answer A/PTR queries and relay the rest.

Hand-written rather than a dependency because the responder needs a handful of fields and the
daemon should not pull a resolver library into its address space. Pure code, unit-tested.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

TYPE_A = 1
TYPE_PTR = 12
TYPE_AAAA = 28
CLASS_IN = 1

RCODE_OK = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5

FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_RA = 0x0080
OPCODE_MASK = 0x7800

MAX_UDP_PAYLOAD = 512
_HEADER = struct.Struct("!HHHHHH")
_MAX_POINTERS = 32


class DnsFormatError(ValueError):
    """A message that cannot be parsed; the responder answers FORMERR or drops it."""


@dataclass(frozen=True)
class Question:
    name: str
    qtype: int
    qclass: int = CLASS_IN


@dataclass(frozen=True)
class Record:
    """A resource record; ``rdata`` is raw wire bytes, ``value`` a decoded A/PTR when known."""

    name: str
    rtype: int
    rclass: int
    ttl: int
    rdata: bytes
    value: str | None = None


@dataclass
class Message:
    id: int
    flags: int
    questions: list[Question] = field(default_factory=list)
    answers: list[Record] = field(default_factory=list)
    authority_count: int = 0
    additional_count: int = 0

    @property
    def rcode(self) -> int:
        return self.flags & 0x000F

    @property
    def is_response(self) -> bool:
        return bool(self.flags & FLAG_QR)


def encode_name(name: str) -> bytes:
    """Labels with length prefixes; ``""`` or ``"."`` is the root."""
    name = name.rstrip(".")
    out = bytearray()
    if name:
        for label in name.split("."):
            raw = label.encode("idna") if not label.isascii() else label.encode("ascii")
            if not 0 < len(raw) <= 63:
                raise DnsFormatError(f"name {name!r}: label {label!r} must be 1-63 bytes")
            out.append(len(raw))
            out += raw
    out.append(0)
    if len(out) > 255:
        raise DnsFormatError(f"name {name!r}: longer than 255 bytes")
    return bytes(out)


def decode_name(data: bytes, offset: int) -> tuple[str, int]:
    """Read a possibly compressed name; returns (name without trailing dot, next offset)."""
    labels: list[str] = []
    end: int | None = None
    hops = 0
    pos = offset
    while True:
        if pos >= len(data):
            raise DnsFormatError("name runs past the end of the message")
        length = data[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(data):
                raise DnsFormatError("truncated compression pointer")
            hops += 1
            if hops > _MAX_POINTERS:
                raise DnsFormatError("compression pointer loop")
            if end is None:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | data[pos + 1]
            continue
        if length & 0xC0:
            raise DnsFormatError(f"unsupported label type 0x{length:02x}")
        pos += 1
        if length == 0:
            break
        if pos + length > len(data):
            raise DnsFormatError("label runs past the end of the message")
        labels.append(data[pos : pos + length].decode("ascii", errors="replace"))
        pos += length
    return ".".join(labels), (end if end is not None else pos)


def parse_message(data: bytes) -> Message:
    """Parse header, questions and answers (authority/additional are only counted)."""
    if len(data) < _HEADER.size:
        raise DnsFormatError("message shorter than the 12-byte header")
    ident, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
    pos = _HEADER.size
    msg = Message(id=ident, flags=flags, authority_count=ns, additional_count=ar)
    for _ in range(qd):
        name, pos = decode_name(data, pos)
        if pos + 4 > len(data):
            raise DnsFormatError("truncated question")
        qtype, qclass = struct.unpack_from("!HH", data, pos)
        pos += 4
        msg.questions.append(Question(name, qtype, qclass))
    for _ in range(an):
        name, pos = decode_name(data, pos)
        if pos + 10 > len(data):
            raise DnsFormatError("truncated resource record")
        rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", data, pos)
        pos += 10
        if pos + rdlen > len(data):
            raise DnsFormatError("truncated rdata")
        rdata = data[pos : pos + rdlen]
        value: str | None = None
        if rtype == TYPE_A and rdlen == 4:
            value = str(IPv4Address(rdata))
        elif rtype == TYPE_PTR:
            value, _ = decode_name(data, pos)
        pos += rdlen
        msg.answers.append(Record(name, rtype, rclass, ttl, rdata, value))
    return msg


def build_query(name: str, qtype: int = TYPE_A, ident: int = 0, recursion: bool = True) -> bytes:
    """A one-question query (tests and health checks use it)."""
    flags = FLAG_RD if recursion else 0
    return (
        _HEADER.pack(ident, flags, 1, 0, 0, 0)
        + encode_name(name)
        + struct.pack("!HH", qtype, CLASS_IN)
    )


def a_record(name: str, addr: IPv4Address, ttl: int = 600) -> Record:
    return Record(name, TYPE_A, CLASS_IN, ttl, addr.packed, str(addr))


def ptr_record(name: str, target: str, ttl: int = 600) -> Record:
    return Record(name, TYPE_PTR, CLASS_IN, ttl, encode_name(target), target)


def build_response(
    query: Message,
    answers: list[Record],
    rcode: int = RCODE_OK,
    authoritative: bool = True,
) -> bytes:
    """Answer ``query``: same id and question, RD copied, RA set (we do recurse by forwarding).

    Answers that would push the message past 512 bytes are dropped and TC is set, as plain
    UDP DNS requires.
    """
    flags = FLAG_QR | FLAG_RA | (query.flags & (OPCODE_MASK | FLAG_RD)) | (rcode & 0xF)
    if authoritative:
        flags |= FLAG_AA
    body = bytearray()
    for q in query.questions[:1]:
        body += encode_name(q.name) + struct.pack("!HH", q.qtype, q.qclass)
    qd = min(len(query.questions), 1)
    kept = 0
    for rr in answers:
        # 0xC00C points at the first question's name, which every answer here repeats
        name = (
            b"\xc0\x0c"
            if qd and rr.name.lower() == query.questions[0].name.lower()
            else (encode_name(rr.name))
        )
        chunk = name + struct.pack("!HHIH", rr.rtype, rr.rclass, rr.ttl, len(rr.rdata)) + rr.rdata
        if _HEADER.size + len(body) + len(chunk) > MAX_UDP_PAYLOAD:
            flags |= FLAG_TC
            break
        body += chunk
        kept += 1
    return _HEADER.pack(query.id, flags, qd, kept, 0, 0) + bytes(body)


def reverse_name(addr: IPv4Address) -> str:
    """``172.30.0.2`` -> ``2.0.30.172.in-addr.arpa``."""
    return addr.reverse_pointer


def parse_reverse_name(name: str) -> IPv4Address | None:
    """Inverse of ``reverse_name``; None for anything that is not a full IPv4 PTR name."""
    lowered = name.lower().rstrip(".")
    suffix = ".in-addr.arpa"
    if not lowered.endswith(suffix):
        return None
    parts = lowered[: -len(suffix)].split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        return None
    return IPv4Address(".".join(reversed(parts)))


def in_subnet_reverse(name: str, subnet: IPv4Network) -> IPv4Address | None:
    """The address a PTR name asks about, if it falls in ``subnet``."""
    addr = parse_reverse_name(name)
    return addr if addr is not None and addr in subnet else None
