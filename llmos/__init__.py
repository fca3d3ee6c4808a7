"""llmos: a container runtime, engine and cluster scheduler.

Public names are re-exported here lazily so that `llmos --version` and other short CLI calls do
not pay for importing the runtime, the image store or the network stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Client", "Runtime", "__version__"]

if TYPE_CHECKING:
    from llmos.client import Client
    from llmos.runtime import Runtime


def __getattr__(name: str) -> Any:
    if name == "Runtime":
        from llmos.runtime import Runtime

        return Runtime
    if name == "Client":
        from llmos.client import Client

        return Client
    raise AttributeError(f"module 'llmos' has no attribute {name!r}")
