"""`llmos exec -it` gets a real terminal under a shim of its own; `llmos stats` streams."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios
import time
from pathlib import Path
from typing import Any

from tests.integration.engine.conftest import LLMOS_CLI
from tests.integration.engine.test_tty import run_in_pty

HEADER = "CONTAINER ID"


def exec_shims(root: Path) -> list[int]:
    """Pids of the llmos-shims serving an exec of this daemon's containers."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if (len(argv) > 2 and argv[0] == b"llmos-shim" and str(root).encode() in argv[2]
                and b"/exec/" in argv[2]):
            out.append(int(entry))
    return out


def exec_dirs(root: Path) -> list[Path]:
    return list(root.glob("lib/containers/*/exec/*"))


def start_box(daemon: Any, name: str = "box") -> None:
    r = daemon.cli("run", "-d", "--name", name, "busybox", "sleep", "1000")
    assert r.returncode == 0, r.stderr


def test_exec_tty_and_window_size(daemon: Any) -> None:
    start_box(daemon)
    code, out = run_in_pty(daemon, ["exec", "-it", "box", "sh", "-c", "tty; stty size"],
                           rows=41, cols=93)
    assert code == 0, out
    assert "/dev/pts/" in out
    assert "41 93" in out
    # -t without -i: a terminal still, and the command's own exit code.
    code, out = run_in_pty(daemon, ["exec", "-t", "box", "sh", "-c", "tty; exit 3"])
    assert code == 3, out
    assert "/dev/pts/" in out


def test_exec_interactive_shell_and_no_shim_left(daemon: Any) -> None:
    start_box(daemon)
    code, out = run_in_pty(daemon, ["exec", "-it", "box", "sh"],
                           send=b"echo $((6*7)); exit 5\r")
    assert "42" in out, out
    assert code == 5
    assert exec_shims(daemon.root) == []
    assert exec_dirs(daemon.root) == []
    # The container itself is untouched by its exec ending.
    assert daemon.cli("exec", "box", "true").returncode == 0


def test_exec_tty_window_resize(daemon: Any) -> None:
    start_box(daemon)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 20, 60, 0, 0))
    # The pty is the command's controlling terminal, so a window change signals it.
    proc = subprocess.Popen([*LLMOS_CLI, "exec", "-it", "box", "sh"], stdin=slave,
                            stdout=slave, stderr=slave, env=daemon.env, start_new_session=True,
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(slave)
    out = b""

    def read_until(token: bytes, timeout: float = 20) -> None:
        nonlocal out
        deadline = time.monotonic() + timeout
        while token not in out and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    out += os.read(master, 4096)
                except OSError:
                    return

    try:
        read_until(b"# ")
        os.write(master, b"stty size\r")
        read_until(b"20 60")
        # The caller's window changes (SIGWINCH reaches it as a terminal's would).
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 31, 101, 0, 0))
        time.sleep(0.3)
        os.write(master, b"stty size; exit\r")
        read_until(b"31 101")
        assert proc.wait(timeout=20) == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert b"20 60" in out and b"31 101" in out, out


def test_exec_tty_ends_with_its_container(daemon: Any) -> None:
    start_box(daemon)
    master, slave = os.openpty()
    proc = subprocess.Popen([*LLMOS_CLI, "exec", "-it", "box", "sleep", "1000"], stdin=slave,
                            stdout=slave, stderr=slave, env=daemon.env, start_new_session=True)
    os.close(slave)
    try:
        deadline = time.monotonic() + 20
        while not exec_shims(daemon.root) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(exec_shims(daemon.root)) == 1
        assert daemon.cli("rm", "-f", "box").returncode == 0
        # No shim, no files survive the container; the exec'd process was killed.
        assert exec_shims(daemon.root) == []
        assert exec_dirs(daemon.root) == []
        assert proc.wait(timeout=20) == 137
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_exec_tty_missing_command(daemon: Any) -> None:
    start_box(daemon)
    code, out = run_in_pty(daemon, ["exec", "-it", "box", "/no/such/cmd"])
    assert code == 127, out
    assert "/no/such/cmd" in out
    assert exec_shims(daemon.root) == [] and exec_dirs(daemon.root) == []


def test_exec_interactive_without_terminal(daemon: Any) -> None:
    start_box(daemon)

    def llmos(*args: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*LLMOS_CLI, *args], input=data, capture_output=True,
                              env=daemon.env, timeout=60)

    r = llmos("exec", "-i", "box", "sh", "-c", "cat; echo err >&2; tty; exit 4",
              data=b"hello\nworld\n")
    assert r.returncode == 4, r.stderr
    assert r.stdout == b"hello\nworld\nnot a tty\n"
    assert r.stderr == b"err\n"
    # Pipes both ways at once: a MiB back through cat, which writes while we still write.
    blob = os.urandom(1 << 20)
    r = llmos("exec", "-i", "box", "cat", data=blob)
    assert r.returncode == 0 and r.stdout == blob, r.stderr
    assert exec_shims(daemon.root) == [] and exec_dirs(daemon.root) == []


def test_stats_streams_until_interrupted(daemon: Any) -> None:
    start_box(daemon, "statbox")
    proc = subprocess.Popen([*LLMOS_CLI, "stats"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=daemon.env)
    try:
        time.sleep(3.2)
        assert proc.poll() is None, "stats without --no-stream must keep going"
    finally:
        proc.kill()
        out, err = proc.communicate(timeout=10)
    text = out.decode()
    assert text.count(HEADER) >= 2, (text, err)
    assert "CPU %" in text and "MEM USAGE / LIMIT" in text and "PIDS" in text
    assert "statbox" in text
    assert "\033[2J" not in text  # not a terminal: plain successive tables


def test_stats_ends_when_its_containers_are_gone(daemon: Any) -> None:
    r = daemon.cli("run", "-d", "--name", "brief", "busybox", "sleep", "2")
    assert r.returncode == 0, r.stderr
    t0 = time.monotonic()
    # On a terminal each table replaces the one before.
    code, out = run_in_pty(daemon, ["stats", "brief"], timeout=30)
    assert code == 0, out
    assert time.monotonic() - t0 < 15
    assert out.count("\033[2J\033[H") >= 2 and out.count(HEADER) >= 2, out
    assert "brief" in out


def test_stats_no_stream(daemon: Any) -> None:
    r = daemon.cli("run", "-d", "--name", "busy", "--memory", "64m", "busybox", "sh", "-c",
                   "while true; do :; done")
    assert r.returncode == 0, r.stderr
    r = daemon.cli("stats", "--no-stream")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert r.stdout.count(HEADER) == 1 and len(lines) == 2, r.stdout
    header, row = lines
    assert header.split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"]
    cols = row.split()
    assert cols[1] == "busy"
    # A busy loop keeps (about) one CPU busy; "/ 64MiB": the limit, in binary units.
    assert cols[2].endswith("%") and float(cols[2].rstrip("%")) > 30, row
    assert "/ 64MiB" in row and cols[3].endswith("iB"), row
    assert cols[-1] == "1"
    r = daemon.cli("stats", "--no-stream", "nope")
    assert r.returncode == 1 and "nope" in r.stderr
