"""The wire format of llmosd's RPC: length-prefixed msgpack frames, and what a frame may hold.

    frame    = length:u32 big-endian, body:msgpack map of `length` bytes
    request  = {"id": int, "method": str, "params": map}
    reply    = {"id": int, "result": any}
             | {"id": int, "error": {"kind": str, "message": str}}
    stream   = {"id": int, "stream": any}     zero or more, before a streamed call's reply

Why msgpack and a length prefix: a reader knows how much to expect before it allocates, so an
oversized prefix is refused without reading it, and bytes (log chunks, tar streams) travel
without base64. The id echoes the request's so a client can check it is reading its own
reply; a protocol error about a frame whose id could not be read carries `"id": nil` (as
JSON-RPC does) and the connection is closed after it when the framing itself is lost.

Everything here is pure (bytes in, values out) except `read_frame`/`write_frame`, which take a
socket and a deadline, so the server and client share one implementation of the limits.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

import msgpack

from llmos.daemon.errors import ERROR_KINDS, ProtocolError, RpcError

__all__ = [
    "DEFAULT_MAX_FRAME",
    "BadRequest",
    "FrameTimeout",
    "FrameTooLarge",
    "Reply",
    "Request",
    "TruncatedFrame",
    "decode_body",
    "encode_frame",
    "error_frame",
    "parse_reply",
    "parse_request",
    "read_frame",
    "write_frame",
]

DEFAULT_MAX_FRAME = 16 << 20
HEADER = struct.Struct(">I")
# A frame body is received in chunks of at most this much, so memory follows the bytes that
# actually arrived: a client that announces 16 MiB and stalls costs 256 KiB, not 16 MiB.
_CHUNK = 256 << 10
# msgpack's own nesting limit is ~1000 levels (StackError); method names are identifiers.
_MAX_METHOD = 256
_MAX_MESSAGE = 4096


class FrameTooLarge(ProtocolError):
    """A length prefix over the limit; the body is never read, so the stream is lost."""


class TruncatedFrame(ProtocolError):
    """The peer closed the connection in the middle of a frame."""


class FrameTimeout(ProtocolError):
    """A frame started but did not complete within the partial-frame timeout."""


class BadRequest(ProtocolError):
    """A frame that decoded but is not a request; carries the id when that much was readable,
    so the error reply can echo it and the client can match it to its call."""

    def __init__(self, request_id: int | None, message: str) -> None:
        super().__init__(message)
        self.request_id = request_id


@dataclass(frozen=True)
class Request:
    id: int
    method: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """One frame from the server: exactly one of stream/result/error is meaningful.

    `kind` is "stream", "result" or "error"; `error` is set for "error".
    """

    id: int | None
    kind: str
    value: Any = None
    error: RpcError | None = None


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not accepted")


def decode_body(body: bytes) -> Any:
    """Unpack one frame body, turning every way msgpack can fail into a ProtocolError.

    String, binary, array and map lengths are bounded by the body's own size (unpackb does
    this itself), keys must be strings or bytes, and extension types are refused so
    params hold only plain data. Very deep nesting is refused by msgpack's stack limit.
    """
    try:
        return msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            ext_hook=_refuse_ext,
        )
    except (ValueError, msgpack.UnpackException, RecursionError) as e:
        # ExtraData, FormatError, StackError, bad UTF-8 are ValueErrors; OutOfData is not.
        detail = str(e) or type(e).__name__
        raise ProtocolError(f"frame body is not valid msgpack: {detail}"[:_MAX_MESSAGE]) from None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_request(obj: Any) -> Request:
    """Check a decoded body is a request; the ProtocolError names the field that was wrong.

    Unknown top-level keys are ignored so that a newer client may add some; a missing params is
    an empty map.
    """
    if not isinstance(obj, dict):
        raise BadRequest(None, f"request: must be a map, not {_type_name(obj)}")
    rid = obj.get("id")
    if not isinstance(rid, int) or isinstance(rid, bool):
        raise BadRequest(None, f"request.id: must be an integer, not {_type_name(rid)}")
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        raise BadRequest(
            rid, f"request.method: must be a non-empty string, not {_type_name(method)}"
        )
    if len(method) > _MAX_METHOD:
        raise BadRequest(rid, f"request.method: longer than {_MAX_METHOD} characters")
    params = obj.get("params", {})
    if not isinstance(params, dict):
        raise BadRequest(rid, f"request.params: must be a map, not {_type_name(params)}")
    for key in params:
        if not isinstance(key, str):
            raise BadRequest(rid, "request.params: keys must be strings")
    return Request(rid, method, params)


def parse_reply(obj: Any) -> Reply:
    """Check a decoded body is a reply, stream item or error frame from the server."""
    if not isinstance(obj, dict):
        raise ProtocolError(f"reply: must be a map, not {_type_name(obj)}")
    rid = obj.get("id")
    if rid is not None and not _is_int(rid):
        raise ProtocolError(f"reply.id: must be an integer or nil, not {_type_name(rid)}")
    if "stream" in obj:
        return Reply(rid, "stream", obj["stream"])
    if "result" in obj:
        return Reply(rid, "result", obj["result"])
    err = obj.get("error")
    if isinstance(err, dict):
        kind, message = err.get("kind"), err.get("message")
        if isinstance(kind, str) and isinstance(message, str):
            return Reply(rid, "error", error=RpcError(kind, message))
    raise ProtocolError("reply: has none of stream, result or a well-formed error")


def error_frame(rid: int | None, err: RpcError) -> dict[str, Any]:
    """The reply for an error; kinds outside the protocol's six are reported as internal."""
    kind = err.kind if err.kind in ERROR_KINDS else "internal"
    return {"id": rid, "error": {"kind": kind, "message": err.message[:_MAX_MESSAGE]}}


