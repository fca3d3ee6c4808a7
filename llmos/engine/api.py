"""The engine's method table: the one place RPC method names meet engine calls.

The daemon serves it over its socket and the in-process client calls it directly, so both
transports get the same validation, the same results (plain msgpack-able data) and the same
error kinds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from llmos import __version__
from llmos.engine.engine import Engine
from llmos.engine.options import RunOptions
from llmos.errors import (
    AlreadyExists,
    ConfigError,
    InvalidState,
    NotFound,
    RuntimeError_,
    StepError,
)


class ApiError(Exception):
    """An error with a wire kind; the daemon turns it into an RpcError of that kind."""

    def __init__(self, kind: str, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.exit_code = exit_code


def _kind(e: BaseException) -> ApiError:
    from llmos.daemon.errors import RpcError

    if isinstance(e, ApiError):
        return e
    if isinstance(e, RpcError):
        return ApiError(e.kind, e.message)
    if isinstance(e, NotFound):
        return ApiError("not_found", str(e))
    if isinstance(e, AlreadyExists):
        return ApiError("already_exists", str(e))
    if isinstance(e, InvalidState):
        return ApiError("failed_precondition", str(e))
    if isinstance(e, ConfigError):
        return ApiError("invalid_argument", str(e))
    if isinstance(e, StepError):
        return ApiError("failed_precondition", str(e), exit_code=e.exit_code)
    if isinstance(e, TimeoutError):
        return ApiError("failed_precondition", str(e))
    try:
        from llmos.image import ImageError
        from llmos.image import InvalidArgument as ImageInvalid
        from llmos.image import NotFound as ImageNotFound

        if isinstance(e, ImageNotFound):
            return ApiError("not_found", str(e))
        if isinstance(e, ImageInvalid):
            return ApiError("invalid_argument", str(e))
        if isinstance(e, ImageError):
            return ApiError("failed_precondition", str(e))
    except ImportError:  # pragma: no cover
        pass
    try:
        from llmos.network import errors as net

        if isinstance(e, net.NetworkNotFound | net.EndpointNotFound):
            return ApiError("not_found", str(e).strip("'\""))
        if isinstance(e, net.NetworkExists | net.EndpointExists):
            return ApiError("already_exists", str(e))
        if isinstance(e, net.InvalidArgument):
            return ApiError("invalid_argument", str(e))
        if isinstance(e, net.NetworkError):
            return ApiError("failed_precondition", str(e))
    except ImportError:  # pragma: no cover
        pass
    if isinstance(e, RuntimeError_):
        return ApiError("failed_precondition", str(e))
    return ApiError("internal", f"{type(e).__name__}: {e}")


def _prune_report(r: Any) -> dict[str, Any]:
    return {"Blobs": list(r.blobs), "Snapshots": list(r.snapshots),
            "SpaceReclaimed": r.bytes_freed}


def _str(params: dict[str, Any], key: str) -> str:
    v = params.get(key)
    if not isinstance(v, str) or not v:
        raise ApiError("invalid_argument", f"{key}: a non-empty string is required")
    return v


def _opt_num(params: dict[str, Any], key: str) -> float | None:
    v = params.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ApiError("invalid_argument", f"{key}: a number is required")
    return float(v)


def _caller_gone() -> Callable[[], bool] | None:
    """For a following stream served to a client of llmosd: whether that client has hung up
    (a quiet stream notices no other way). None in-process, where the caller is right here."""
    from llmos.daemon.rpc import current_call

    ctx = current_call()
    return ctx.cancelled.is_set if ctx is not None else None


def _event(action: str, item: str, current: int = 0, total: int | None = None,
           message: str = "") -> dict[str, Any]:
    return {"action": action, "item": item, "current": current, "total": total,
            "message": message}


def _with_progress(work: Callable[[Any], list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Run `work(progress_callback)` in a thread of its own and stream its progress events as
    they happen, then the events it returns. A thread because the work calls back from its
    own worker threads (parallel layers) while the stream is read here."""
    import queue
    import threading

    events: queue.Queue[Any] = queue.Queue()
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["last"] = work(events.put)
        except BaseException as e:
            result["error"] = e
        finally:
            events.put(None)

    threading.Thread(target=run, daemon=True).start()

    def gen() -> Iterator[dict[str, Any]]:
        while (ev := events.get()) is not None:
            yield _event(ev.action, ev.item, ev.current, ev.total, ev.message)
        if "error" in result:
            raise result["error"]
        yield from result["last"]

    return gen()


