"""Must show 4 and 5: exit codes and signals; containers outlive their creator."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from llmos.runtime import InvalidState, Status
from tests.integration.runtime.helpers import read_log, run_to_end


def test_exit_code(runtime: Any, make_bundle: Any, tmp_path: Path) -> None:
    code, _ = run_to_end(runtime, "ex7", make_bundle(["sh", "-c", "exit 7"]), tmp_path / "l")
    assert code == 7


def test_sigkill_is_137(runtime: Any, make_bundle: Any, tmp_path: Path) -> None:
    runtime.create("k9", make_bundle(["sleep", "100"]), log_file=str(tmp_path / "l"))
    runtime.start("k9")
    assert runtime.state("k9").status is Status.RUNNING
    runtime.kill("k9", "KILL")
    es = runtime.wait("k9", timeout=10)
    assert es.code == 137 and es.signal == 9
    assert runtime.state("k9").status is Status.STOPPED
    runtime.delete("k9")


def test_kill_default_is_term(runtime: Any, make_bundle: Any, tmp_path: Path) -> None:
    script = "trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.05; done"
    runtime.create("term", make_bundle(["sh", "-c", script]), log_file=str(tmp_path / "l"))
    runtime.start("term")
    deadline = time.monotonic() + 10
    while "ready" not in read_log(tmp_path / "l"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    runtime.kill("term")
    assert runtime.wait("term", timeout=10).code == 42
    assert "got-term" in read_log(tmp_path / "l")
    runtime.delete("term")


def test_lifecycle_rules(runtime: Any, make_bundle: Any, tmp_path: Path) -> None:
    runtime.create("lc", make_bundle(["sleep", "100"]))
    st = runtime.state("lc")
    assert st.status is Status.CREATED and st.pid > 0
    assert st.oci()["status"] == "created"
    with pytest.raises(InvalidState):
        runtime.delete("lc")
    with pytest.raises(InvalidState):
        runtime.resume("lc")
    runtime.start("lc")
    with pytest.raises(InvalidState):
        runtime.start("lc")
    runtime.pause("lc")
    assert runtime.state("lc").status is Status.PAUSED
    runtime.resume("lc")
    assert runtime.state("lc").status is Status.RUNNING
    assert runtime.exec("lc", ["sh", "-c", "exit 5"]) == 5
    runtime.kill("lc", "KILL")
    runtime.wait("lc", timeout=10)
    with pytest.raises(InvalidState):
        runtime.kill("lc")
    runtime.delete("lc")
    assert runtime.list() == []


CREATOR = """
import sys
from llmos.runtime import Runtime
rt = Runtime(sys.argv[1])
rt.create("survivor", sys.argv[2], log_file=sys.argv[3], start_now=True)
print(rt.state("survivor").pid)
"""


def test_outlives_creator(runtime: Any, make_bundle: Any, tmp_path: Path) -> None:
    script = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done"
    bundle = make_bundle(["sh", "-c", script])
    log = tmp_path / "log"
    out = subprocess.run(
        [sys.executable, "-c", CREATOR, str(runtime.root), str(bundle), str(log)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    pid = int(out.stdout.strip())
    # The creator is gone; the container goes on writing its log.
    time.sleep(0.3)
    n1 = read_log(log).count("tick")
    time.sleep(0.3)
    n2 = read_log(log).count("tick")
    assert n2 > n1 > 0
    from llmos.runtime import Runtime

    fresh = Runtime(runtime.root)
    st = fresh.state("survivor")
    assert st.status is Status.RUNNING and st.pid == pid
    assert os.path.exists(f"/proc/{pid}")
    fresh.kill("survivor", "KILL")
    assert fresh.wait("survivor", timeout=10).code == 137
    fresh.delete("survivor")



def test_delete_sweeps_what_outlived_a_stopped_container(runtime: Any, make_bundle: Any,
                                                         tmp_path: Path) -> None:
    """Without a pid namespace a background process outlives the container's own process and
    stays in its cgroup: delete of the stopped container must still kill it and remove the
    cgroup (delete tries the cheap removal first and sweeps only when that is refused)."""
    import glob

    def no_pid_ns(config: dict[str, Any]) -> None:
        ns = config["linux"]["namespaces"]
        config["linux"]["namespaces"] = [n for n in ns if n["type"] != "pid"]

    script = "sleep 300 </dev/null >/dev/null 2>&1 & echo bg=$!; exit 0"
    bundle = make_bundle(["sh", "-c", script], edit=no_pid_ns)
    runtime.create("leftover", bundle, log_file=str(tmp_path / "l"), start_now=True)
    assert runtime.wait("leftover", timeout=30).code == 0
    assert runtime.state("leftover").status is Status.STOPPED
    bg = int(read_log(tmp_path / "l").split("bg=")[1].split()[0])
    assert os.path.exists(f"/proc/{bg}"), "the background process should still run"
    runtime.delete("leftover")
    deadline = time.monotonic() + 10
    while True:
        try:
            with open(f"/proc/{bg}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break  # killed; its parent (init here) reaps it
        except FileNotFoundError:
            break
        assert time.monotonic() < deadline, "the leftover process was not killed"
        time.sleep(0.01)
    assert not glob.glob("/sys/fs/cgroup/*/llmos/leftover")
