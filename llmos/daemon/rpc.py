"""llmosd's RPC server: msgpack frames (see `protocol`) over a root-only Unix socket.

Concurrency: one thread per connection. Handlers are ordinary blocking engine code (waiting for
a container to exit, following a log file, pulling an image), so an event loop would need a
thread pool behind it anyway; a thread per connection keeps requests on a connection in order
for free, and `max_clients` bounds the threads. Connection threads are daemon threads: a handler
stuck in the engine must not keep the process alive after `close()`.

Access: the socket file is 0600 (0660 with `group`), created so that it never exists with a
wider mode (see `unixsock`); the kernel checks that mode on connect. Each accepted peer is
checked again with SO_PEERCRED (uid 0, the daemon's own uid, or a member of `group`), which
also covers a socket whose mode was loosened by hand or an fd handed to another process.

Cancellation: a call learns its client went away through `current_call().cancelled`, an Event a
watcher thread sets when the peer hangs up (epoll EPOLLRDHUP). Streams also stop at the next
item; their generator is then closed, so its `finally` blocks run. A client cancels a call
by closing its connection (closing the write half counts as hanging up).

Slow or hostile peers: a frame that has started must complete within `frame_timeout`; a stream
or reply the client does not read within `send_timeout` cuts it off; an oversized length
prefix gets a protocol error and the connection is closed without reading the body.
"""

from __future__ import annotations

import contextvars
import errno
import grp
import logging
import os
import select
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from llmos.daemon.connection import DEFAULT_SOCKET, Connection, Stream
from llmos.daemon.errors import (
    DaemonError,
    InternalError,
    InvalidArgument,
    ProtocolError,
    RpcError,
)
from llmos.daemon.protocol import (
    DEFAULT_MAX_FRAME,
    BadRequest,
    FrameTimeout,
    FrameTooLarge,
    TruncatedFrame,
    decode_body,
    encode_frame,
    error_frame,
    parse_request,
    read_frame,
    write_frame,
)
from llmos.daemon.unixsock import Peer, listen_unix, peer_allowed, peer_of, unlink_if_same

__all__ = [
    "DEFAULT_MAX_FRAME",
    "DEFAULT_SOCKET",
    "CallContext",
    "Connection",
    "Handler",
    "Peer",
    "Server",
    "Stream",
    "current_call",
]

log = logging.getLogger("llmos.daemon.rpc")

Handler = Callable[[str, dict[str, Any]], Any]
"""`handler(method, params)`: return a value, raise RpcError, or return an iterator to stream."""

@dataclass(frozen=True)
class CallContext:
    """The call a handler is serving; `cancelled` is set when its client hangs up."""

    id: int
    method: str
    peer: Peer
    cancelled: threading.Event = field(default_factory=threading.Event, compare=False)
    # Sends one stream item ahead of the reply, from inside a handler that is not itself a
    # generator (the command line run in the daemon); False once the client is gone.
    emit: Callable[[Any], bool] = field(default=lambda item: False, compare=False)


_current: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar(
    "llmos_rpc_call", default=None
)


def current_call() -> CallContext | None:
    """The call being served on this thread (also inside a streaming generator), else None."""
    return _current.get()


class _Conn:
    """One accepted client; `lock` orders closing against a concurrent shutdown by close()."""

    def __init__(self, sock: socket.socket, peer: Peer) -> None:
        self.sock = sock
        self.peer = peer
        self.lock = threading.Lock()
        self.closed = False
        self.ctx: CallContext | None = None
        self.thread: threading.Thread | None = None

    def shutdown(self) -> None:
        with self.lock:
            if not self.closed:
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self.sock.close()


