"""`cli.run` and `cli.signal`: llmosd running the command line for the compiled front end.

Why in the daemon: starting a Python interpreter costs tens of milliseconds (over a hundred
on some hosts) before `llmos run` does anything, several times what it takes the warm
daemon to run a container. native/cli.c sends argv here instead; the verb runs with the
same code as in a process of its own (llmos.cli.main), its output routed back through
`llmos.cli.session`, and the exit code is the reply.

    cli.run    {argv: [str], env: [str "K=V"], cwd: str, token: str, stdout_tty: bool, ...}
               -> stream {"o": bytes} | {"e": bytes} ..., then {"exit": int}
               -> {"local": true} when the verb needs the caller's own terminal or files
    cli.signal {token: str, signal: int} -> {"handled": bool}
"""

from __future__ import annotations

import threading
from typing import Any

from llmos.daemon.errors import RpcError

_MAX_ARGS = 4096


def _strings(params: dict[str, Any], key: str) -> list[str]:
    v = params.get(key)
    if not isinstance(v, list) or len(v) > 1 << 16 or not all(isinstance(x, str) for x in v):
        raise RpcError("invalid_argument", f"{key}: a list of strings is required")
    return v


class RemoteCli:
    def __init__(self, api: Any) -> None:
        from llmos.cli import session

        self.api = api
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()
        session.route_std_streams()

    def handle(self, method: str, params: dict[str, Any]) -> Any:
        if method == "cli.run":
            return self._run(params)
        return self._signal(params)

    def _run(self, params: dict[str, Any]) -> dict[str, Any]:
        from llmos.cli import session
        from llmos.cli.main import main, needs_local
        from llmos.client.transport import InProcessTransport
        from llmos.daemon.rpc import current_call

        argv = _strings(params, "argv")
        if len(argv) > _MAX_ARGS:
            raise RpcError("invalid_argument", f"argv: more than {_MAX_ARGS} arguments")
        env = dict(item.partition("=")[::2] for item in _strings(params, "env"))
        cwd = params.get("cwd")
        token = params.get("token")
        if not isinstance(cwd, str) or not isinstance(token, str) or not token:
            raise RpcError("invalid_argument", "cwd and token: strings are required")
        if needs_local(argv):
            return {"local": True}
        ctx = current_call()
        if ctx is None:
            raise RpcError("internal", "cli.run is served only over the daemon's socket")

        def send(item: dict[str, bytes]) -> None:
            if not ctx.emit(item):
                raise BrokenPipeError("the caller left")

        s = session.Session(send=send, env=env, cwd=cwd,
                            transport=InProcessTransport.for_api(self.api),
                            stdout_tty=bool(params.get("stdout_tty")))
        with self._lock:
            if token in self._sessions:
                raise RpcError("already_exists", "token: already in use")
            self._sessions[token] = s
        active = session.activate(s)
        try:
            try:
                code = main(argv)
            except SystemExit as e:  # argparse's --help, or a verb that exits
                if isinstance(e.code, str):
                    s.write("e", (e.code + "\n").encode())
                    code = 1
                else:
                    code = int(e.code or 0)
            s.flush()
        except BrokenPipeError:
            code = 0  # nobody is left to tell
        finally:
            session.deactivate(active)
            with self._lock:
                self._sessions.pop(token, None)
        return {"exit": int(code) & 0xFF}

    def _signal(self, params: dict[str, Any]) -> dict[str, bool]:
        token, sig = params.get("token"), params.get("signal")
        if not isinstance(token, str) or not isinstance(sig, int) or not 0 < sig < 65:
            raise RpcError("invalid_argument", "token: a string, signal: 1-64 are required")
        with self._lock:
            s = self._sessions.get(token)
        forward = s.on_signal if s is not None else None
        if forward is None:
            return {"handled": False}
        forward(sig)
        return {"handled": True}
