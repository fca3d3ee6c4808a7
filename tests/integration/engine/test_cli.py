"""Issue 3, points 1 and 2: Docker's verbs and exit codes; default security through `run`."""

from __future__ import annotations

import json
import time
from typing import Any

from llmos.spec import DEFAULT_CAPABILITIES
from llmos.spec.tables import capability_mask
from tests.integration.engine.conftest import LLMOS_CLI


def test_run_rm_echo(daemon: Any) -> None:
    r = daemon.cli("run", "--rm", "busybox", "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n")
    assert daemon.cli("ps", "-aq").stdout.strip() == ""


def test_exit_codes(daemon: Any) -> None:
    assert daemon.cli("run", "--rm", "busybox", "sh", "-c", "exit 3").returncode == 3
    r = daemon.cli("run", "--rm", "busybox", "/bin/nope")
    assert r.returncode == 127 and "/bin/nope" in r.stderr
    r = daemon.cli("run", "--rm", "busybox", "/etc/passwd")
    assert r.returncode == 126
    r = daemon.cli("run", "--rm", "--memory", "lots", "busybox", "true")
    assert r.returncode == 125 and "--memory" in r.stderr
    r = daemon.cli("run", "--rm", "no-such-image", "true")
    assert r.returncode == 125 and "no-such-image" in r.stderr


def test_detach_logs_follow_and_stop(daemon: Any) -> None:
    script = "trap '' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"
    r = daemon.cli("run", "-d", "--name", "ticker", "busybox", "sh", "-c", script)
    assert r.returncode == 0 and len(r.stdout.strip()) == 64
    time.sleep(0.5)
    logs = daemon.cli("logs", "ticker").stdout
    assert logs.startswith("tick 0\ntick 1\n")
    # stop: TERM is ignored by the script, so KILL comes after -t seconds.
    t0 = time.monotonic()
    assert daemon.cli("stop", "-t", "1", "ticker").returncode == 0
    took = time.monotonic() - t0
    assert 0.9 < took < 10
    doc = json.loads(daemon.cli("inspect", "ticker").stdout)[0]
    assert doc["State"]["ExitCode"] == 137 and doc["State"]["Status"] == "exited"
    # logs -f on a stopped container prints everything and returns.
    r = daemon.cli("logs", "-f", "ticker")
    assert r.returncode == 0 and r.stdout.count("tick") >= 5
    assert daemon.cli("rm", "ticker").returncode == 0


def test_logs_follow_streams(daemon: Any) -> None:
    import subprocess

    daemon.cli("run", "-d", "--name", "slow", "busybox", "sh", "-c",
               "for i in 1 2 3 4 5; do echo line $i; sleep 0.3; done")
    p = subprocess.Popen([*LLMOS_CLI, "logs", "-f", "slow"],
                         stdout=subprocess.PIPE, text=True, env=daemon.env)
    assert p.stdout is not None
    first = p.stdout.readline()
    t_first = time.monotonic()
    rest = p.stdout.read()
    assert p.wait(timeout=30) == 0
    assert first == "line 1\n" and rest.endswith("line 5\n")
    assert time.monotonic() - t_first > 0.5  # it streamed; it did not wait for the end
    daemon.cli("rm", "-f", "slow")


def test_exec_shares_namespaces_and_cgroup(daemon: Any) -> None:
    daemon.cli("run", "-d", "--name", "box", "--hostname", "boxy", "busybox", "sleep", "60")
    r = daemon.cli("exec", "box", "sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '; "
                   "cat /proc/self/cgroup | grep -E 'memory|^0::'")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "boxy"
    assert lines[1].startswith("sleep 60")
    assert lines[2].endswith(":/")  # the container's own cgroup, seen from its namespace
    assert daemon.cli("exec", "box", "sh", "-c", "exit 6").returncode == 6
    daemon.cli("rm", "-f", "box")