class Api:
    """method name -> engine call. Streams are returned as iterators."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "ping": lambda p: "pong",
            "version": lambda p: {"Version": __version__, "ApiVersion": "1",
                                  "Os": "linux", "Arch": os.uname().machine},
            "info": self._info,
            "container.create": self._create,
            "container.start": lambda p: self.engine.start(_str(p, "id")),
            "container.stop": lambda p: self.engine.stop(_str(p, "id"), _opt_num(p, "timeout")),
            "container.restart": lambda p: self.engine.restart(_str(p, "id"),
                                                               _opt_num(p, "timeout")),
            "container.kill": lambda p: self.engine.kill(_str(p, "id"),
                                                         p.get("signal") or "KILL"),
            "container.pause": lambda p: self.engine.pause(_str(p, "id")),
            "container.unpause": lambda p: self.engine.unpause(_str(p, "id")),
            "container.remove": lambda p: self.engine.remove(_str(p, "id"),
                                                             force=bool(p.get("force"))),
            "container.wait": lambda p: {"StatusCode": self.engine.wait(
                _str(p, "id"), _opt_num(p, "timeout"))},
            "container.inspect": lambda p: self.engine.get(_str(p, "id")),
            "container.list": lambda p: self.engine.list(all=bool(p.get("all"))),
            "container.logs": self._logs,
            "container.exec": self._exec,
            "container.exec_start": self._exec_start,
            "container.exec_resume": lambda p: self.engine.exec_resume(_str(p, "id")),
            "container.exec_wait": lambda p: {"ExitCode": self.engine.exec_wait(
                _str(p, "id"), _opt_num(p, "timeout"))},
            "container.stats": lambda p: self.engine.stats(_str(p, "id")),
            "image.import": lambda p: self.engine.import_rootfs(_str(p, "path"),
                                                                _str(p, "name")),
            "image.list": lambda p: self.engine.image_list(),
            "image.pull": self._pull,
            "login": lambda p: self.engine.login(_str(p, "registry"), _str(p, "username"),
                                                 _str(p, "password")),
            "image.push": self._push,
            "image.tag": lambda p: {"Id": self.engine.images.tag(_str(p, "source"),
                                                                 _str(p, "name")).id},
            "image.remove": lambda p: {"Deleted": self.engine.image_remove(
                _str(p, "ref"), force=bool(p.get("force")))},
            "image.load": self._load,
            "image.save": lambda p: self.engine.images.save(
                list(p.get("refs") or []), _str(p, "path"),
                format=p.get("format") or "docker-archive"),
            "image.prune": lambda p: _prune_report(self.engine.images.prune()),
            "network.create": self._network_create,
            "network.list": lambda p: [
                self.engine.network().inspect_network(n.name)
                for n in self.engine.network().list_networks()],
            "network.inspect": lambda p: self.engine.network().inspect_network(_str(p, "name")),
            "network.connect": lambda p: self.engine.network_connect(
                _str(p, "name"), _str(p, "container"), list(p.get("aliases") or [])),
            "network.disconnect": lambda p: self.engine.network_disconnect(
                _str(p, "name"), _str(p, "container")),
            "network.remove": lambda p: self.engine.network().remove_network(_str(p, "name")),
            "build.network_attach": self._build_network_attach,
            "build.network_detach": self._build_network_detach,
            "container.attach_socket": lambda p: self.engine.get(_str(p, "id")).get(
                "AttachSocket", ""),
            "events": self._events,
            "container.port": lambda p: self.engine.get(_str(p, "id"))["NetworkSettings"].get(
                "Ports", {}),
        }

    def handle(self, method: str, params: dict[str, Any]) -> Any:
        fn = self.methods.get(method)
        if fn is None:
            raise ApiError("invalid_argument", f"unknown method {method!r}")
        if not isinstance(params, dict):
            raise ApiError("invalid_argument", "params must be a map")
        try:
            result = fn(params)
        except Exception as e:
            raise _kind(e) from e
        if isinstance(result, Iterator):
            return self._guard(result)
        return result

    def _guard(self, it: Iterator[Any]) -> Iterator[Any]:
        try:
            yield from it
        except Exception as e:
            raise _kind(e) from e

    def _info(self, params: dict[str, Any]) -> dict[str, Any]:
        from llmos.cgroups import detect_mode

        recs = self.engine.list(all=True)
        return {
            "Containers": len(recs),
            "ContainersRunning": sum(1 for r in recs if r["State"]["Running"]),
            "Images": len(self.engine.image_list()),
            "CgroupVersion": {"v2": "2", "hybrid": "1 (hybrid)", "v1": "1"}[detect_mode()],
            "DockerRootDir": str(self.engine.root),
            "ServerVersion": __version__,
            # Docker's RegistryConfig.InsecureRegistryCIDRs / IndexConfigs, flattened.
            "InsecureRegistries": sorted(self.engine.registry_config.insecure),
        }

    def _create(self, params: dict[str, Any]) -> dict[str, Any]:
        opts = params.get("options")
        if not isinstance(opts, dict):
            raise ApiError("invalid_argument", "options: a map is required")
        cid = self.engine.create(RunOptions.from_dict(opts))
        return {"Id": cid}

    def _pull(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Streams progress events, one per step, then {action: pulled, item: image id}."""
        ref = _str(params, "ref")

        def work(progress: Any) -> list[dict[str, Any]]:
            r = self.engine.pull(ref, progress=progress)
            return [_event("pulled", r.get("Id", ""), message=ref)]

        return _with_progress(work)

    def _push(self, params: dict[str, Any]) -> Any:
        """{Digest}; with `progress`, a stream of progress events ending in {action: pushed,
        item: digest, total: manifest size, message: the reference pushed to}."""
        ref, dest = _str(params, "ref"), params.get("dest")

        def work(progress: Any) -> list[dict[str, Any]]:
            d = self.engine.images.push(ref, dest=dest, progress=progress)
            return [_event("pushed", d.digest, total=d.size, message=dest or ref)]

        if params.get("progress"):
            return _with_progress(work)
        return {"Digest": work(None)[0]["item"]}

    def _load(self, params: dict[str, Any]) -> Any:
        """{Loaded: [name]}; with `progress`, a stream of progress events, then one
        {action: loaded, item: name} per image."""
        path = _str(params, "path")

        def work(progress: Any) -> list[dict[str, Any]]:
            return [_event("loaded", i.name or i.id)
                    for i in self.engine.images.load(path, progress=progress)]

        if params.get("progress"):
            return _with_progress(work)
        return {"Loaded": [ev["item"] for ev in work(None)]}

    def _events(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Past events from `since`, then (with follow) new ones as they happen."""
        import time as _time

        since = _opt_num(params, "since")
        until = _opt_num(params, "until")
        follow = bool(params.get("follow", True))
        start = _time.time() if since is None else since
        gone = _caller_gone()

        def gen() -> Iterator[dict[str, Any]]:
            seq = 0
            while True:
                for ev in self.engine.records.events_since(start, after_seq=seq):
                    seq = ev.seq
                    if until is not None and ev.time >= until:
                        return
                    yield {"Type": ev.type, "Action": ev.action, "Actor": {
                        "ID": ev.actor, "Attributes": ev.attributes}, "time": ev.time}
                if not follow or (until is not None and _time.time() >= until):
                    return
                if gone is not None and gone():
                    return
                _time.sleep(0.1)

        return gen()

    def _network_create(self, params: dict[str, Any]) -> dict[str, Any]:
        net = self.engine.network()
        net.ensure_default_network()
        info = net.create_network(_str(params, "name"), subnet=params.get("subnet"),
                                  gateway=params.get("gateway"),
                                  internal=bool(params.get("internal")))
        result: dict[str, Any] = net.inspect_network(info.name)
        return result

    def _build_network_attach(self, params: dict[str, Any]) -> dict[str, str]:
        """A RUN step of a build in another process joins the default bridge: the daemon
        owns its addresses and rules, so it does the wiring (llmos/build/network.py)."""
        from llmos.build.errors import BuildError
        from llmos.build.network import attach_with

        try:
            return attach_with(self.engine.network(), _str(params, "netns"),
                               _str(params, "id"), _str(params, "hostname"))
        except BuildError as e:
            raise ApiError("invalid_argument", str(e)) from None

    def _build_network_detach(self, params: dict[str, Any]) -> None:
        from llmos.build.errors import BuildError
        from llmos.build.network import detach_with

        try:
            detach_with(self.engine.network(), _str(params, "id"))
        except BuildError as e:
            raise ApiError("invalid_argument", str(e)) from None

    def _logs(self, params: dict[str, Any]) -> Iterator[dict[str, str]]:
        tail = params.get("tail")
        if tail is not None and (not isinstance(tail, int) or isinstance(tail, bool)):
            raise ApiError("invalid_argument", "tail: an integer is required")
        lines = self.engine.logs(_str(params, "id"), follow=bool(params.get("follow")),
                                 tail=tail, stop=_caller_gone())
        return ({"stream": ln.stream, "text": ln.text, "time": ln.timestamp} for ln in lines)

    def _exec(self, params: dict[str, Any]) -> dict[str, Any]:
        cmd = params.get("cmd")
        if not isinstance(cmd, list) or not cmd or not all(isinstance(c, str) for c in cmd):
            raise ApiError("invalid_argument", "cmd: a non-empty list of strings is required")
        env = params.get("env") or []
        code, out, err = self.engine.exec(
            _str(params, "id"), cmd, env=list(env), user=params.get("user"),
            workdir=params.get("workdir"),
        )
        return {"ExitCode": code, "Stdout": out, "Stderr": err}

    def _exec_start(self, params: dict[str, Any]) -> dict[str, Any]:
        """`exec -t`: {Id, AttachSocket}; `exec -i` (tty false): {Id, Stdio: [stdin, stdout,
        stderr FIFO paths]}. Then container.exec_resume {id} once attached (or the FIFOs
        open), and container.exec_wait {id} -> {ExitCode} when the output ends."""
        cmd = params.get("cmd")
        if not isinstance(cmd, list) or not cmd or not all(isinstance(c, str) for c in cmd):
            raise ApiError("invalid_argument", "cmd: a non-empty list of strings is required")
        size = params.get("tty_size")
        if size is not None and not (isinstance(size, list | tuple) and len(size) == 2 and all(
                isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 65536
                for n in size)):
            raise ApiError("invalid_argument", "tty_size: [rows, columns] is required")
        return self.engine.exec_start(
            _str(params, "id"), cmd, env=list(params.get("env") or []),
            user=params.get("user"), workdir=params.get("workdir"),
            tty=bool(params.get("tty", True)), tty_size=(size[0], size[1]) if size else None,
            hold=bool(params.get("hold")))
