"""llmosd's RPC: round trips, errors, streams and cancellation, the socket file's rules, peer
credentials, and hostile clients (issue 3, point 5)."""

from __future__ import annotations

import os
import random
import socket
import stat
import struct
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from llmos.daemon import (
    ERROR_KINDS,
    AlreadyExists,
    Connection,
    DaemonUnavailable,
    FailedPrecondition,
    InternalError,
    InvalidArgument,
    NotFound,
    ProtocolError,
    RpcError,
    Server,
    SocketInUse,
    current_call,
)

NOBODY = 65534  # uid of nobody and gid of nogroup on Debian


class Recorder:
    """The test handler: a few methods, and a record of what streaming generators did."""

    def __init__(self) -> None:
        self.closed_streams: list[str] = []
        self.cancelled = threading.Event()
        self.waiting = threading.Event()
        self.seen: list[tuple[str, dict[str, Any]]] = []
        # Held so that garbage collection cannot close a generator the server forgot to.
        self.generators: list[Iterator[Any]] = []

    def __call__(self, method: str, params: dict[str, Any]) -> Any:
        self.seen.append((method, params))
        if method == "echo":
            return params
        if method == "sink":
            return None
        if method == "whoami":
            ctx = current_call()
            assert ctx is not None
            return {"uid": ctx.peer.uid, "pid": ctx.peer.pid, "method": ctx.method, "id": ctx.id}
        if method == "fail":
            raise RpcError(params["kind"], params["message"])
        if method == "crash":
            raise ValueError("secret detail in /etc/thing")
        if method == "unencodable":
            return {"x": object()}
        if method == "big":
            return b"x" * params["n"]
        if method == "count":
            return self._keep(self._count(params["n"], params.get("fail_at")))
        if method == "forever":
            return self._keep(self._forever(params.get("size", 16)))
        if method == "block":
            return self._keep(self._block())
        if method == "wait_cancel":
            ctx = current_call()
            assert ctx is not None
            ok = ctx.cancelled.wait(10)
            if ok:
                self.cancelled.set()
            return ok
        raise InvalidArgument(f"unknown method {method}")

    def _keep(self, gen: Iterator[Any]) -> Iterator[Any]:
        self.generators.append(gen)
        return gen

    def _count(self, n: int, fail_at: int | None) -> Iterator[int]:
        try:
            for i in range(n):
                if i == fail_at:
                    raise FailedPrecondition(f"stopped at {i}")
                yield i
            return n  # type: ignore[return-value]
        finally:
            self.closed_streams.append("count")

    def _forever(self, size: int) -> Iterator[bytes]:
        try:
            while True:
                yield b"x" * size
        finally:
            self.closed_streams.append("forever")

    def _block(self) -> Iterator[str]:
        try:
            yield "started"
            ctx = current_call()
            assert ctx is not None
            # An engine generator waits on its source and on cancellation together.
            self.waiting.set()
            while not ctx.cancelled.wait(0.02):
                pass  # (here: poll the log file, the event queue, ...)
            self.cancelled.set()
        finally:
            self.closed_streams.append("block")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., tuple[Server, Recorder]]]:
    servers: list[Server] = []

    def start(**kwargs: Any) -> tuple[Server, Recorder]:
        handler = Recorder()
        path = kwargs.pop("path", str(tmp_path / "run" / "llmos.sock"))
        server = Server(path, handler, **kwargs)
        servers.append(server)
        server.start()
        return server, handler

    yield start
    for s in servers:
        s.close()


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def rpc_threads() -> int:
    return sum(t.name.startswith("llmosd-rpc-") and t.name != "llmosd-rpc-accept"
               and t.name != "llmosd-rpc-hangup" for t in threading.enumerate())


# -- a raw client, written independently of the code under test --------------------------


def frame(obj: Any) -> bytes:
    body: bytes = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


