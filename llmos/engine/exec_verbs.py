"""The engine's exec verbs: a command in a running container, its output returned (`exec`),
or under a shim of its own with a terminal or pipes for the client (`exec_start`,
`exec_resume`, `exec_wait`; the files they keep are llmos/engine/execs.py's).

A mixin of Engine, in a file of its own so that engine.py stays about containers' lifecycle.
"""

from __future__ import annotations

import builtins
import os
from typing import Any

from llmos.engine import specgen
from llmos.engine.records import RecordStore
from llmos.errors import InvalidState
from llmos.runtime import Runtime


class ExecVerbs:
    runtime: Runtime
    records: RecordStore

    def get(self, ref: str) -> dict[str, Any]:  # Engine's: the record, refreshed
        raise NotImplementedError

    def exec(
        self,
        ref: str,
        cmd: builtins.list[str],
        *,
        env: builtins.list[str] | None = None,
        user: str | None = None,
        workdir: str | None = None,
    ) -> tuple[int, bytes, bytes]:
        """Run cmd in the container; (exit code, stdout, stderr)."""
        rec = self.get(ref)
        process = self._exec_process(rec, cmd, env, user, workdir)
        import tempfile

        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            null = os.open(os.devnull, os.O_RDONLY)
            try:
                code = self.runtime.exec(rec["Id"], process,
                                         stdio=(null, out.fileno(), err.fileno()))
            finally:
                os.close(null)
            out.seek(0)
            err.seek(0)
            return code, out.read(), err.read()

    def _exec_process(self, rec: dict[str, Any], cmd: builtins.list[str],
                      env: builtins.list[str] | None, user: str | None,
                      workdir: str | None) -> dict[str, Any]:
        """The OCI process of an exec: the container's own, with these overrides."""
        if not rec["State"]["Running"]:
            raise InvalidState(f"container {rec['Name'][1:]} is not running")
        process: dict[str, Any] = {"args": list(cmd), "terminal": False}
        base_env = list(rec["Config"]["Env"])
        if env:
            process["env"] = specgen.merge_env(base_env, env)
        if workdir:
            process["cwd"] = workdir
        if user:
            uid, gid, _ = specgen.parse_user(user, None)
            process["user"] = {"uid": uid, "gid": gid}
        return process

    def exec_start(
        self,
        ref: str,
        cmd: builtins.list[str],
        *,
        env: builtins.list[str] | None = None,
        user: str | None = None,
        workdir: str | None = None,
        tty: bool = True,
        tty_size: tuple[int, int] | None = None,
        hold: bool = False,
    ) -> dict[str, Any]:
        """`exec -t` / `exec -i`: cmd under an llmos-shim of its own, which records its exit
        for `exec_wait`. With a terminal the shim serves it like a container's (returned:
        Id, AttachSocket); without, its stdio are FIFOs for the client (Id, Stdio: the
        stdin, stdout and stderr paths).

        With `hold` (always, without a terminal) the process waits before execve until
        `exec_resume`: the client attaches first, so even a command that ends at once has
        its output seen, and its pipes have their reader.
        """
        from llmos.engine import execs

        rec = self.get(ref)
        process = self._exec_process(rec, cmd, env, user, workdir)
        process["terminal"] = tty
        if tty and tty_size:
            process["consoleSize"] = {"height": tty_size[0], "width": tty_size[1]}
        exec_id = execs.new_id()
        d = execs.exec_dir(self.records.dir(rec["Id"]), exec_id)
        d.parent.mkdir(mode=0o700, exist_ok=True)
        d.mkdir(mode=0o700)
        st = None
        stdio: tuple[int, int, int] = (-1, -1, -1)
        try:
            if not tty:
                stdio = execs.stdio_fifos(d)
            try:
                spawned = self.runtime.exec_monitored(rec["Id"], process, exec_dir=d,
                                                      hold=hold or not tty, stdio=stdio)
            finally:
                for fd in stdio:
                    if fd >= 0:
                        os.close(fd)
            st = execs.ExecState.of(rec["Id"], spawned.pid, spawned.shim_pid)
            execs.save(d, st)
            if tty:
                execs.wait_socket(d, st)
        except BaseException as e:
            execs.abandon(d, st, getattr(e, "shim_pid", 0))
            raise
        if tty:
            return {"Id": exec_id, "AttachSocket": str(d / "attach.sock")}
        return {"Id": exec_id, "Stdio": [str(d / name) for name in execs.STDIO]}

    def exec_resume(self, exec_id: str) -> None:
        """Let an exec started with `hold` run."""
        from llmos.engine import execs

        d, st = execs.find(self.records.root, exec_id)
        self.runtime.exec_release(d, st.pid, st.pid_start)

    def exec_wait(self, exec_id: str, timeout: float | None = None) -> int:
        """The exit code of an `exec_start`ed process, once it ended; its files go with it."""
        from llmos.engine import execs

        d, st = execs.find(self.records.root, exec_id)
        return execs.wait(d, st, timeout)
