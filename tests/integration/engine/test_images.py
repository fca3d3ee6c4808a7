"""Image verbs through the daemon: push to and pull from a registry on loopback (Debian's
docker-registry), run pulls a missing image, and a missing registry is one clear line."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from tests.integration.engine.conftest import own_daemon
from tests.integration.image.conftest import (
    NETNS_ADDR,
    PASSWORD,
    USER,
    Registry,
    make_ca_and_cert,
    private_netns,
    start_registry,
    start_token_registry,
    stop_registry,
    stop_token_server,
)


def test_push_rmi_then_run_pulls(daemon: Any, registry: Registry, tmp_path: Path) -> None:
    ref = f"{registry.host}/tests/bb:1"
    assert daemon.cli("tag", "busybox", ref).returncode == 0
    r = daemon.cli("push", ref)
    assert r.returncode == 0 and f"{ref}: digest: sha256:" in r.stdout, r.stderr
    assert daemon.cli("rmi", ref).returncode == 0
    assert ref not in daemon.cli("images").stdout
    # Not local any more: run pulls it, like docker run.
    r = daemon.cli("run", "--rm", ref, "echo", "pulled-and-ran")
    assert (r.returncode, r.stdout) == (0, "pulled-and-ran\n"), r.stderr
    r = daemon.cli("pull", ref)
    assert r.returncode == 0 and f"Pulled {ref}" in r.stdout


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


def _one_line(r: Any) -> str:
    assert r.returncode == 125, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return str(lines[0])


def test_login_to_a_token_registry_over_tls(daemon: Any, tmp_path: Path) -> None:
    """Bearer tokens over HTTPS; both CAs given to the daemon the Docker way, in certs.d."""
    reg, tokens = start_token_registry(tmp_path / "tokenreg", tls=True)
    try:
        assert reg.ca is not None and tokens.ca is not None
        for host, ca in ((reg.host, reg.ca), (tokens.host, tokens.ca)):
            (daemon.root / "lib" / "certs.d" / host).mkdir(parents=True)
            shutil.copy(ca, daemon.root / "lib" / "certs.d" / host / "ca.crt")
        ref = f"{reg.host}/tests/private:1"
        assert daemon.cli("tag", "busybox", ref).returncode == 0
        assert "anonymous" in _one_line(daemon.cli("push", ref))
        line = _one_line(daemon.cli("login", "-u", USER, "-p", "wrong", reg.host))
        assert "login to" in line and "failed" in line
        r = daemon.cli("login", "-u", USER, "-p", PASSWORD, reg.host)
        assert r.returncode == 0 and "Login Succeeded" in r.stdout, r.stderr
        r = daemon.cli("push", ref)
        assert r.returncode == 0, r.stderr
        assert "repository:tests/private:pull,push" in tokens.scopes
        assert daemon.cli("rmi", ref).returncode == 0
        r = daemon.cli("pull", ref)
        assert r.returncode == 0 and f"Pulled {ref}" in r.stdout, r.stderr
    finally:
        stop_registry(reg)
        stop_token_server(tokens)


def test_a_ca_in_certs_d_is_trusted(daemon: Any, tmp_path: Path) -> None:
    """ROOT/certs.d/HOST:PORT/ca.crt, as /etc/docker/certs.d: a wrong CA there is refused
    (so the file is what decides), the registry's own CA is trusted."""
    reg = start_registry(tmp_path / "tlsreg", tls=True)
    try:
        assert reg.ca is not None
        certs = daemon.root / "lib" / "certs.d" / reg.host
        certs.mkdir(parents=True)
        shutil.copy(make_ca_and_cert(tmp_path / "other")[0], certs / "ca.crt")
        ref = f"{reg.host}/tests/bb:1"
        assert daemon.cli("tag", "busybox", ref).returncode == 0
        line = _one_line(daemon.cli("push", ref))
        assert "TLS certificate not trusted" in line and str(certs / "ca.crt") in line
        shutil.copy(reg.ca, certs / "ca.crt")
        r = daemon.cli("push", ref)
        assert r.returncode == 0 and f"{ref}: digest: sha256:" in r.stdout, r.stderr
        assert daemon.cli("rmi", ref).returncode == 0
        r = daemon.cli("pull", ref)
        assert r.returncode == 0 and f"Pulled {ref}" in r.stdout, r.stderr
    finally:
        stop_registry(reg)


def test_insecure_registry_flag(tmp_path: Path, busybox_tar: Path) -> None:
    """llmosd --insecure-registry HOST:PORT, for TLS registries whose CA the daemon lacks at
    an address that is not loopback (loopback ones are insecure anyway): the listed one is
    used, the other is refused in one line that says what to do."""
    with private_netns() as ns:
        listed = start_registry(tmp_path / "listed", tls=True, netns=ns, addr=NETNS_ADDR)
        try:
            other = start_registry(tmp_path / "other", tls=True, netns=ns, addr=NETNS_ADDR)
            try:
                with own_daemon(tmp_path / "llmos", netns=ns,
                                 args=("--insecure-registry", listed.host)) as d:
                    d.client().images.import_rootfs(str(busybox_tar), "busybox")
                    info = json.loads(d.cli("info").stdout)
                    assert info["InsecureRegistries"] == [listed.host]
                    ref = f"{listed.host}/tests/bb:1"
                    assert d.cli("tag", "busybox", ref).returncode == 0
                    r = d.cli("push", ref)
                    assert r.returncode == 0 and f"{ref}: digest: sha256:" in r.stdout, r.stderr
                    assert d.cli("rmi", ref).returncode == 0
                    r = d.cli("pull", ref)
                    assert r.returncode == 0 and f"Pulled {ref}" in r.stdout, r.stderr
                    refused = f"{other.host}/tests/bb:1"
                    assert d.cli("tag", "busybox", refused).returncode == 0
                    line = _one_line(d.cli("push", refused))
                    assert f"registry {other.host}: TLS certificate not trusted" in line
                    assert f"--insecure-registry {other.host}" in line
            finally:
                stop_registry(other)
        finally:
            stop_registry(listed)


def test_run_nginx_with_no_network_fails_fast_and_says_what_to_do(tmp_path: Path) -> None:
    """`llmos run nginx` on a machine whose network drops everything: Docker Hub's name
    resolves (a hosts file in the daemon's own mount namespace) but connects go unanswered,
    and so do DNS queries for other names. The run must fail in seconds, in one line that
    names the registry tried and how to get the image otherwise."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n"
                     "198.51.100.9 registry-1.docker.io index.docker.io auth.docker.io\n")
    with_hosts = ("unshare", "--mount", "--propagation", "private", "sh", "-c",
                  'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts))
    with private_netns(blackhole=True) as ns, \
            own_daemon(tmp_path / "llmos", netns=ns, wrap=with_hosts) as d:
        started = time.monotonic()
        line = _one_line(d.cli("run", "--rm", "nginx", "true", timeout=120))
        elapsed = time.monotonic() - started
        assert "docker.io" in line and "registry-1.docker.io" in line, line
        assert "llmos build -t nginx" in line and "llmos load" in line, line
        assert "timed out" in line, line
        assert elapsed < 15, (elapsed, line)

        started = time.monotonic()
        line = _one_line(d.cli("create", "registry.example/app:1", timeout=120))
        elapsed = time.monotonic() - started
        assert "registry.example" in line and "llmos build -t registry.example/app:1" in line
        assert elapsed < 15, (elapsed, line)
