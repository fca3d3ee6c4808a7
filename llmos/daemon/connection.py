"""The client side of llmosd's RPC: `Connection(path).call(...)` and `.stream(...)`.

Thread safety: a Connection is a small pool of sockets. Any number of threads may call it at
once; each call or stream holds its own socket for its duration and returns it to the pool
after a clean reply, so a `logs -f` stream on one thread never blocks a `ps` on another. A
socket that saw anything unexpected (a timeout, a broken frame, an abandoned stream) is closed
rather than reused, because its position in the reply sequence is no longer known.

Cancelling a stream is closing it: the server has no cancel frame, it notices the hang-up,
stops the call and closes its generator.

Kept free of the server's imports (threads, sqlite) so a CLI that only talks to the daemon
starts fast.
"""

from __future__ import annotations

import errno
import itertools
import select
import socket
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from llmos.daemon.errors import DaemonUnavailable, InvalidArgument, ProtocolError, RpcError
from llmos.daemon.protocol import (
    DEFAULT_MAX_FRAME,
    FrameTimeout,
    FrameTooLarge,
    Reply,
    TruncatedFrame,
    decode_body,
    encode_frame,
    parse_reply,
    read_frame,
    write_frame,
)

__all__ = ["DEFAULT_SOCKET", "Connection", "Stream"]

DEFAULT_SOCKET = "/run/llmos/llmos.sock"


