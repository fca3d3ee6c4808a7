"""A real llmosd per test module, in its own root, with a busybox image imported."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import tarfile
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import make_busybox_rootfs


def front_end() -> list[str]:
    """The `llmos` command as a user runs it: the compiled front end (native/cli.c) that pip
    installed beside this interpreter; `python -m llmos.cli.main` only where it is missing."""
    exe = Path(sys.executable).parent / "llmos"
    try:
        with open(exe, "rb") as f:
            if f.read(4) == b"\x7fELF":
                return [str(exe)]
    except OSError:
        pass
    return [sys.executable, "-m", "llmos.cli.main"]


PY_CLI = [sys.executable, "-m", "llmos.cli.main"]
LLMOS_CLI = front_end()


@dataclass
class Daemon:
    root: Path
    proc: subprocess.Popen[bytes] | None = None
    netns: str | None = None  # run inside this named network namespace (only the netns)
    args: tuple[str, ...] = ()  # more llmosd flags
    wrap: tuple[str, ...] = ()  # a command that execs the rest (e.g. unshare)

    @property
    def socket(self) -> str:
        return str(self.root / "run" / "llmos.sock")

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "LLMOS_HOST": f"unix://{self.socket}"}

    def start(self) -> None:
        log = open(self.root / "daemon.log", "ab")
        prefix = ["nsenter", f"--net=/run/netns/{self.netns}"] if self.netns else []
        # Outside a test namespace, containers get no network: the machine's own namespace
        # must not get bridges or firewall tables from a test.
        default_net = "bridge" if self.netns else "none"
        self.proc = subprocess.Popen(
            [*self.wrap, *prefix, sys.executable, "-m", "llmos.cli.llmosd",
             "--root", str(self.root / "lib"), "--run-root", str(self.root / "run"),
             "--default-network", default_net, *self.args],
            stdout=log, stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 30
        from llmos.client import Client
        from llmos.client.transport import SocketTransport

        while time.monotonic() < deadline:
            if os.path.exists(self.socket):
                try:
                    if Client(SocketTransport(self.socket)).ping():
                        return
                except Exception:
                    pass
            assert self.proc.poll() is None, (self.root / "daemon.log").read_text()
            time.sleep(0.05)
        raise AssertionError("llmosd did not come up")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)
        self.proc = None

    def client(self) -> Any:
        from llmos.client import Client
        from llmos.client.transport import SocketTransport

        return Client(SocketTransport(self.socket))

    def cli(self, *args: str, timeout: float = 60,
            python: bool = False) -> subprocess.CompletedProcess[str]:
        """`llmos ARGS` through the compiled front end (the verb runs inside llmosd), or with
        python=True through the Python command line in a process of its own."""
        return subprocess.run([*(PY_CLI if python else LLMOS_CLI), *args],
                              capture_output=True, text=True, env=self.env, timeout=timeout)


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bbtar")
    rootfs = make_busybox_rootfs(d / "rootfs")
    out = d / "busybox.tar"
    with tarfile.open(out, "w") as tar:
        tar.add(rootfs, arcname=".")
    return out


def cleanup(root: Path) -> None:
    """Remove every container of this root, in-process (works with no daemon running)."""
    from llmos.engine import Engine

    eng = Engine(root / "lib", root / "run")
    # Networking lives in the test's own namespaces, deleted with them; this process runs in
    # the machine's namespace, whose firewall it must not touch.
    eng._disconnect_network = lambda cid: None  # type: ignore[method-assign]
    for rec in list(eng.records.all()):
        eng._remove_files(rec["Id"])
    for cs in eng.runtime.list():
        eng.runtime.delete(cs.id, force=True)
    netns = root / "run" / "netns"
    if netns.is_dir():  # namespaces held for containers (a daemon killed mid-start)
        for entry in os.listdir(netns):
            eng._release_netns(entry)


@contextlib.contextmanager
def own_daemon(root: Path, **kw: Any) -> Iterator[Daemon]:
    """A started daemon with the test's own settings; stopped and swept afterwards."""
    d = Daemon(root, **kw)
    d.root.mkdir()
    d.start()
    try:
        yield d
    finally:
        if d.proc is not None:
            d.kill(signal.SIGTERM)
        cleanup(d.root)


@pytest.fixture
def daemon(tmp_path: Path, busybox_tar: Path) -> Iterator[Daemon]:
    with own_daemon(tmp_path / "llmos") as d:
        d.client().images.import_rootfs(str(busybox_tar), "busybox")
        yield d


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Any]:
    """Debian's docker-registry on loopback, plain HTTP (tests/integration/image/conftest)."""
    from tests.integration.image.conftest import start_registry, stop_registry

    (tmp_path / "registry").mkdir()
    reg = start_registry(tmp_path / "registry")
    try:
        yield reg
    finally:
        stop_registry(reg)


def run_in_pty(daemon: Any, args: list[str], *, rows: int = 33, cols: int = 77,
               send: bytes = b"", timeout: float = 30) -> tuple[int, str]:
    """Run `llmos ARGS` with a pty of the given size as its terminal; (exit code, output).
    `send` is typed once a shell prompt ("# ") shows."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen([*LLMOS_CLI, *args], stdin=slave,
                            stdout=slave, stderr=slave, env=daemon.env, start_new_session=True)
    os.close(slave)
    out = b""
    sent = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if send and not sent and b"# " in out:
                os.write(master, send)
                sent = True
            if proc.poll() is not None and not r:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, out.decode(errors="replace")
