"""Transports with one job: carry a (method, params) call and bring back its result.

`SocketTransport` talks to llmosd; `InProcessTransport` calls the same engine API directly in
this process (no daemon: test harnesses embed llmos this way). Both raise the same
`llmos.daemon.errors.RpcError` subclasses, so client code cannot tell them apart.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from llmos.daemon.errors import RpcError


class Transport(Protocol):
    def call(self, method: str, params: dict[str, Any]) -> Any: ...

    def stream(self, method: str, params: dict[str, Any]) -> Iterator[Any]: ...

    def close(self) -> None: ...


def socket_path_from_env() -> str:
    """LLMOS_HOST=unix:///path (like DOCKER_HOST), else the default socket."""
    from llmos.daemon.connection import DEFAULT_SOCKET

    host = os.environ.get("LLMOS_HOST", "")
    if not host:
        return DEFAULT_SOCKET
    if host.startswith("unix://"):
        return host[len("unix://") :]
    raise ValueError(f"LLMOS_HOST: unsupported address {host!r} (use unix:///path)")


class SocketTransport:
    def __init__(self, path: str | None = None, timeout: float | None = None) -> None:
        from llmos.daemon.connection import Connection

        self.path = path or socket_path_from_env()
        self._conn = Connection(self.path, timeout=timeout)

    def call(self, method: str, params: dict[str, Any]) -> Any:
        return self._conn.call(method, params)

    def stream(self, method: str, params: dict[str, Any]) -> Iterator[Any]:
        s = self._conn.stream(method, params)
        try:
            yield from s
        finally:
            s.close()

    def close(self) -> None:
        self._conn.close()


class InProcessTransport:
    def __init__(self, root: str, run_root: str, default_network: str = "none",
                 insecure_registries: Sequence[str] = ()) -> None:
        from llmos.engine import Engine
        from llmos.engine.api import Api

        self.api = Api(Engine(root, run_root, default_network=default_network,
                              insecure_registries=insecure_registries))

    @classmethod
    def for_api(cls, api: Any) -> InProcessTransport:
        """A transport over an Api that already exists (llmosd's own, for the CLI it serves)."""
        t = cls.__new__(cls)
        t.api = api
        return t

    def _convert(self, e: Exception) -> RpcError:
        from llmos.engine.api import ApiError

        if isinstance(e, ApiError):
            err = RpcError(e.kind, e.message)
            if e.exit_code is not None:
                err.exit_code = e.exit_code  # type: ignore[attr-defined]
            return err
        return RpcError("internal", f"{type(e).__name__}: {e}")

    def call(self, method: str, params: dict[str, Any]) -> Any:
        try:
            result = self.api.handle(method, params)
            if isinstance(result, Iterator):
                for _ in result:
                    pass
                return None
            return result
        except RpcError:
            raise
        except Exception as e:
            raise self._convert(e) from e

    def stream(self, method: str, params: dict[str, Any]) -> Iterator[Any]:
        try:
            result = self.api.handle(method, params)
            if not isinstance(result, Iterator):
                return
            yield from result
        except RpcError:
            raise
        except Exception as e:
            raise self._convert(e) from e

    def close(self) -> None:
        pass