class _HangupWatcher:
    """Sets a call's `cancelled` Event when its peer hangs up, while the handler is busy.

    One thread for the whole server, on epoll with EPOLLRDHUP only: data the client pipelines
    behind its request does not wake it, a closed or half-closed peer does.
    """

    def __init__(self) -> None:
        self._ep = select.epoll()
        self._lock = threading.Lock()
        self._watched: dict[int, threading.Event] = {}
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._ep.register(self._wake_r, select.EPOLLIN)
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, sock: socket.socket, event: threading.Event) -> None:
        fd = sock.fileno()
        with self._lock:
            if self._closed:
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="llmosd-rpc-hangup", daemon=True
                )
                self._thread.start()
            self._watched[fd] = event
            self._ep.register(fd, select.EPOLLRDHUP)

    def unwatch(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        with self._lock:
            if self._watched.pop(fd, None) is not None and not self._closed:
                try:
                    self._ep.unregister(fd)
                except OSError:
                    pass

    def _run(self) -> None:
        while True:
            try:
                ready = self._ep.poll()
            except OSError:
                return
            for fd, _mask in ready:
                if fd == self._wake_r:
                    return
                with self._lock:
                    event = self._watched.pop(fd, None)
                    if event is not None:
                        event.set()
                        try:
                            self._ep.unregister(fd)
                        except OSError:
                            pass

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.write(self._wake_w, b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)
        self._ep.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


class Server:
    """Serves `handler` on a Unix socket at `path` until `close()`.

    `mode` defaults to 0o600, or 0o660 when `group` (a group name) is given. `max_frame` bounds
    every frame both ways; `max_clients` bounds connections (and so threads). `frame_timeout`
    bounds a partially received frame, `send_timeout` a reply or stream item the client does not
    read, `idle_timeout` (None: never) the wait for a connection's next request.
    """

    def __init__(
        self,
        path: str,
        handler: Handler,
        *,
        mode: int | None = None,
        group: str | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_clients: int = 256,
        frame_timeout: float = 30.0,
        send_timeout: float = 30.0,
        idle_timeout: float | None = None,
    ) -> None:
        if max_frame < 64:
            raise InvalidArgument(f"max_frame: must be at least 64 bytes, not {max_frame}")
        if max_clients < 1:
            raise InvalidArgument(f"max_clients: must be at least 1, not {max_clients}")
        self.path = os.path.abspath(path)
        self._handler = handler
        self._gid: int | None = None
        if group is not None:
            try:
                self._gid = grp.getgrnam(group).gr_gid
            except KeyError:
                raise InvalidArgument(f"group: no such group {group!r}") from None
        self._mode = mode if mode is not None else (0o660 if group is not None else 0o600)
        self._max_frame = max_frame
        self._max_clients = max_clients
        self._frame_timeout = frame_timeout
        self._send_timeout = send_timeout
        self._idle_timeout = idle_timeout
        # Re-entrant: close() may run in a signal handler that interrupted this very thread
        # inside a locked section of the accept loop.
        self._lock = threading.RLock()
        self._conns: set[_Conn] = set()
        self._listener: socket.socket | None = None
        self._ident: tuple[int, int] | None = None
        self._closing = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._watcher = _HangupWatcher()
        self._started = False
        self._thread: threading.Thread | None = None
        self._torn_down = False

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Bind now (so SocketInUse is raised here) and serve on a background thread."""
        with self._lock:
            self._claim()
        try:
            self._bind()
        except BaseException:
            self._teardown()
            raise
        with self._lock:
            if self._closing.is_set():
                return
            self._thread = threading.Thread(
                target=self._serve, name="llmosd-rpc-accept", daemon=True
            )
            self._thread.start()

    def serve_forever(self) -> None:
        """Bind and serve on the calling thread until `close()` (e.g. from a signal handler)."""
        with self._lock:
            self._claim()
            self._thread = threading.current_thread()
        try:
            self._bind()
            self._serve()
        finally:
            self._teardown()

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, remove the socket file, hang up on every client, join threads.

        Calls in progress see `cancelled`; a handler that ignores it is left running on its
        daemon thread after `timeout`. Safe from a signal handler that interrupted
        `serve_forever` on the same thread: it only stops the loop, which then cleans up.
        """
        with self._lock:
            if not self._closing.is_set() and self._wake_w >= 0:
                os.write(self._wake_w, b"x")
            self._closing.set()
            accept = self._thread
        if accept is threading.current_thread():
            return
        if accept is not None:
            accept.join(timeout)
        self._teardown(timeout)

    def _teardown(self, timeout: float = 5.0) -> None:
        with self._lock:
            if self._torn_down:
                return
            self._torn_down = True
            self._closing.set()
            conns = list(self._conns)
        if self._listener is not None:
            unlink_if_same(self.path, self._ident)
            self._listener.close()
        for conn in conns:
            conn.shutdown()  # first, so a handler woken by `cancelled` cannot still reply
            if conn.ctx is not None:
                conn.ctx.cancelled.set()
        deadline = time.monotonic() + timeout
        me = threading.current_thread()
        for conn in conns:
            if conn.thread is not None and conn.thread is not me:
                conn.thread.join(max(0.0, deadline - time.monotonic()))
        self._watcher.close()
        with self._lock:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
        log.info("rpc: closed path=%s", self.path)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the socket file -----------------------------------------------------------------

    def _claim(self) -> None:
        """A Server serves once: a second start would race the first for the socket."""
        if self._closing.is_set() or self._started:
            raise DaemonError(f"the server for {self.path} was already started or closed")
        self._started = True

    def _bind(self) -> None:
        backlog = min(self._max_clients, socket.SOMAXCONN)
        sock, self._ident = listen_unix(self.path, self._mode, self._gid, backlog)
        sock.setblocking(False)
        self._listener = sock
        log.info("rpc: listening path=%s mode=%o gid=%s", self.path, self._mode, self._gid)

    # -- accepting -----------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._listener is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._closing.is_set():
                for key, _ in sel.select():
                    if key.fd == self._wake_r:
                        return
                    try:
                        sock, _addr = self._listener.accept()
                    except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                        continue
                    except OSError as e:
                        # Out of fds: wait for some to free instead of spinning on accept.
                        log.error("rpc: accept failed: %s", e)
                        if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                            self._closing.wait(0.1)
                        continue
                    try:
                        self._admit(sock)
                    except Exception:  # one bad peer must not stop the accept loop
                        log.exception("rpc: admitting a client failed")
                        sock.close()

    def _admit(self, sock: socket.socket) -> None:
        try:
            peer = peer_of(sock)
        except OSError:
            sock.close()
            return
        if not peer_allowed(peer, self._gid):
            log.warning(
                "rpc: refused peer pid=%d uid=%d gid=%d", peer.pid, peer.uid, peer.gid
            )
            sock.close()
            return
        conn = _Conn(sock, peer)
        with self._lock:
            full = len(self._conns) >= self._max_clients
            closing = self._closing.is_set()
            if not full and not closing:
                self._conns.add(conn)
        if full or closing:
            log.warning("rpc: too many clients (%d); refused pid=%d", self._max_clients, peer.pid)
            err = ProtocolError(f"too many clients (limit {self._max_clients}); try again later")
            try:
                sock.setblocking(False)
                sock.send(encode_frame(error_frame(None, err)))
            except OSError:
                pass
            conn.close()
            return
        conn.thread = threading.Thread(
            target=self._serve_connection, args=(conn,), name=f"llmosd-rpc-{peer.pid}",
            daemon=True,
        )
        try:
            conn.thread.start()
        except RuntimeError:  # cannot start a thread: drop this client, keep serving
            log.error("rpc: cannot start a thread for pid=%d", peer.pid)
            self._drop(conn)

    def _drop(self, conn: _Conn) -> None:
        with self._lock:
            self._conns.discard(conn)
        conn.close()

    # -- one connection ------------------------------------------------------------------

    def _serve_connection(self, conn: _Conn) -> None:
        try:
            while not self._closing.is_set():
                try:
                    body = read_frame(
                        conn.sock, self._max_frame, self._frame_timeout, self._idle_timeout
                    )
                except (FrameTooLarge, FrameTimeout, TruncatedFrame) as e:
                    # The framing is lost (or the peer is gone): say why, then hang up.
                    log.info("rpc: closing pid=%d: %s", conn.peer.pid, e.message)
                    self._send(conn, error_frame(None, e), quiet=True)
                    return
                except OSError:  # reset, or idle past idle_timeout
                    return
                if body is None:
                    return
                try:
                    request = parse_request(decode_body(body))
                except BadRequest as e:
                    log.info("rpc: bad request from pid=%d: %s", conn.peer.pid, e.message)
                    if not self._send(conn, error_frame(e.request_id, e)):
                        return
                    continue
                except ProtocolError as e:
                    log.info("rpc: bad frame from pid=%d: %s", conn.peer.pid, e.message)
                    if not self._send(conn, error_frame(None, e)):
                        return
                    continue
                if not self._dispatch(conn, request.id, request.method, request.params):
                    return
        finally:
            self._drop(conn)

    def _dispatch(self, conn: _Conn, rid: int, method: str, params: dict[str, Any]) -> bool:
        """Run one call; False when the connection must be closed afterwards."""
        ctx = CallContext(rid, method, conn.peer,
                          emit=lambda item: self._send(conn, {"id": rid, "stream": item}))
        conn.ctx = ctx
        token = _current.set(ctx)
        self._watcher.watch(conn.sock, ctx.cancelled)
        try:
            try:
                result = self._handler(method, params)
            except Exception as e:
                return self._send(conn, error_frame(rid, _as_rpc_error(e, method)))
            if isinstance(result, Iterator):
                return self._stream(conn, ctx, result)
            return self._send(conn, {"id": rid, "result": result})
        finally:
            self._watcher.unwatch(conn.sock)
            _current.reset(token)
            conn.ctx = None

    def _stream(self, conn: _Conn, ctx: CallContext, items: Iterator[Any]) -> bool:
        try:
            while True:
                if ctx.cancelled.is_set() or self._closing.is_set():
                    log.info("rpc: %s cancelled: pid=%d hung up", ctx.method, conn.peer.pid)
                    return False
                try:
                    item = next(items)
                except StopIteration as stop:
                    return self._send(conn, {"id": ctx.id, "result": stop.value})
                except Exception as e:
                    return self._send(conn, error_frame(ctx.id, _as_rpc_error(e, ctx.method)))
                if not self._send(conn, {"id": ctx.id, "stream": item}):
                    return False
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("rpc: closing the stream of %s failed", ctx.method)

    def _send(self, conn: _Conn, obj: dict[str, Any], quiet: bool = False) -> bool:
        """Encode and send one frame; False if the client is gone or did not read in time."""
        try:
            frame = encode_frame(obj, self._max_frame)
        except Exception as e:  # not msgpack data, too deep, or over max_frame
            log.error("rpc: cannot encode a reply to id=%s: %s", obj.get("id"), e)
            err = InternalError(f"the reply could not be encoded: {e}")
            frame = encode_frame(error_frame(obj.get("id"), err), self._max_frame)
        try:
            write_frame(conn.sock, frame, self._send_timeout)
        except TimeoutError:
            if not quiet:
                log.warning(
                    "rpc: cut off pid=%d: did not read for %g s", conn.peer.pid, self._send_timeout
                )
            return False
        except OSError:
            return False
        return True


def _as_rpc_error(e: Exception, method: str) -> RpcError:
    """What the client is told: RpcErrors as they are; anything else is internal, logged here
    with its traceback, and reported by type and message only."""
    if isinstance(e, RpcError):
        return e
    log.error("rpc: %s failed", method, exc_info=e)
    return InternalError(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
