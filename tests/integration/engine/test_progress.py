"""`llmos push` and `llmos load` through llmosd show per-layer progress: plain lines when
stdout is a pipe, lines redrawn in place when it is a terminal (the caller's, though the verb
runs inside the daemon)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.integration.engine.conftest import run_in_pty
from tests.integration.image.conftest import Registry

CURSOR_UP = re.compile(r"\x1b\[\d+A")


def layer_ids(daemon: Any, ref: str) -> list[str]:
    from llmos.image import ImageStore

    image = ImageStore(daemon.root / "lib" / "image").get(ref)
    return [d.digest[7:19] for d in image.layers]


def test_push_plain_lines_per_layer(daemon: Any, registry: Registry) -> None:
    ref = f"{registry.host}/tests/progress:1"
    assert daemon.cli("tag", "busybox", ref).returncode == 0
    r = daemon.cli("push", ref)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\r" not in r.stdout
    lines = r.stdout.splitlines()
    for layer in layer_ids(daemon, ref):
        # One line as the upload starts, one when the registry has it: not one per chunk.
        mine = [ln for ln in lines if ln.startswith(f"{layer}: ")]
        assert [ln.split()[1] for ln in mine] == ["Pushing", "Pushed"], lines
        assert re.fullmatch(rf"{layer}: Pushed [\d.]+ [kMG]?B \([\d.]+ MB/s\)", mine[1]) or \
            re.fullmatch(rf"{layer}: Pushed [\d.]+ [kMG]?B", mine[1]), mine
    assert lines[-1].startswith(f"{ref}: digest: sha256:"), lines
    # Pushed again: the registry has every layer.
    r = daemon.cli("push", ref)
    assert r.returncode == 0, r.stderr
    for layer in layer_ids(daemon, ref):
        assert f"{layer}: Layer already exists" in r.stdout.splitlines()


def test_push_on_a_terminal_redraws_in_place(daemon: Any, registry: Registry) -> None:
    ref = f"{registry.host}/tests/progress-tty:1"
    assert daemon.cli("tag", "busybox", ref).returncode == 0
    code, text = run_in_pty(daemon, ["push", ref], rows=50, cols=200, timeout=60)
    assert code == 0, text
    assert CURSOR_UP.search(text) and "\r" in text and "\x1b[K" in text, text
    assert "MB/s" in text, text
    for layer in layer_ids(daemon, ref):
        assert re.search(rf"{layer}: Pushing \[[=> ]+\] ", text), text
        assert f"{layer}: Pushed" in text, text
    assert f"{ref}: digest: sha256:" in text


def test_load_plain_lines_per_layer(daemon: Any, tmp_path: Path) -> None:
    out = tmp_path / "bb.tar"
    assert daemon.cli("save", "-o", str(out), "busybox").returncode == 0
    assert daemon.cli("rmi", "busybox").returncode == 0
    r = daemon.cli("load", "-i", str(out))
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\r" not in r.stdout
    lines = r.stdout.splitlines()
    layers = layer_ids(daemon, "busybox")
    assert layers
    for layer in layers:
        loading = [ln for ln in lines if ln.startswith(f"{layer}: Loading ")]
        assert len(loading) == 1, lines
    assert lines[-1] == "Loaded image: docker.io/library/busybox:latest", lines


def test_load_on_a_terminal_redraws_in_place(daemon: Any, tmp_path: Path) -> None:
    out = tmp_path / "bb.tar"
    assert daemon.cli("save", "-o", str(out), "busybox").returncode == 0
    assert daemon.cli("rmi", "busybox").returncode == 0
    code, text = run_in_pty(daemon, ["load", "-i", str(out)], rows=50, cols=200, timeout=60)
    assert code == 0, text
    assert CURSOR_UP.search(text) and "\x1b[K" in text, text
    for layer in layer_ids(daemon, "busybox"):
        assert re.search(rf"{layer}: Loading \[[=> ]+\] [\d.]+ [kMG]?B/", text), text
    assert "Loaded image: docker.io/library/busybox:latest" in text