def test_default_security(daemon: Any) -> None:
    script = ("grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; "
              "cat /proc/timer_list | wc -c; touch /x 2>&1 && echo wrote-root")
    r = daemon.cli("run", "--rm", "busybox", "sh", "-c", script)
    fields = dict(ln.split(":\t") for ln in r.stdout.splitlines() if ":\t" in ln)
    assert int(fields["CapEff"], 16) == capability_mask(DEFAULT_CAPABILITIES)
    assert fields["NoNewPrivs"] == "1" and fields["Seccomp"] == "2"
    assert "wrote-root" in r.stdout
    assert r.stdout.splitlines()[3] == "0"  # masked
    r = daemon.cli("run", "--rm", "--read-only", "busybox", "sh", "-c", "touch /x")
    assert r.returncode != 0 and "Read-only file system" in r.stderr


def test_limits_and_volumes(daemon: Any, tmp_path: Any) -> None:
    host = tmp_path / "data"
    host.mkdir()
    (host / "in.txt").write_text("from host\n")
    r = daemon.cli("run", "--rm", "-v", f"{host}:/data", "-v", "named:/vol",
                   "--tmpfs", "/scratch",
                   "--memory", "64m", "--pids-limit", "32", "-e", "FOO=bar", "-w", "/data",
                   "busybox", "sh", "-c",
                   "cat in.txt; echo out > out.txt; echo $FOO; pwd; echo keep > /vol/k; "
                   "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                   "/sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/memory.max")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:4] == ["from host", "bar", "/data", "67108864"]
    assert (host / "out.txt").read_text() == "out\n"
    r = daemon.cli("run", "--rm", "-v", "named:/vol", "busybox", "cat", "/vol/k")
    assert r.stdout == "keep\n"


def test_events_and_name_conflicts(daemon: Any) -> None:
    import subprocess

    since = time.time()
    assert daemon.cli("run", "--name", "ev", "busybox", "sh", "-c", "exit 4").returncode == 4
    r = daemon.cli("run", "--name", "ev", "busybox", "true")
    assert r.returncode == 125 and "already in use" in r.stderr
    daemon.cli("rm", "ev")
    p = subprocess.run([*LLMOS_CLI, "events", "--since",
                        str(since), "--until", str(time.time() + 0.5)],
                       capture_output=True, text=True, env=daemon.env, timeout=30)
    actions = [line.split()[2] for line in p.stdout.splitlines()]
    assert actions == ["create", "start", "die", "destroy"], p.stdout
    assert "exitCode=4" in p.stdout.splitlines()[2]


def test_restart_policies(daemon: Any) -> None:
    # on-failure:2 — restarted twice, then left exited.
    daemon.cli("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh",
               "-c", "exit 1")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        doc = json.loads(daemon.cli("inspect", "flaky").stdout)[0]
        if doc["RestartCount"] == 2 and doc["State"]["Status"] == "exited":
            break
        time.sleep(0.2)
    assert doc["RestartCount"] == 2 and doc["State"]["ExitCode"] == 1, doc["State"]
    # always — comes back after its process is killed, but not after `stop`.
    daemon.cli("run", "-d", "--name", "keeper", "--restart", "always", "busybox", "sleep", "60")
    pid = json.loads(daemon.cli("inspect", "keeper").stdout)[0]["State"]["Pid"]
    import os
    import signal

    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        st = json.loads(daemon.cli("inspect", "keeper").stdout)[0]["State"]
        if st["Running"] and st["Pid"] != pid:
            break
        time.sleep(0.2)
    assert st["Running"] and st["Pid"] != pid
    assert daemon.cli("stop", "-t", "1", "keeper").returncode == 0
    time.sleep(1.0)
    assert json.loads(daemon.cli("inspect", "keeper").stdout)[0]["State"]["Status"] == "exited"
    r = daemon.cli("run", "--rm", "--restart", "always", "busybox", "true")
    assert r.returncode == 125 and "--rm" in r.stderr
