"""A command line run inside llmosd on behalf of the compiled front end (native/cli.c).

The verbs' code is the same either way; what differs is where their output goes, which
environment and working directory they read, and how they reach the engine. Those few
places ask `current()`: None means an ordinary process (a terminal, os.environ, a socket to
the daemon); a Session means a call being served, whose output travels back to the caller.
"""

from __future__ import annotations

import contextvars
import io
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

# Output is sent in pieces of at most this many bytes, and is held back (to make fewer frames)
# only until the verb flushes, switches stream, or ends.
_FLUSH_AT = 64 << 10


@dataclass
class Session:
    """One `cli.run` call: where its output goes and what it may read of its caller."""

    send: Callable[[dict[str, bytes]], None]  # raises BrokenPipeError when the caller left
    env: dict[str, str]
    cwd: str
    transport: Any
    stdout_tty: bool = False
    on_signal: Callable[[int], None] | None = None
    _pending: bytearray = field(default_factory=bytearray)
    _pending_key: str = "o"

    def write(self, key: str, data: bytes) -> None:
        if key != self._pending_key:
            self.flush()
            self._pending_key = key
        self._pending += data
        if len(self._pending) >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            data = bytes(self._pending)
            self._pending.clear()
            self.send({self._pending_key: data})


_current: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "llmos_cli_session", default=None
)


def current() -> Session | None:
    return _current.get()


def activate(session: Session) -> contextvars.Token[Session | None]:
    return _current.set(session)


def deactivate(token: contextvars.Token[Session | None]) -> None:
    _current.reset(token)


def environ() -> dict[str, str] | os._Environ[str]:
    s = current()
    return s.env if s is not None else os.environ


def abspath(path: str) -> str:
    """A path as the caller meant it: relative to the caller's directory, not the daemon's."""
    s = current()
    if s is None or os.path.isabs(path):
        return os.path.abspath(path)
    return os.path.normpath(os.path.join(s.cwd, path))


class _Binary(io.RawIOBase):
    def __init__(self, owner: _Routed) -> None:
        self._owner = owner

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        s = current()
        if s is None:
            return self._owner.real.buffer.write(data)
        s.write(self._owner.key, bytes(data))
        return len(data)

    def flush(self) -> None:
        s = current()
        if s is None:
            self._owner.real.buffer.flush()
        else:
            s.flush()


class _Routed(io.TextIOBase):
    """sys.stdout/sys.stderr in the daemon: the session's stream while serving one, else the
    process's own. One object for every thread; the context variable tells them apart."""

    def __init__(self, real: TextIO, key: str) -> None:
        self.real = real
        self.key = key
        self._buffer = _Binary(self)

    @property
    def buffer(self) -> Any:
        return self._buffer if current() is not None else self.real.buffer

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        s = current()
        if s is None:
            return self.real.write(text)
        s.write(self.key, text.encode("utf-8", "replace"))
        return len(text)

    def flush(self) -> None:
        s = current()
        if s is None:
            self.real.flush()
        else:
            s.flush()

    def isatty(self) -> bool:
        s = current()
        if s is None:
            return self.real.isatty()
        return s.stdout_tty and self.key == "o"

    def fileno(self) -> int:
        if current() is not None:
            raise io.UnsupportedOperation("a remote caller's stream has no descriptor here")
        return self.real.fileno()


def route_std_streams() -> None:
    """Install the routing sys.stdout/sys.stderr (once, in the daemon)."""
    if not isinstance(sys.stdout, _Routed):
        sys.stdout = _Routed(sys.stdout, "o")
    if not isinstance(sys.stderr, _Routed):
        sys.stderr = _Routed(sys.stderr, "e")
