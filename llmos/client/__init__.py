"""The Python client: docker-py's names over the daemon or an in-process engine."""

from llmos.client.client import Client, Container, ContainerError, ExecResult
from llmos.daemon.errors import (
    AlreadyExists,
    DaemonUnavailable,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RpcError,
)

__all__ = [
    "AlreadyExists",
    "Client",
    "Container",
    "ContainerError",
    "DaemonUnavailable",
    "ExecResult",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "RpcError",
]
