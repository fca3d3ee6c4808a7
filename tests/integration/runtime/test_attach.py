"""The shim's attach socket: a client that comes while the terminal drains still gets output.

`llmos run -it` attaches after start; a short command can exit before that. The shim keeps
serving the socket until the terminal is drained and hands late clients the replay, instead
of leaving them in the listen backlog to be reset (seen in CI as an empty `-it` output).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any


def _no_pid_namespace(config: dict[str, Any]) -> None:
    config["process"]["terminal"] = True
    ns = config["linux"]["namespaces"]
    config["linux"]["namespaces"] = [n for n in ns if n["type"] != "pid"]


def test_attach_after_exit_while_draining(runtime: Any, make_bundle: Any,
                                          tmp_path: Path) -> None:
    # Without a pid namespace the background sleep outlives sh and holds the pty open, so
    # the shim sits in its "exited, draining" phase for about a second (HUP ignored: the
    # session leader's exit hangs up the terminal).
    script = "trap '' HUP; echo early-output; sleep 1 &"
    bundle = make_bundle(["sh", "-c", script], edit=_no_pid_namespace)
    # create (not run): create returns a settled state, which would wait for the drain.
    runtime.create("late", bundle, log_file=str(tmp_path / "l"), pid_file=str(tmp_path / "pid"))
    try:
        pid = int((tmp_path / "pid").read_text())
        runtime.start("late")
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}"):
            assert time.monotonic() < deadline
            time.sleep(0.01)  # until the shim has reaped sh
        sock_dir = os.open(runtime.root / "late", os.O_PATH | os.O_DIRECTORY)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect(f"/proc/self/fd/{sock_dir}/attach.sock")
            s.sendall(b"attach\n")
            got = b""
            while chunk := s.recv(4096):
                got += chunk
        finally:
            s.close()
            os.close(sock_dir)
        assert b"early-output" in got
        assert runtime.wait("late", timeout=10).code == 0
    finally:
        runtime.delete("late", force=True)