def encode_frame(obj: Any, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    """Pack one frame; TypeError/ValueError if the value is not msgpack data or too large."""
    body: bytes = msgpack.packb(obj, use_bin_type=True)
    if len(body) > max_frame:
        raise ValueError(f"frame of {len(body)} bytes exceeds the {max_frame}-byte limit")
    return HEADER.pack(len(body)) + body


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _recv_exact(sock: socket.socket, n: int, deadline: float | None, got: bytes) -> bytes:
    """Read until `n` bytes are held; the peer closing first is a TruncatedFrame."""
    parts = [got] if got else []
    have = len(got)
    while have < n:
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(min(n - have, _CHUNK))
        if not chunk:
            raise TruncatedFrame(f"connection closed after {have} of {n} bytes of a frame")
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts)


def read_frame(
    sock: socket.socket,
    max_frame: int,
    frame_timeout: float | None,
    idle_timeout: float | None = None,
) -> bytes | None:
    """One frame body, or None on a clean EOF between frames.

    Waiting for a frame to start is bounded by `idle_timeout` (None: wait forever, idle
    connections are cheap); once its first byte has arrived, the whole frame must arrive within
    `frame_timeout`, so a peer that sends half a frame and stalls is cut off. Raises
    FrameTooLarge, TruncatedFrame, FrameTimeout, TimeoutError (idle) or OSError.
    """
    sock.settimeout(idle_timeout)
    first = sock.recv(HEADER.size)
    if not first:
        return None
    deadline = None if frame_timeout is None else time.monotonic() + frame_timeout
    try:
        (length,) = HEADER.unpack(_recv_exact(sock, HEADER.size, deadline, first))
        if length > max_frame:
            raise FrameTooLarge(f"frame of {length} bytes exceeds the {max_frame}-byte limit")
        return _recv_exact(sock, length, deadline, b"")
    except TimeoutError:
        raise FrameTimeout(f"frame not completed within {frame_timeout:g} s") from None


def write_frame(sock: socket.socket, frame: bytes, timeout: float | None) -> None:
    """Send a whole frame; a peer that leaves its buffer full past `timeout` is TimeoutError."""
    sock.settimeout(timeout)
    sock.sendall(frame)


def _type_name(v: Any) -> str:
    return "nil" if v is None else type(v).__name__
