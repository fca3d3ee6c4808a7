"""One exception tree for the daemon, shared by the RPC layer, the store and the engine.

Every error that crosses the wire is an `RpcError` with one of six kinds (containerd's errdefs
plus `internal` and `protocol`). Each kind has a subclass, and `RpcError(kind, message)`
builds the subclass for its kind, so the same `except NotFound:` works in the engine (where the
store raised it) and in a client (where it arrived as `{"kind": "not_found"}`).

    DaemonError
     ├── RpcError(kind, message)     anything a client can be told; `.kind` names the class
     │    ├── InvalidArgument        "invalid_argument": malformed params, unknown method
     │    │    └── AmbiguousReference   a name or id prefix that matches several objects
     │    ├── NotFound               "not_found": no such container, volume, ...
     │    ├── AlreadyExists          "already_exists": a name or id in use
     │    ├── FailedPrecondition     "failed_precondition": valid, but the state forbids it
     │    ├── InternalError          "internal": a bug or an unexpected failure in the daemon
     │    └── ProtocolError          "protocol": a frame that is not a well-formed request/reply
     ├── DaemonUnavailable           (also a ConnectionError) no daemon at the socket, or the
     │                               connection to it broke mid-call
     └── SocketInUse                 (server side) a live daemon already listens on the path
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ERROR_KINDS",
    "AlreadyExists",
    "AmbiguousReference",
    "DaemonError",
    "DaemonUnavailable",
    "FailedPrecondition",
    "InternalError",
    "InvalidArgument",
    "NotFound",
    "ProtocolError",
    "RpcError",
    "SocketInUse",
]

ERROR_KINDS: tuple[str, ...] = (
    "invalid_argument",
    "not_found",
    "already_exists",
    "failed_precondition",
    "internal",
    "protocol",
)


class DaemonError(Exception):
    """Base of every error the daemon package raises on purpose."""


class RpcError(DaemonError):
    """An error a client can be told: a kind from `ERROR_KINDS` and a human message.

    `RpcError("not_found", "no such container: web")` returns a `NotFound`; an unknown kind
    (from a newer daemon) stays a plain `RpcError` that keeps the kind it was given.
    """

    kind: str = "internal"
    _by_kind: ClassVar[dict[str, type[RpcError]]] = {}

    def __new__(cls, *args: Any, **kwargs: Any) -> RpcError:
        # Only the two-argument base form dispatches; subclasses are built as themselves.
        if cls is RpcError and args:
            cls = RpcError._by_kind.get(str(args[0]), RpcError)
        return super().__new__(cls)

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            RpcError._by_kind.setdefault(cls.kind, cls)

    def __reduce__(self) -> tuple[Any, ...]:
        return (RpcError, (self.kind, self.message))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kind!r}, {self.message!r})"

    def to_wire(self) -> dict[str, str]:
        """The `error` member of a reply frame."""
        return {"kind": self.kind, "message": self.message}


class _KindError(RpcError):
    """A subclass with a fixed kind; built from the message alone."""

    def __init__(self, *args: str) -> None:
        # Accept both NotFound(message) and, via RpcError's dispatch, NotFound(kind, message).
        message = args[-1] if args else ""
        super().__init__(type(self).kind, message)


class InvalidArgument(_KindError):
    """Malformed input; retrying the same call cannot succeed."""

    kind = "invalid_argument"


class AmbiguousReference(InvalidArgument):
    """A name or id prefix that matches more than one object (Docker calls it ambiguous)."""


class NotFound(_KindError):
    """The named object does not exist."""

    kind = "not_found"


class AlreadyExists(_KindError):
    """A name or id is taken; creating it again would shadow or lose the other."""

    kind = "already_exists"


class FailedPrecondition(_KindError):
    """The call is valid but the object's current state forbids it (remove a running one)."""

    kind = "failed_precondition"


class InternalError(_KindError):
    """A bug or unexpected failure in the daemon; the details are in the daemon's log."""

    kind = "internal"


class ProtocolError(_KindError):
    """A frame that is not a well-formed request or reply; the connection may be closed."""

    kind = "protocol"


class DaemonUnavailable(DaemonError, ConnectionError):
    """No daemon answers at the socket, or the connection broke; the message names the path."""


class SocketInUse(DaemonError):
    """A live daemon already listens on the socket path; starting a second would steal it."""
