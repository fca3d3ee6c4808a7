"""`llmos runtime` speaks runc's command line; OCI hooks run in order with the state on stdin."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest


def llmos(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the CLI with output to files: a created container inherits the CLI's stdio (as
    with runc), so a pipe would stay open for as long as the container runs."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run(
            [sys.executable, "-m", "llmos.cli.main", "runtime", "--root", str(root), *args],
            stdout=out, stderr=err, text=True, timeout=60, check=False,
        )
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())
    if check and result.returncode != 0:
        raise AssertionError(f"{args}: exit {result.returncode}: {result.stderr}")
    return result


def test_cli_lifecycle(runtime_root: Path, make_bundle: Any) -> None:
    bundle = make_bundle(["sleep", "30"])
    llmos(runtime_root, "create", "--bundle", str(bundle), "--pid-file",
          str(bundle / "pid"), "c1")
    state = json.loads(llmos(runtime_root, "state", "c1").stdout)
    assert state["status"] == "created" and state["id"] == "c1"
    assert state["pid"] == int((bundle / "pid").read_text())
    assert state["bundle"] == str(bundle)
    llmos(runtime_root, "start", "c1")
    assert json.loads(llmos(runtime_root, "state", "c1").stdout)["status"] == "running"
    assert "c1" in llmos(runtime_root, "list", "-q").stdout.split()
    r = llmos(runtime_root, "start", "c1", check=False)
    assert r.returncode == 1 and "running, not created" in r.stderr
    assert llmos(runtime_root, "exec", "c1", "sh", "-c", "exit 3", check=False).returncode == 3
    llmos(runtime_root, "kill", "c1", "KILL")
    runtime_wait = 0
    while json.loads(llmos(runtime_root, "state", "c1").stdout)["status"] != "stopped":
        runtime_wait += 1
        assert runtime_wait < 100
    llmos(runtime_root, "delete", "c1")
    r = llmos(runtime_root, "state", "c1", check=False)
    assert r.returncode == 1 and "does not exist" in r.stderr


def test_cli_run_exit_code(runtime_root: Path, make_bundle: Any) -> None:
    bundle = make_bundle(["sh", "-c", "echo out; exit 9"])
    r = llmos(runtime_root, "run", "--bundle", str(bundle), "r1", check=False)
    assert r.returncode == 9
    assert r.stdout == "out\n"
    assert llmos(runtime_root, "list", "-q").stdout.strip() == ""


def test_cli_spec_writes_a_valid_config(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "llmos.cli.main", "runtime", "spec", "-b",
                        str(tmp_path)], capture_output=True, text=True, check=True)
    assert r.returncode == 0
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["ociVersion"].startswith("1.")
    assert cfg["process"]["noNewPrivileges"] is True


def test_cli_bad_signal(runtime_root: Path, make_bundle: Any) -> None:
    llmos(runtime_root, "create", "--bundle", str(make_bundle(["sleep", "30"])), "c2")
    r = llmos(runtime_root, "kill", "c2", "SIGNOPE", check=False)
    assert r.returncode == 1 and "unknown signal 'SIGNOPE'" in r.stderr
    llmos(runtime_root, "delete", "--force", "c2")


HOOK = """#!/bin/sh
# args: KIND LOGFILE
state=$(cat)
echo "$1 $(echo "$state" | tr -d ' \\n')" >> "$2"
"""


def _hooks(tmp_path: Path, fail: str | None = None) -> tuple[Path, dict[str, Any]]:
    script = tmp_path / "hook.sh"
    script.write_text(HOOK)
    script.chmod(0o755)
    log = tmp_path / "hooks.log"
    hooks: dict[str, Any] = {}
    for kind in ("prestart", "createRuntime", "createContainer", "startContainer",
                 "poststart", "poststop"):
        path = str(script)
        if kind == "startContainer":
            # Runs inside the container: its path resolves there.
            path = "/bin/sh"
            cmd = f"cat >/dev/null; echo {kind} >> /hooks.log"
            entry = {"path": path, "args": ["sh", "-c", cmd]}
        else:
            entry = {"path": path, "args": ["hook", kind, str(log)]}
        if kind == fail:
            entry = {"path": "/bin/false", "args": ["false"]}
        hooks[kind] = [entry]
    return log, hooks


def test_hooks_order_and_state(runtime: Any, make_bundle: Any, tmp_path: Path) -> None:
    log, hooks = _hooks(tmp_path)
    rootfs = tmp_path / "ctr-rootfs"
    bundle = make_bundle(["sleep", "30"], edit=lambda c: c.update(hooks=hooks))
    runtime.create("hk", bundle)
    runtime.start("hk")
    runtime.kill("hk", "KILL")
    runtime.wait("hk", timeout=10)
    runtime.delete("hk")
    lines = log.read_text().splitlines()
    kinds = [line.split()[0] for line in lines]
    assert kinds == ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]
    states = {line.split()[0]: json.loads(line.split(" ", 1)[1]) for line in lines}
    assert states["createRuntime"]["status"] == "creating"
    assert states["createRuntime"]["pid"] > 0 and states["createRuntime"]["id"] == "hk"
    assert states["poststart"]["status"] == "running"
    assert states["poststop"]["status"] == "stopped"
    del rootfs


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer", "startContainer"])
def test_failing_hook_fails_and_cleans_up(
    runtime: Any, make_bundle: Any, tmp_path: Path, kind: str
) -> None:
    from llmos.runtime import RuntimeError_

    _, hooks = _hooks(tmp_path, fail=kind)
    bundle = make_bundle(["sleep", "30"], edit=lambda c: c.update(hooks=hooks))
    with pytest.raises(RuntimeError_, match=kind):
        runtime.create("hf", bundle)
        runtime.start("hf")
    if kind == "startContainer":
        runtime.delete("hf", force=True)
    assert runtime.list() == []


def test_failing_poststart_is_only_a_warning(
    runtime: Any, make_bundle: Any, tmp_path: Path
) -> None:
    _, hooks = _hooks(tmp_path, fail="poststart")
    bundle = make_bundle(["sleep", "30"], edit=lambda c: c.update(hooks=hooks))
    runtime.create("pw", bundle)
    runtime.start("pw")
    assert runtime.state("pw").status.value == "running"
    runtime.delete("pw", force=True)
