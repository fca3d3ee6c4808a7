"""Issue 3, point 1: `llmos run -it` gets a real terminal with the caller's window size."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios
import time
from typing import Any

from tests.integration.engine.conftest import LLMOS_CLI


def run_in_pty(daemon: Any, args: list[str], *, rows: int = 33, cols: int = 77,
               send: bytes = b"", timeout: float = 30) -> tuple[int, str]:
    """Run `llmos ARGS` with a pty of the given size as its terminal; (exit code, output)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen([*LLMOS_CLI, *args], stdin=slave,
                            stdout=slave, stderr=slave, env=daemon.env, start_new_session=True)
    os.close(slave)
    out = b""
    sent = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if send and not sent and b"# " in out:
                os.write(master, send)
                sent = True
            if proc.poll() is not None and not r:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, out.decode(errors="replace")


def test_tty_and_window_size(daemon: Any) -> None:
    code, out = run_in_pty(daemon, ["run", "--rm", "-it", "busybox", "sh", "-c",
                                    "tty; stty size"])
    assert code == 0, out
    assert "/dev/pts/0" in out
    assert "33 77" in out


def test_interactive_shell(daemon: Any) -> None:
    code, out = run_in_pty(daemon, ["run", "--rm", "-it", "busybox", "sh"],
                           send=b"echo $((6*7)); exit 5\r")
    assert "42" in out, out
    assert code == 5


def test_tty_output_is_logged(daemon: Any) -> None:
    r = daemon.cli("run", "-d", "-t", "--name", "ttylog", "busybox", "sh", "-c",
                   "echo from-a-tty; sleep 0.2")
    assert r.returncode == 0, r.stderr
    assert daemon.cli("wait", "ttylog").stdout.strip() == "0"
    assert "from-a-tty" in daemon.cli("logs", "ttylog").stdout
