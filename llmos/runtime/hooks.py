"""OCI lifecycle hooks: the container's state on stdin, a timeout, and the spec's failure rules.

prestart, createRuntime, poststart and poststop run in the runtime's namespaces;
createContainer and startContainer run inside the container's namespaces (joined with the
same C exec path that `exec` uses). A failing prestart/createRuntime/createContainer/
startContainer hook fails the operation; poststart and poststop failures are only warnings.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

from llmos.errors import RuntimeError_

log = logging.getLogger("llmos.runtime.hooks")

HOOK_KINDS = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)
FATAL_KINDS = frozenset({"prestart", "createRuntime", "createContainer", "startContainer"})
IN_CONTAINER = frozenset({"createContainer", "startContainer"})


class HookError(RuntimeError_):
    pass


def oci_state(
    container_id: str, status: str, pid: int, bundle: str, annotations: Mapping[str, str]
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "ociVersion": "1.2.0",
        "id": container_id,
        "status": status,
        "bundle": bundle,
        "annotations": dict(annotations),
    }
    if pid > 0 and status != "stopped":
        state["pid"] = pid
    return state


def hooks_of(config: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    hooks = config.get("hooks") or {}
    return list(hooks.get(kind) or [])


def run_hooks(
    kind: str,
    hooks: Sequence[Mapping[str, Any]],
    state: Mapping[str, Any],
    *,
    container_pid: int = 0,
    namespaces: int = 0,
) -> None:
    """Run each hook in order; raise HookError for fatal kinds, else log and go on."""
    payload = json.dumps(state).encode()
    for i, hook in enumerate(hooks):
        where = f"hooks.{kind}[{i}] ({hook.get('path')})"
        try:
            if kind in IN_CONTAINER and container_pid > 0:
                code = _run_in_container(hook, payload, container_pid, namespaces)
            else:
                code = _run_here(hook, payload)
        except HookError as e:
            code, detail = -1, str(e)
        else:
            detail = f"exited with status {code}" if code else ""
        if code == 0:
            continue
        msg = f"{where}: {detail}"
        if kind in FATAL_KINDS:
            raise HookError(msg)
        log.warning("%s", msg)


def _timeout(hook: Mapping[str, Any]) -> float | None:
    t = hook.get("timeout")
    if t is None:
        return None
    if not isinstance(t, int) or t <= 0:
        raise HookError(f"timeout must be a positive integer, got {t!r}")
    return float(t)


def _run_here(hook: Mapping[str, Any], payload: bytes) -> int:
    path = hook["path"]
    args = list(hook.get("args") or [path])
    env = dict(e.split("=", 1) for e in hook.get("env") or [] if "=" in e)
    try:
        proc = subprocess.run(
            args,
            executable=path,
            input=payload,
            env=env,
            timeout=_timeout(hook),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise HookError(f"timed out after {hook.get('timeout')}s") from None
    except OSError as e:
        raise HookError(f"exec {path}: {e.strerror}") from None
    if proc.returncode != 0 and proc.stderr:
        raise HookError(
            f"exited with status {proc.returncode}: {proc.stderr.decode(errors='replace')[:500]}"
        )
    return proc.returncode


def _run_in_container(hook: Mapping[str, Any], payload: bytes, pid: int, namespaces: int) -> int:
    from llmos.plan import Plan
    from llmos.runtime import native

    path = hook["path"]
    r, w = os.pipe()
    try:
        os.write(w, payload)  # the state is small: it fits in the pipe buffer
    finally:
        os.close(w)
    plan = Plan(
        argv=list(hook.get("args") or [path]),
        env=list(hook.get("env") or []),
        exec_path=path,
        cwd="/",
        clone_flags=namespaces,
        join_pid=pid,
        stdio=(r, -1, -1),
    )
    try:
        waiter, _ = native.exec_process(plan)
    except RuntimeError_ as e:
        raise HookError(str(e)) from None
    finally:
        os.close(r)
    timeout = _timeout(hook)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wpid, status = os.waitpid(waiter, os.WNOHANG if deadline else 0)
        if wpid == waiter:
            return os.waitstatus_to_exitcode(status)
        if deadline is not None and time.monotonic() > deadline:
            os.kill(waiter, signal.SIGKILL)
            os.waitpid(waiter, 0)
            raise HookError(f"timed out after {timeout}s")
        time.sleep(0.01)