class Raw:
    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = bytearray()

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def shut(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _fill(self, n: int, deadline: float) -> bool:
        while len(self.buf) < n:
            self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return False
            self.buf += chunk
        return True

    def reply(self, timeout: float = 5.0) -> dict[str, Any] | None:
        """The next frame, or None when the server closed the connection."""
        deadline = time.monotonic() + timeout
        if not self._fill(4, deadline):
            assert self.buf == b"", "connection closed in the middle of a reply header"
            return None
        (n,) = struct.unpack(">I", self.buf[:4])
        assert self._fill(4 + n, deadline), "connection closed in the middle of a reply"
        body = bytes(self.buf[4 : 4 + n])
        del self.buf[: 4 + n]
        obj = msgpack.unpackb(body, raw=False)
        assert isinstance(obj, dict)
        return obj

    def close(self) -> None:
        self.sock.close()


def assert_error(reply: dict[str, Any] | None, kind: str, rid: int | None = None) -> None:
    assert reply is not None, "expected an error reply, the connection was closed"
    assert reply["id"] == rid, reply
    assert reply["error"]["kind"] == kind, reply


# -- round trips and errors ----------------------------------------------------------------


def test_round_trips(serve: Callable[..., tuple[Server, Recorder]]) -> None:
    server, _ = serve()
    with Connection(server.path) as c:
        params = {"nil": None, "t": True, "i": -(2**63), "u": 2**64 - 1, "f": 0.25, "s": "é",
                  "b": b"\x00\xff", "l": [1, [2, [3]]], "m": {"k": {"k": "v"}}}
        assert c.call("echo", params) == params
        assert c.call("echo") == {}
        assert c.call("sink", {}) is None
        who = c.call("whoami")
        assert who["uid"] == os.geteuid() and who["pid"] == os.getpid()
        assert who["method"] == "whoami" and isinstance(who["id"], int)


@pytest.mark.parametrize(
    ("kind", "cls"),
    [("invalid_argument", InvalidArgument), ("not_found", NotFound),
     ("already_exists", AlreadyExists), ("failed_precondition", FailedPrecondition),
     ("internal", InternalError), ("protocol", ProtocolError)],
)
def test_error_kinds_arrive_as_their_class(
    serve: Callable[..., tuple[Server, Recorder]], kind: str, cls: type[RpcError]
) -> None:
    server, _ = serve()
    with Connection(server.path) as c:
        with pytest.raises(cls) as info:
            c.call("fail", {"kind": kind, "message": f"msg for {kind}"})
        assert (info.value.kind, info.value.message) == (kind, f"msg for {kind}")
        assert c.call("echo", {"a": 1}) == {"a": 1}  # the connection is still in step


def test_handler_failures_are_internal_without_traceback(
    serve: Callable[..., tuple[Server, Recorder]], caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = serve(max_frame=1 << 16)
    with Connection(server.path) as c:
        with pytest.raises(InternalError) as info:
            c.call("crash")
        assert info.value.message == "ValueError: secret detail in /etc/thing"
        assert "Traceback" not in info.value.message
        assert any("Traceback" in (r.exc_text or "") or r.exc_info for r in caplog.records)
        with pytest.raises(InvalidArgument, match="unknown method nope"):
            c.call("nope")
        with pytest.raises(InternalError, match="could not be encoded"):
            c.call("unencodable")
        with pytest.raises(InternalError, match="exceeds the 65536-byte limit"):
            c.call("big", {"n": 1 << 17})
        with pytest.raises(InternalError, match="weird"):  # unknown kinds become internal
            c.call("fail", {"kind": "weird", "message": "weird"})
        assert c.call("big", {"n": 1000}) == b"x" * 1000


def test_rpc_error_builds_the_class_for_its_kind() -> None:
    for kind in ERROR_KINDS:
        err = RpcError(kind, "m")
        assert err.kind == kind and err.message == "m"
        assert type(err) is not RpcError
    assert type(RpcError("future_kind", "m")) is RpcError
    assert NotFound("gone").kind == "not_found" and isinstance(NotFound("x"), RpcError)


def test_requests_on_one_connection_are_served_in_order(
    serve: Callable[..., tuple[Server, Recorder]],
) -> None:
    server, _ = serve()
    raw = Raw(server.path)
    try:
        raw.send(b"".join(frame({"id": i, "method": "echo", "params": {"i": i}})
                          for i in range(1, 51)))
        for i in range(1, 51):
            assert raw.reply() == {"id": i, "result": {"i": i}}
    finally:
        raw.close()


def test_many_threads_share_one_connection(serve: Callable[..., tuple[Server, Recorder]]) -> None:
    server, _ = serve()
    errors: list[BaseException] = []
    with Connection(server.path) as c:
        def work(n: int) -> None:
            try:
                for i in range(30):
                    assert c.call("echo", {"n": n, "i": i}) == {"n": n, "i": i}
                    if i % 10 == 0:
                        assert list(c.stream("count", {"n": 3})) == [0, 1, 2]
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


# -- streams ---------------------------------------------------------------------------------


def test_stream_items_then_result(serve: Callable[..., tuple[Server, Recorder]]) -> None:
    server, handler = serve()
    with Connection(server.path) as c:
        s = c.stream("count", {"n": 5})
        with pytest.raises(RuntimeError, match="has not finished"):
            _ = s.result
        assert list(s) == [0, 1, 2, 3, 4]
        assert s.done and s.result == 5
        assert c.call("count", {"n": 3}) == 3  # call() drops the items
        s = c.stream("count", {"n": 5, "fail_at": 2})
        got = []
        with pytest.raises(FailedPrecondition, match="stopped at 2"):
            for item in s:
                got.append(item)
        assert got == [0, 1]
        with pytest.raises(FailedPrecondition):
            _ = s.result
        s = c.stream("echo", {"a": 1})  # a plain method streams nothing
        assert list(s) == [] and s.result == {"a": 1}
    assert wait_for(lambda: handler.closed_streams.count("count") == 3)


def test_closing_a_stream_cancels_it(serve: Callable[..., tuple[Server, Recorder]]) -> None:
    server, handler = serve()
    with Connection(server.path) as c:
        with c.stream("forever") as s:
            for i, _ in enumerate(s):
                if i == 100:
                    break
        assert wait_for(lambda: "forever" in handler.closed_streams)
        # A generator blocked between items learns through current_call().cancelled.
        with c.stream("block") as s:
            assert next(s) == "started"
            assert handler.waiting.wait(5)  # inside the generator, between items
        assert wait_for(handler.cancelled.is_set)
        assert wait_for(lambda: "block" in handler.closed_streams)
        assert c.call("echo", {"still": "fine"}) == {"still": "fine"}


def test_a_blocked_call_learns_its_client_hung_up(
    serve: Callable[..., tuple[Server, Recorder]],
) -> None:
    server, handler = serve()
    raw = Raw(server.path)
    raw.send(frame({"id": 1, "method": "wait_cancel", "params": {}}))
    assert wait_for(lambda: any(m == "wait_cancel" for m, _ in handler.seen))
    raw.close()
    assert wait_for(handler.cancelled.is_set)
    assert wait_for(lambda: rpc_threads() == 0)


def test_slow_reader_is_cut_off(serve: Callable[..., tuple[Server, Recorder]]) -> None:
    server, handler = serve(send_timeout=0.3)
    raw = Raw(server.path)
    try:
        raw.send(frame({"id": 1, "method": "forever", "params": {"size": 1 << 16}}))
        # never read: the socket buffers fill, the server gives up after send_timeout
        assert wait_for(lambda: "forever" in handler.closed_streams, timeout=10)
        assert wait_for(lambda: rpc_threads() == 0)
    finally:
        raw.close()
    with Connection(server.path) as c:
        assert c.call("echo", {"ok": 1}) == {"ok": 1}


def test_partial_frame_times_out(serve: Callable[..., tuple[Server, Recorder]]) -> None:
    server, _ = serve(frame_timeout=0.3)
    for partial in (b"\x00\x00", frame({"id": 1, "method": "echo", "params": {}})[:-3]):
        raw = Raw(server.path)
        try:
            raw.send(partial)
            started = time.monotonic()
            reply = raw.reply(timeout=5)
            assert_error(reply, "protocol")
            assert "not completed within 0.3 s" in reply["error"]["message"]  # type: ignore[index]
            assert raw.reply() is None
            assert time.monotonic() - started < 3
        finally:
            raw.close()


def test_oversized_prefix_is_refused_unread(serve: Callable[..., tuple[Server, Recorder]]) -> None:
    server, _ = serve()  # the default 16 MiB limit
    raw = Raw(server.path)
    try:
        raw.send(struct.pack(">I", (16 << 20) + 1))
        reply = raw.reply()
        assert_error(reply, "protocol")
        assert "16777217 bytes exceeds the 16777216-byte limit" in reply["error"]["message"]  # type: ignore[index]
        assert raw.reply() is None
    finally:
        raw.close()
    raw = Raw(server.path)  # a request of exactly 16 MiB is served
    try:
        # + 3: a bin32 header is 5 bytes, the empty payload's bin8 header 2
        overhead = len(msgpack.packb({"id": 7, "method": "echo", "params": {"p": b""}})) + 3
        payload = b"y" * ((16 << 20) - overhead)
        request = frame({"id": 7, "method": "echo", "params": {"p": payload}})
        assert len(request) == 4 + (16 << 20)
        raw.send(request)
        assert raw.reply(timeout=30) == {"id": 7, "result": {"p": payload}}
    finally:
        raw.close()


def test_memory_follows_the_bytes_received(
    serve: Callable[..., tuple[Server, Recorder]],
) -> None:
    """A client that announces a 16 MiB frame and stalls costs what it sent, not 16 MiB."""
    server, _ = serve()
    tracemalloc.start()
    raws = []
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(8):
            raw = Raw(server.path)
            raw.send(struct.pack(">I", (16 << 20) - 1) + b"\x00" * 100)
            raws.append(raw)
        time.sleep(0.3)
        grown = tracemalloc.get_traced_memory()[1] - before  # the peak
    finally:
        tracemalloc.stop()
        for raw in raws:
            raw.close()
    assert grown < 8 << 20, f"{grown} bytes for 8 stalled 16 MiB frames"


def test_max_clients(serve: Callable[..., tuple[Server, Recorder]]) -> None:
    server, _ = serve(max_clients=2)
    a, b = Raw(server.path), Raw(server.path)
    try:
        a.send(frame({"id": 1, "method": "sink"}))
        b.send(frame({"id": 1, "method": "sink"}))
        assert a.reply() == {"id": 1, "result": None} == b.reply()
        c = Raw(server.path)
        reply = c.reply()
        assert_error(reply, "protocol")
        assert "too many clients (limit 2)" in reply["error"]["message"]  # type: ignore[index]
        assert c.reply() is None
        c.close()
    finally:
        a.close()
        b.close()
    assert wait_for(lambda: rpc_threads() == 0)
    with Connection(server.path) as conn:
        assert conn.call("sink") is None


# -- the socket file -------------------------------------------------------------------------


def test_socket_file_mode_and_parent(tmp_path: Path) -> None:
    old = os.umask(0o077)  # the daemon's umask must not matter
    try:
        path = tmp_path / "a" / "b" / "llmos.sock"
        with Server(str(path), Recorder()) as server:
            server.start()
            assert stat.S_ISSOCK(os.stat(path).st_mode)
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o755
            assert stat.S_IMODE(os.stat(path.parent.parent).st_mode) == 0o755
            assert os.listdir(path.parent) == ["llmos.sock"]  # no temporary left behind
        assert not path.exists()
    finally:
        os.umask(old)


@pytest.mark.skipif(os.geteuid() != 0, reason="chgrp to another group needs root")
def test_group_socket_is_0660(tmp_path: Path) -> None:
    path = tmp_path / "llmos.sock"
    with Server(str(path), Recorder(), group="nogroup") as server:
        server.start()
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == NOBODY


def test_unknown_group_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="no such group 'no-such-group-llmos'"):
        Server(str(tmp_path / "s"), Recorder(), group="no-such-group-llmos")


def test_stale_socket_is_replaced_live_daemon_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "llmos.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)  # a socket file nobody listens on: what a killed daemon leaves
    stale.close()
    with Server(path, Recorder()) as first:
        first.start()
        with Connection(path) as c:
            assert c.call("echo", {"a": 1}) == {"a": 1}
        with pytest.raises(SocketInUse, match=r"already running at .*llmos\.sock"):
            Server(path, Recorder()).start()
        with Connection(path) as c:  # the refused second server did not disturb the first
            assert c.call("echo", {"a": 2}) == {"a": 2}
    assert not os.path.exists(path)
    Path(path).write_text("not a socket")
    with pytest.raises(SocketInUse, match="is not a socket"):
        Server(path, Recorder()).start()
    assert Path(path).read_text() == "not a socket"


def test_close_leaves_a_successors_socket_alone(tmp_path: Path) -> None:
    path = str(tmp_path / "llmos.sock")
    first = Server(path, Recorder())
    first.start()
    os.unlink(path)  # as if an operator removed it and a new daemon took the path
    with Server(path, Recorder()) as second:
        second.start()
        first.close()
        with Connection(path) as c:
            assert c.call("sink") is None


def test_serve_forever_stops_on_close(tmp_path: Path) -> None:
    server = Server(str(tmp_path / "llmos.sock"), Recorder())
    t = threading.Thread(target=server.serve_forever)
    t.start()
    assert wait_for(lambda: os.path.exists(server.path))
    with Connection(server.path) as c:
        assert c.call("sink") is None
    server.close()
    t.join(5)
    assert not t.is_alive() and not os.path.exists(server.path)
    with pytest.raises(Exception, match="already started or closed"):
        server.start()


def test_close_cancels_calls_in_progress(serve: Callable[..., tuple[Server, Recorder]]) -> None:
    server, handler = serve()
    c = Connection(server.path)
    s = c.stream("block")
    assert next(s) == "started"
    outcome: list[BaseException] = []

    def wait_cancel() -> None:
        try:
            c.call("wait_cancel")
        except BaseException as e:
            outcome.append(e)

    blocked = threading.Thread(target=wait_cancel)
    blocked.start()
    assert wait_for(lambda: any(m == "wait_cancel" for m, _ in handler.seen))
    server.close()
    # close() returns after the calls in progress saw `cancelled` and their generators closed
    assert handler.cancelled.is_set() and "block" in handler.closed_streams
    blocked.join(5)
    assert len(outcome) == 1 and isinstance(outcome[0], DaemonUnavailable)
    with pytest.raises(DaemonUnavailable, match="lost the connection"):
        list(s)
    c.close()


# -- the client's errors ------------------------------------------------------------------


def test_no_daemon_is_a_clear_connection_error(tmp_path: Path) -> None:
    path = str(tmp_path / "llmos.sock")
    with pytest.raises(ConnectionError) as info:
        Connection(path).call("version")
    assert isinstance(info.value, DaemonUnavailable)
    assert str(info.value) == (
        f"cannot connect to llmosd at {path}: No such file or directory; is the daemon running?"
    )
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()
    with pytest.raises(DaemonUnavailable, match="Connection refused; is the daemon running"):
        Connection(path).call("version")


def test_client_survives_a_daemon_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "llmos.sock")
    c = Connection(path)
    try:
        with Server(path, Recorder()) as s:
            s.start()
            assert c.call("echo", {"n": 1}) == {"n": 1}  # leaves a pooled socket
        with Server(path, Recorder()) as s:
            s.start()
            assert c.call("echo", {"n": 2}) == {"n": 2}
    finally:
        c.close()


