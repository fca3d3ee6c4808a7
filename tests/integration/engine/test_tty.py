"""Issue 3, point 1: `llmos run -it` gets a real terminal with the caller's window size."""

from __future__ import annotations

from typing import Any

from tests.integration.engine.conftest import run_in_pty


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
