"""The compiled `llmos` front end (native/cli.c): verbs run inside llmosd, same behaviour.

Everything else in tests/integration/engine goes through the front end too (Daemon.cli);
here is what is particular to it: the Python command line still agrees with it, signals
reach the container, the caller's environment and directory are the ones used, a verb that
needs the caller's terminal or a missing daemon hands over to Python, and the daemon
refuses malformed cli calls.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.engine.conftest import LLMOS_CLI


def test_front_end_is_installed_and_compiled() -> None:
    with open(LLMOS_CLI[0], "rb") as f:
        assert f.read(4) == b"\x7fELF", f"{LLMOS_CLI[0]} is not the compiled front end"


@pytest.mark.parametrize("python", [False, True], ids=["front-end", "python"])
def test_both_command_lines_agree(daemon: Any, python: bool) -> None:
    r = daemon.cli("run", "--rm", "busybox", "echo", "hi", python=python)
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    r = daemon.cli("run", "--rm", "busybox", "sh", "-c", "echo oops >&2; exit 3",
                   python=python)
    assert (r.returncode, r.stdout, r.stderr) == (3, "", "oops\n")
    r = daemon.cli("run", "--rm", "busybox", "/bin/nope", python=python)
    assert r.returncode == 127 and "nope" in r.stderr
    r = daemon.cli("run", "--memory", "lots", "busybox", "true", python=python)
    assert r.returncode == 125 and "--memory" in r.stderr
    r = daemon.cli("frobnicate", python=python)
    assert r.returncode == 125 and "unknown command 'frobnicate'" in r.stderr
    r = daemon.cli("ps", "--help", python=python)
    assert r.returncode == 0 and "usage: llmos ps" in r.stdout


def test_large_output_arrives_whole(daemon: Any) -> None:
    r = daemon.cli("run", "--rm", "busybox", "seq", "1", "200000")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert len(lines) == 200000 and lines[0] == "1" and lines[-1] == "200000"


def test_interrupt_reaches_the_container(daemon: Any) -> None:
    script = "trap 'echo got-int; exit 7' INT; echo ready; while true; do sleep 0.05; done"
    p = subprocess.Popen([*LLMOS_CLI, "run", "--rm", "--name", "intr", "busybox", "sh", "-c",
                          script], stdout=subprocess.PIPE, text=True, env=daemon.env)
    assert p.stdout is not None
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGINT)
    try:
        rest, _ = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 7
    assert "got-int" in rest
    assert daemon.cli("inspect", "intr").returncode != 0  # --rm removed it


def test_interrupt_ends_a_verb_that_does_not_forward(daemon: Any) -> None:
    assert daemon.cli("run", "-d", "--name", "quiet", "busybox", "sleep", "60").returncode == 0
    p = subprocess.Popen([*LLMOS_CLI, "logs", "-f", "quiet"], env=daemon.env)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=10) == -signal.SIGINT
    assert daemon.cli("rm", "-f", "quiet").returncode == 0


def test_callers_environment_and_directory(daemon: Any, busybox_tar: Path,
                                           tmp_path: Path) -> None:
    env = {**daemon.env, "FROM_CALLER": "yes-mine"}
    r = subprocess.run([*LLMOS_CLI, "run", "--rm", "-e", "FROM_CALLER", "busybox", "sh", "-c",
                        "echo $FROM_CALLER"], capture_output=True, text=True, env=env)
    assert r.stdout == "yes-mine\n", r.stderr
    here = tmp_path / "here"
    here.mkdir()
    with tarfile.open(here / "mini.tar", "w") as tar, tarfile.open(busybox_tar) as src:
        for m in src.getmembers():
            tar.addfile(m, src.extractfile(m) if m.isfile() else None)
    r = subprocess.run([*LLMOS_CLI, "import", "mini.tar", "relative-import"], cwd=here,
                       capture_output=True, text=True, env=daemon.env)
    assert r.returncode == 0, r.stderr
    assert "relative-import" in daemon.cli("images").stdout


def test_reader_that_leaves_is_not_an_error(daemon: Any) -> None:
    p = subprocess.run(f"{LLMOS_CLI[0]} run --rm busybox seq 1 1000000 | head -n 2; "
                       "echo status=${PIPESTATUS[0]}", shell=True, executable="/bin/bash",
                       capture_output=True, text=True, env=daemon.env, timeout=60)
    assert p.stdout.startswith("1\n2\n")
    assert "status=0" in p.stdout, p.stdout[-200:] + p.stderr
    # --rm still holds: the daemon removes the container when it ends.
    deadline = time.monotonic() + 30
    while daemon.cli("ps", "-a", "-q").stdout.strip():
        assert time.monotonic() < deadline, daemon.cli("ps", "-a").stdout
        time.sleep(0.2)


def test_no_daemon_hands_over_to_python(tmp_path: Path) -> None:
    env = {**os.environ, "LLMOS_HOST": f"unix://{tmp_path}/nobody-home.sock"}
    r = subprocess.run([*LLMOS_CLI, "ps"], capture_output=True, text=True, env=env)
    assert r.returncode == 125
    assert "nobody-home.sock" in r.stderr  # the Python command line's message
    r = subprocess.run([*LLMOS_CLI, "--version"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout.startswith("llmos version ")


def test_malformed_cli_calls_are_refused(daemon: Any) -> None:
    from llmos.daemon.connection import Connection
    from llmos.daemon.errors import RpcError

    conn = Connection(daemon.socket, timeout=10)
    try:
        for params in ({"argv": "ps", "env": [], "cwd": "/", "token": "t"},
                       {"argv": ["ps", 3], "env": [], "cwd": "/", "token": "t"},
                       {"argv": ["ps"], "env": [], "cwd": 7, "token": "t"},
                       {"argv": ["ps"], "env": [], "cwd": "/", "token": ""}):
            with pytest.raises(RpcError) as e:
                conn.call("cli.run", params)
            assert e.value.kind == "invalid_argument"
        with pytest.raises(RpcError):
            conn.call("cli.signal", {"token": "t", "signal": 999})
        assert conn.call("cli.signal", {"token": "unknown", "signal": 2}) == {"handled": False}
        # The verb needs the caller's terminal: the front end is told to run it itself.
        assert conn.call("cli.run", {"argv": ["run", "-it", "busybox", "sh"], "env": [],
                                     "cwd": "/", "token": "t2"}) == {"local": True}
        assert conn.call("ping", {}) == "pong"
    finally:
        conn.close()


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _settled_threads(pid: int) -> int:
    """The daemon's thread count once the calls just made have finished with theirs."""
    last, since = _threads(pid), time.monotonic()
    deadline = since + 10
    while time.monotonic() - since < 0.5 and time.monotonic() < deadline:
        time.sleep(0.05)
        now = _threads(pid)
        if now != last:
            last, since = now, time.monotonic()
    return last


@pytest.mark.parametrize("verb", [["logs", "-f", "hush"], ["events"]], ids=["logs", "events"])
def test_a_follower_that_leaves_frees_its_thread(daemon: Any, verb: list[str]) -> None:
    """A quiet stream has nothing to write, so only the hangup can tell the daemon that its
    reader is gone; without that its thread would poll for as long as the container runs."""
    assert daemon.cli("run", "-d", "--name", "hush", "busybox", "sleep", "120").returncode == 0
    baseline = _settled_threads(daemon.proc.pid)
    followers = [subprocess.Popen([*LLMOS_CLI, *verb], env=daemon.env,
                                  stdout=subprocess.DEVNULL) for _ in range(3)]
    deadline = time.monotonic() + 10
    while _threads(daemon.proc.pid) < baseline + 3:
        assert time.monotonic() < deadline, "the followers never reached the daemon"
        time.sleep(0.05)
    for p in followers:
        p.kill()
        p.wait()
    deadline = time.monotonic() + 10
    while _threads(daemon.proc.pid) > baseline:
        assert time.monotonic() < deadline, "the daemon kept serving readers that left"
        time.sleep(0.05)
    assert daemon.cli("rm", "-f", "hush").returncode == 0
