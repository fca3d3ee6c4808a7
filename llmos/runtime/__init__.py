"""The low-level container runtime (OCI bundles in, running containers out)."""

from llmos.errors import (
    AlreadyExists,
    ConfigError,
    InvalidState,
    NotFound,
    RuntimeError_,
    StepError,
)
from llmos.runtime.runtime import ContainerState, Runtime, parse_signal
from llmos.runtime.state import ExitStatus, Status

__all__ = [
    "AlreadyExists",
    "ConfigError",
    "ContainerState",
    "ExitStatus",
    "InvalidState",
    "NotFound",
    "Runtime",
    "RuntimeError_",
    "Status",
    "StepError",
    "parse_signal",
]
