"""Image verbs through the daemon: push to and pull from a registry on loopback (Debian's
docker-registry), run pulls a missing image, and a missing registry is one clear line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.image.conftest import Registry, start_registry, stop_registry


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    (tmp_path / "registry").mkdir()
    reg = start_registry(tmp_path / "registry")
    try:
        yield reg
    finally:
        stop_registry(reg)


def test_push_rmi_then_run_pulls(daemon: Any, registry: Registry, tmp_path: Path) -> None:
    ref = f"{registry.host}/tests/bb:1"
    assert daemon.cli("tag", "busybox", ref).returncode == 0
    r = daemon.cli("push", ref)
    assert r.returncode == 0 and r.stdout.startswith("sha256:"), r.stderr
    assert daemon.cli("rmi", ref).returncode == 0
    assert ref not in daemon.cli("images").stdout
    # Not local any more: run pulls it, like docker run.
    r = daemon.cli("run", "--rm", ref, "echo", "pulled-and-ran")
    assert (r.returncode, r.stdout) == (0, "pulled-and-ran\n"), r.stderr
    r = daemon.cli("pull", ref)
    assert r.returncode == 0 and "pulled" in r.stdout


def test_save_load_round_trip(daemon: Any, tmp_path: Path) -> None:
    out = tmp_path / "bb.tar"
    assert daemon.cli("save", "-o", str(out), "busybox").returncode == 0
    assert daemon.cli("rmi", "busybox").returncode == 0
    r = daemon.cli("load", "-i", str(out))
    assert r.returncode == 0 and "busybox" in r.stdout
    assert daemon.cli("run", "--rm", "busybox", "true").returncode == 0


def test_missing_image_and_registry_is_one_clear_line(daemon: Any) -> None:
    r = daemon.cli("run", "--rm", "127.0.0.1:9/nothing/here:1", "true")
    assert r.returncode == 125
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "127.0.0.1:9" in lines[0] and "llmos build" in lines[0]


def test_rmi_in_use_is_refused(daemon: Any) -> None:
    daemon.cli("create", "--name", "user", "busybox", "true")
    r = daemon.cli("rmi", "busybox")
    assert r.returncode != 0 and "user" in r.stderr


def test_login_then_push_to_an_auth_registry(daemon: Any, tmp_path: Path) -> None:
    from tests.integration.image.conftest import PASSWORD, USER

    (tmp_path / "authreg").mkdir()
    reg = start_registry(tmp_path / "authreg", auth=True)
    try:
        ref = f"{reg.host}/tests/private:1"
        daemon.cli("tag", "busybox", ref)
        r = daemon.cli("push", ref)
        assert r.returncode == 125 and reg.host in r.stderr  # no credentials yet
        r = daemon.cli("login", "-u", USER, "-p", "wrong", reg.host)
        assert r.returncode == 125 and "failed" in r.stderr
        r = daemon.cli("login", "-u", USER, "-p", PASSWORD, reg.host)
        assert r.returncode == 0 and "Login Succeeded" in r.stdout, r.stderr
        assert daemon.cli("push", ref).returncode == 0
        auth = (daemon.root / "lib" / "auth.json")
        assert oct(auth.stat().st_mode & 0o777) == "0o600"
    finally:
        stop_registry(reg)
