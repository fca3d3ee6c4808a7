"""`llmos build` on a terminal: each new layer has a live line while it is compressed and
stored, retired into the log with its size and speed; through a pipe, the Docker builder's
plain lines and nothing else."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmos.build import build
from llmos.image import ImageStore
from llmos.image.progress import Progress
from tests.integration.build.conftest import BASE, ContextFactory

pytestmark = pytest.mark.root

REPO = Path(__file__).parents[3]


def dockerfile(context: ContextFactory) -> Path:
    return context(f"FROM {BASE}\nCOPY big /big\n", {"big": os.urandom(3 << 20)})


def test_layer_progress_reports_the_export_then_the_layer(
        store: ImageStore, context: ContextFactory, runtime_root: Path) -> None:
    events: list[Progress] = []
    image = build(store, dockerfile(context), runtime_root=runtime_root, network="host",
                  layer_progress=events.append)
    assert {e.item for e in events} == {"Step 2/2"}
    assert events[0].action == "export" and events[0].current == 0
    assert events[0].total is not None and events[0].total > 3 << 20
    assert events[-2] == Progress("export", "Step 2/2", events[0].total, events[0].total)
    assert events[-1].action == "done"
    assert events[-1].message == image.layers[-1].digest[7:19]


def test_build_on_a_terminal_and_through_a_pipe(
        store: ImageStore, context: ContextFactory) -> None:
    ctx = dockerfile(context)
    argv = [sys.executable, "-m", "llmos.cli.main", "build", "--root", str(store.root),
            "--no-cache", "-t", "progress:1", str(ctx)]
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                            cwd=REPO)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.5)[0]:
                continue
            try:
                data = os.read(master, 1 << 16)
            except OSError:  # EIO: the build has ended and closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=max(1.0, deadline - time.monotonic())) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    text = b"".join(chunks).decode()
    assert "Step 2/2: Exporting layer [" in text and "\x1b[K" in text, text
    assert "Step 2/2: Exported layer " in text and "MB/s" in text, text

    r = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "Export" not in r.stdout
    assert r.stdout.splitlines()[0] == f"Step 1/2 : FROM {BASE}"
    assert "Successfully tagged progress:1" in r.stdout.splitlines()
