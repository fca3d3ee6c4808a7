"""llmosd: the RPC server and client connection, the SQLite state store, and their errors.

Names are resolved lazily: a CLI that only needs `Connection` must not pay for importing the
server (threads, selectors) or the store (sqlite3).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmos.daemon.connection import DEFAULT_SOCKET, Connection, Stream
    from llmos.daemon.errors import (
        ERROR_KINDS,
        AlreadyExists,
        AmbiguousReference,
        DaemonError,
        DaemonUnavailable,
        FailedPrecondition,
        InternalError,
        InvalidArgument,
        NotFound,
        ProtocolError,
        RpcError,
        SocketInUse,
    )
    from llmos.daemon.protocol import DEFAULT_MAX_FRAME
    from llmos.daemon.records import (
        RESTART_POLICIES,
        STATUSES,
        ContainerRecord,
        EventRecord,
        VolumeRecord,
        new_id,
    )
    from llmos.daemon.rpc import CallContext, Handler, Peer, Server, current_call
    from llmos.daemon.store import SCHEMA_VERSION, Store

_WHERE = {
    "DEFAULT_SOCKET": "connection",
    "Connection": "connection",
    "Stream": "connection",
    "ERROR_KINDS": "errors",
    "AlreadyExists": "errors",
    "AmbiguousReference": "errors",
    "DaemonError": "errors",
    "DaemonUnavailable": "errors",
    "FailedPrecondition": "errors",
    "InternalError": "errors",
    "InvalidArgument": "errors",
    "NotFound": "errors",
    "ProtocolError": "errors",
    "RpcError": "errors",
    "SocketInUse": "errors",
    "DEFAULT_MAX_FRAME": "protocol",
    "CallContext": "rpc",
    "Handler": "rpc",
    "Peer": "unixsock",
    "Server": "rpc",
    "current_call": "rpc",
    "RESTART_POLICIES": "records",
    "SCHEMA_VERSION": "store",
    "STATUSES": "records",
    "ContainerRecord": "records",
    "EventRecord": "records",
    "Store": "store",
    "VolumeRecord": "records",
    "new_id": "records",
}

__all__ = [
    "DEFAULT_MAX_FRAME",
    "DEFAULT_SOCKET",
    "ERROR_KINDS",
    "RESTART_POLICIES",
    "SCHEMA_VERSION",
    "STATUSES",
    "AlreadyExists",
    "AmbiguousReference",
    "CallContext",
    "Connection",
    "ContainerRecord",
    "DaemonError",
    "DaemonUnavailable",
    "EventRecord",
    "FailedPrecondition",
    "Handler",
    "InternalError",
    "InvalidArgument",
    "NotFound",
    "Peer",
    "ProtocolError",
    "RpcError",
    "Server",
    "SocketInUse",
    "Store",
    "Stream",
    "VolumeRecord",
    "current_call",
    "new_id",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'llmos.daemon' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"llmos.daemon.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