def test_daemon_dying_mid_call(serve: Callable[..., tuple[Server, Recorder]]) -> None:
    server, _ = serve()
    c = Connection(server.path)
    result: list[BaseException] = []

    def call() -> None:
        try:
            c.call("wait_cancel")
        except BaseException as e:
            result.append(e)

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.2)
    server.close()
    t.join(5)
    c.close()
    assert len(result) == 1 and isinstance(result[0], DaemonUnavailable)
    assert "during wait_cancel" in str(result[0])


def test_client_timeout(serve: Callable[..., tuple[Server, Recorder]]) -> None:
    server, handler = serve()
    with Connection(server.path, timeout=0.2) as c:
        with pytest.raises(TimeoutError, match=r"did not answer wait_cancel within 0\.2 s"):
            c.call("wait_cancel")
        assert wait_for(handler.cancelled.is_set)  # the abandoned socket was closed
        assert c.call("sink") is None


# -- peer credentials ------------------------------------------------------------------------


def _as_user(uid: int, gid: int, path: str) -> str:
    """Connect as another user in a forked child; what happened, as a word."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        outcome = b"error"
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect(path)
            except PermissionError:
                outcome = b"denied"
            else:
                try:
                    s.sendall(frame({"id": 1, "method": "sink", "params": {}}))
                    data = s.recv(1 << 16)
                except (BrokenPipeError, ConnectionResetError):
                    data = b""
                outcome = b"served" if data else b"closed"
        finally:
            os.write(w, outcome)
            os._exit(0)
    os.close(w)
    try:
        with os.fdopen(r, "rb") as f:
            return f.read().decode()
    finally:
        os.waitpid(pid, 0)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory other users can traverse (pytest's tmp dirs are 0700)."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="llmosd-peer-"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to nobody needs root")
def test_non_root_peers_are_refused(open_dir: Path) -> None:
    path = str(open_dir / "llmos.sock")
    with Server(path, Recorder()) as server:
        server.start()
        assert _as_user(NOBODY, NOBODY, path) == "denied"  # the file's 0600
        os.chmod(path, 0o666)  # loosened by hand: SO_PEERCRED still refuses
        assert _as_user(NOBODY, NOBODY, path) == "closed"
        with Connection(path) as c:
            assert c.call("sink") is None


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to nobody needs root")
def test_group_members_are_served(open_dir: Path) -> None:
    path = str(open_dir / "llmos.sock")
    with Server(path, Recorder(), group="nogroup") as server:
        server.start()
        assert _as_user(NOBODY, NOBODY, path) == "served"
        os.chmod(path, 0o666)
        assert _as_user(NOBODY, 1, path) == "closed"  # not in the group: closed at once


# -- hostile clients (issue 3, point 5) ------------------------------------------------------


def _junk(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(8 if depth < 3 else 5)
    if choice == 0:
        return None
    if choice == 1:
        return rng.randint(-(2**63), 2**64 - 1)
    if choice == 2:
        return rng.random()
    if choice == 3:
        return "".join(chr(rng.randrange(32, 0x2FF)) for _ in range(rng.randrange(12)))
    if choice == 4:
        return rng.randbytes(rng.randrange(12))
    if choice == 5:
        return [_junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    if choice == 6:
        return {f"k{i}": _junk(rng, depth + 1) for i in range(rng.randrange(4))}
    return rng.choice([True, False])


def _deep(depth: int, as_map: bool) -> bytes:
    """msgpack for `depth` nested single-element arrays or maps, built without recursion."""
    if as_map:
        return b"\x81\xa1k" * depth + b"\x01"
    return b"\x91" * depth + b"\x01"


def _packed_request(rid: bytes, method: bytes, params: bytes) -> bytes:
    return b"\x83\xa2id" + rid + b"\xa6method" + method + b"\xa6params" + params


def _hostile_unit(rng: random.Random, rid: int, max_frame: int) -> tuple[bytes, str, Any]:
    """One hostile thing to send: (bytes, what the server must do, expected reply detail).

    Expectations: "error"     exactly one error reply of the given kind, connection kept
                  "reply"     a well-formed client's answer (the given result)
                  "close"     error frames at most, then the connection is closed
                  "close!"    the same, after half-closing our side (incomplete frame)
    """
    kind = rng.randrange(15)
    body: bytes
    if kind == 0:  # random bytes as a body
        body = rng.randbytes(rng.randrange(64))
        if body[:1] and body[0] in range(0x80, 0x90):
            body = b"\xc1" + body  # a random fixmap could, rarely, be a valid request
        return struct.pack(">I", len(body)) + body, "error", ("protocol", None)
    if kind == 1:  # wrong types for the id
        bad = rng.choice([b"\xa11", b"\xcb?\xf0\x00\x00\x00\x00\x00\x00", b"\xc3", b"\xc0",
                          b"\x90", b"\x80", b"\xc4\x01x"])
        return frame_bytes(_packed_request(bad, b"\xa4echo", b"\x80")), "error", ("protocol", None)
    if kind == 2:  # wrong types for the method
        bad = rng.choice([b"\x01", b"\xc4\x04echo", b"\xc0", b"\xa0", b"\x91\xa4echo",
                          b"\xda\x01\x2c" + b"m" * 300, b"\xa2\xff\xfe"])
        pid = b"\xce" + struct.pack(">I", rid)
        expect = None if bad == b"\xa2\xff\xfe" else rid  # bad UTF-8 fails decoding entirely
        return frame_bytes(_packed_request(pid, bad, b"\x80")), "error", ("protocol", expect)
    if kind == 3:  # wrong types for params, or non-string keys
        bad = rng.choice([b"\x90", b"\x01", b"\xa1x", b"\xc0", b"\x81\x01\x02", b"\x81\xc0\x02"])
        pid = b"\xce" + struct.pack(">I", rid)
        expect = None if bad in (b"\x81\x01\x02", b"\x81\xc0\x02") else rid
        return frame_bytes(_packed_request(pid, b"\xa4echo", bad)), "error", ("protocol", expect)
    if kind == 4:  # a body that is not a map
        obj = rng.choice([[1, "echo", {}], 7, "echo", None, b"x", 1.5, True])
        return frame(obj), "error", ("protocol", None)
    if kind == 5:  # unknown methods
        method = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz._/") for _ in range(
            rng.randint(1, 40)))
        request = {"id": rid, "method": "x" + method, "params": {"p": _junk(rng)}}
        return frame(request), "error", ("invalid_argument", rid)
    if kind == 6:  # huge length prefixes
        n = rng.randint(max_frame + 1, 2**32 - 1)
        return struct.pack(">I", n), "close", None
    if kind == 7:  # deeply nested msgpack, past the decoder's limit
        nested = _deep(rng.randint(1100, 20000), rng.random() < 0.5)
        if len(nested) + 64 > max_frame:
            nested = _deep(1100, False)
        pid = b"\xce" + struct.pack(">I", rid)
        return frame_bytes(_packed_request(pid, b"\xa4sink", b"\x81\xa1p" + nested)), "error", (
            "protocol", None)
    if kind == 8:  # truncated frames (inside the header or the body)
        whole = frame({"id": rid, "method": "echo", "params": {"p": _junk(rng)}})
        return whole[: rng.randrange(1, len(whole))], "close!", None
    if kind == 9:  # raw random bytes without any framing
        return rng.randbytes(rng.randint(1, 64)), "close!", None
    if kind == 10:  # extension types are not plain data
        ext = msgpack.packb(msgpack.ExtType(rng.randrange(0, 127), rng.randbytes(3)))
        pid = b"\xce" + struct.pack(">I", rid)
        return frame_bytes(_packed_request(pid, b"\xa4echo", b"\x81\xa1e" + ext)), "error", (
            "protocol", None)
    if kind == 11:  # empty body, and trailing bytes after a valid request
        if rng.random() < 0.5:
            return struct.pack(">I", 0), "error", ("protocol", None)
        body = msgpack.packb({"id": rid, "method": "echo", "params": {}}) + b"\x00"
        return struct.pack(">I", len(body)) + body, "error", ("protocol", None)
    if kind == 12:  # lying length: shorter than the body, the rest is parsed as a new frame
        body = msgpack.packb({"id": rid, "method": "echo", "params": {"a": "b" * 10}})
        return struct.pack(">I", len(body) - 5) + body, "close!", None
    # well-behaved requests in between: the connection still works after the junk
    params = {"p": _junk(rng)}
    return frame({"id": rid, "method": "echo", "params": params}), "reply", params


def frame_bytes(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def test_hostile_clients(serve: Callable[..., tuple[Server, Recorder]], open_dir: Path) -> None:
    max_frame = 1 << 16
    # Long timeouts: no unit below may need one to be answered; each must be answered at once.
    server, handler = serve(path=str(open_dir / "llmos.sock"), max_frame=max_frame)
    rng = random.Random(20240501)
    raw = Raw(server.path)
    counts = {"error": 0, "reply": 0, "close": 0, "close!": 0}
    started = time.monotonic()
    try:
        for rid in range(1, 10_001):
            data, expect, detail = _hostile_unit(rng, rid, max_frame)
            counts[expect] += 1
            sent = raw.send(data)
            assert sent, f"unit {rid}: the server hung up before reading ({expect})"
            if expect == "error":
                kind, echoed = detail
                assert_error(raw.reply(), kind, echoed)
                continue
            if expect == "reply":
                assert raw.reply() == {"id": rid, "result": detail}
                continue
            if expect == "close!":
                raw.shut()
            while (reply := raw.reply()) is not None:  # error frames, then the close
                assert reply["error"]["kind"] in ERROR_KINDS, reply
            raw.close()
            raw = Raw(server.path)
    finally:
        raw.close()
    assert min(counts.values()) > 300, counts

    # Slow clients: half a frame then silence, and a stream nobody reads.
    slow_server, slow_handler = serve(
        path=str(open_dir / "slow.sock"), frame_timeout=0.5, send_timeout=0.5
    )
    stalled = Raw(slow_server.path)
    stalled.send(b"\x00\x00\x01")
    unread = Raw(slow_server.path)
    unread.send(frame({"id": 1, "method": "forever", "params": {"size": 1 << 15}}))
    assert_error(stalled.reply(), "protocol")
    assert wait_for(lambda: "forever" in slow_handler.closed_streams)
    stalled.close()
    unread.close()

    # The server is still up, serves the next well-behaved client, and leaked no threads.
    with Connection(server.path) as c:
        assert c.call("echo", {"after": "storm"}) == {"after": "storm"}
    assert handler.seen[-1] == ("echo", {"after": "storm"})
    assert wait_for(lambda: rpc_threads() == 0)
    if os.geteuid() == 0:
        assert _as_user(NOBODY, NOBODY, server.path) == "denied"
    assert time.monotonic() - started < 45

