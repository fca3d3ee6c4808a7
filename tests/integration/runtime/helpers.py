"""Small helpers for runtime tests: run a container to completion and read its log."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_log(path: Path) -> str:
    """The text of a CRI-format log file (`<time> <stream> <F|P> <text>` per line)."""
    out = []
    for line in path.read_text().splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 4:
            continue
        out.append(parts[3] + ("\n" if parts[2] == "F" else ""))
    return "".join(out)


def run_to_end(runtime: Any, cid: str, bundle: Path, log: Path, **kw: Any) -> tuple[int, str]:
    """Create and start with a log file, wait, return (exit code, output); deletes after."""
    runtime.create(cid, bundle, log_file=str(log), start_now=True, **kw)
    try:
        es = runtime.wait(cid, timeout=60)
    finally:
        state = runtime.state(cid)
        runtime.delete(cid, force=True)
    assert state.exit is not None
    return es.code, read_log(log)