class Connection:
    """Calls into llmosd over the Unix socket at `path`; connects lazily, on first use.

    `timeout` bounds the wait for each reply frame (None: wait as long as the call takes, as
    `wait` and `logs -f` need); `connect_timeout` bounds connecting; `max_idle` sockets are
    kept open between calls.
    """

    def __init__(
        self,
        path: str = DEFAULT_SOCKET,
        *,
        timeout: float | None = None,
        connect_timeout: float = 10.0,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_idle: int = 4,
        frame_timeout: float = 30.0,
    ) -> None:
        self.path = path
        self.timeout = timeout
        self._connect_timeout = connect_timeout
        self._max_frame = max_frame
        self._max_idle = max_idle
        self._frame_timeout = frame_timeout
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._idle: list[socket.socket] = []
        self._closed = False

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """The result of `method`; raises the RpcError subclass for the daemon's error kind.

        Stream items, if the method streams, are read and dropped: `call("pull", ...)` waits
        for the pull to finish without showing progress.
        """
        sock, rid = self._send(method, params)
        ok = False
        try:
            while True:
                reply = self._read(sock, rid, method)
                if reply.kind == "stream":
                    continue
                ok = True
                if reply.error is not None:
                    raise reply.error
                return reply.value
        finally:
            self._release(sock, ok)

    def stream(self, method: str, params: dict[str, Any] | None = None) -> Stream:
        """Start `method` and iterate its stream items; `.result` holds the final result.

        Use it as a context manager (or call `.close()`) when you may stop early: that closes
        the socket, which cancels the call in the daemon.
        """
        sock, rid = self._send(method, params)
        return Stream(self, sock, rid, method)

    def close(self) -> None:
        """Close the idle sockets; calls in flight finish and then close theirs."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- sockets -------------------------------------------------------------------------

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(self._connect_timeout)
        try:
            sock.connect(self.path)
        except OSError as e:
            sock.close()
            reason = e.strerror or str(e)
            if e.errno in (errno.EACCES, errno.EPERM):
                hint = "llmosd accepts only root and members of its socket's group"
            else:
                hint = "is the daemon running?"
            raise DaemonUnavailable(
                f"cannot connect to llmosd at {self.path}: {reason}; {hint}"
            ) from e
        return sock

    def _checkout(self) -> tuple[socket.socket, bool]:
        """A socket for one call, and whether it is reused (it may have died since)."""
        while True:
            with self._lock:
                if self._closed:
                    raise DaemonUnavailable(f"the connection to llmosd at {self.path} is closed")
                sock = self._idle.pop() if self._idle else None
            if sock is None:
                return self._connect(), False
            if _looks_alive(sock):
                return sock, True
            sock.close()

    def _release(self, sock: socket.socket, reusable: bool) -> None:
        if reusable:
            with self._lock:
                if not self._closed and len(self._idle) < self._max_idle:
                    self._idle.append(sock)
                    return
        sock.close()

    def _send(self, method: str, params: dict[str, Any] | None) -> tuple[socket.socket, int]:
        rid = next(self._ids)
        try:
            frame = encode_frame(
                {"id": rid, "method": method, "params": {} if params is None else params},
                self._max_frame,
            )
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"params of {method}: cannot be sent: {e}") from None
        sock, reused = self._checkout()
        try:
            write_frame(sock, frame, self._frame_timeout)
        except OSError as e:
            sock.close()
            if not reused:
                raise self._lost(method, e) from e
            # A pooled socket whose daemon went away (restarted): the frame was not delivered
            # whole, and the server acts only on whole frames, so one retry is safe.
            sock = self._connect()
            try:
                write_frame(sock, frame, self._frame_timeout)
            except OSError as e2:
                sock.close()
                raise self._lost(method, e2) from e2
        return sock, rid

    def _read(self, sock: socket.socket, rid: int, method: str) -> Reply:
        """The next frame of call `rid`; any failure leaves `sock` unusable (caller closes)."""
        try:
            body = read_frame(sock, self._max_frame, self._frame_timeout, self.timeout)
        except (TruncatedFrame, FrameTimeout) as e:
            raise self._lost(method, e) from None
        except FrameTooLarge as e:
            raise ProtocolError(f"llmosd at {self.path}: {e.message}") from None
        except TimeoutError:
            raise TimeoutError(
                f"llmosd at {self.path} did not answer {method} within {self.timeout:g} s"
            ) from None
        except OSError as e:
            raise self._lost(method, e) from e
        if body is None:
            raise self._lost(method, None)
        reply = parse_reply(decode_body(body))
        if reply.id is None and reply.error is not None:
            raise reply.error  # about our frame as a whole; the server closes after it
        if reply.id != rid:
            raise ProtocolError(f"llmosd at {self.path}: reply for id {reply.id}, expected {rid}")
        return reply

    def _lost(self, method: str, cause: BaseException | None) -> DaemonUnavailable:
        why = "it closed the connection" if cause is None else str(cause)
        return DaemonUnavailable(f"lost the connection to llmosd at {self.path} during {method}: "
                                 f"{why}")


class Stream(Iterator[Any]):
    """The items of one streamed call, then `.result`. Iterate from one thread only."""

    def __init__(self, conn: Connection, sock: socket.socket, rid: int, method: str) -> None:
        self._conn = conn
        self._sock: socket.socket | None = sock
        self._rid = rid
        self.method = method
        self._done = False
        self._result: Any = None
        self._error: RpcError | None = None

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Any:
        if self._done or self._sock is None:
            raise StopIteration
        try:
            reply = self._conn._read(self._sock, self._rid, self.method)
        except BaseException:
            self.close()
            raise
        if reply.kind == "stream":
            return reply.value
        self._done = True
        sock, self._sock = self._sock, None
        self._conn._release(sock, True)
        if reply.error is not None:
            self._error = reply.error
            raise reply.error
        self._result = reply.value
        raise StopIteration

    @property
    def done(self) -> bool:
        """True once the final result or error has arrived."""
        return self._done

    @property
    def result(self) -> Any:
        """The call's final result; raises its error, or RuntimeError before the end."""
        if self._error is not None:
            raise self._error
        if not self._done:
            raise RuntimeError(f"the stream of {self.method} has not finished")
        return self._result

    def close(self) -> None:
        """Stop early: close the socket, which cancels the call in the daemon."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _looks_alive(sock: socket.socket) -> bool:
    """An idle socket should have nothing to read; EOF or stray bytes mean do not reuse it."""
    p = select.poll()
    p.register(sock, select.POLLIN | select.POLLRDHUP)
    return not p.poll(0)
