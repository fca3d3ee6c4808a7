"""A lab of network namespaces for the network layer's integration tests.

Topology (all names start with ``llt<6 hex>`` so parallel runs do not collide):

    <p>h   the "host": runs the NetworkManager (agent.py), so bridges, veths and the
           ``inet llmos`` nft table live here, never in the machine's own namespace
    <p>o   an "outside machine", linked to the host by a veth: host 192.0.2.1/24,
           outside 192.0.2.2/24 (TEST-NET-1, documentation addresses: only ever inside
           these namespaces). It also runs a fake upstream DNS server.
    <p>cN  "containers": empty namespaces that the manager connects to networks

Everything the lab made is removed at the end, even on failure, and the teardown checks that
the manager left no llmos link and no llmos table in the host namespace.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
PEER = str(HERE / "peer.py")
AGENT = str(HERE / "agent.py")
HOST_IP = "192.0.2.1"
OUTSIDE_IP = "192.0.2.2"
UPSTREAM_ANSWER = "192.0.2.99"
ETC_NETNS = Path("/etc/netns")


class RemoteError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


def _run(
    args: list[str], timeout: float = 30, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=check)


class AgentProc:
    """The manager's process (the daemon's stand-in) inside the host namespace."""

    def __init__(self, netns: str, state_dir: str, upstream: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, AGENT, state_dir, upstream],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        ready = self._readline(30)
        assert json.loads(ready) == {"ready": True}

    def _readline(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError("agent did not answer in time")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"agent exited with {self.proc.wait(5)}")
        return line

    def call(self, op: str, timeout: float = 60, **kwargs: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, "kwargs": kwargs}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self._readline(timeout))
        if "error" in reply:
            if "traceback" in reply:
                print(reply["traceback"], file=sys.stderr)
            raise RemoteError(reply["error"], reply["message"])
        return reply["ok"]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, graceful: bool = True) -> None:
        if self.alive() and graceful:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@dataclass
class Container:
    netns: str
    endpoint: dict[str, Any] = field(default_factory=dict)

    @property
    def ip(self) -> str:
        return str(self.endpoint["ip"])


class Lab:
    def __init__(self) -> None:
        self.prefix = "llt" + secrets.token_hex(3)
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[str]] = []
        self.etc_dirs: list[Path] = []
        self.made_etc_netns = False
        self.state_dir = tempfile.mkdtemp(prefix="llmos-nettest-")
        self.counter = 0
        self.agent: AgentProc | None = None
        self.host = ""
        self.outside = ""

    def setup(self) -> None:
        self.host = self.netns("h")
        self.outside = self.netns("o")
        self.ns_exec(
            self.host,
            "ip",
            "link",
            "add",
            "eth-out",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            self.outside,
        )
        self.ns_exec(self.host, "ip", "addr", "add", f"{HOST_IP}/24", "dev", "eth-out")
        self.ns_exec(self.host, "ip", "link", "set", "eth-out", "up")
        self.ns_exec(self.outside, "ip", "addr", "add", f"{OUTSIDE_IP}/24", "dev", "eth0")
        self.ns_exec(self.outside, "ip", "link", "set", "eth0", "up")
        # the outside machine's fake resolver: the DNS responder forwards here
        self.spawn(self.outside, "dns-server", OUTSIDE_IP, "53", UPSTREAM_ANSWER)
        self.start_agent()

    # -- namespaces and processes ---------------------------------------------------------------

    def netns(self, role: str) -> str:
        name = f"{self.prefix}{role}"
        _run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        _run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def ns_exec(
        self, ns: str, *args: str, timeout: float = 30, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "netns", "exec", ns, *args], timeout=timeout, check=check)

    def peer(self, ns: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a peer.py client inside ``ns``."""
        return self.ns_exec(ns, sys.executable, PEER, *args, timeout=timeout, check=False)

    def spawn(self, ns: str, *args: str, cmd: list[str] | None = None) -> subprocess.Popen[str]:
        """Start a server in ``ns`` and wait for its ``ready`` line."""
        argv = cmd if cmd is not None else [sys.executable, PEER, *args]
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.procs.append(proc)
        if cmd is None:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 15)
            assert ready and proc.stdout.readline().strip() == "ready", f"server {args} failed"
        return proc

    def start_agent(self) -> AgentProc:
        self.agent = AgentProc(self.host, self.state_dir, OUTSIDE_IP)
        return self.agent

    def restart_agent(self, graceful: bool = False) -> AgentProc:
        """A daemon restart: the process dies (SIGKILL by default), kernel state stays."""
        assert self.agent is not None
        self.agent.stop(graceful=graceful)
        return self.start_agent()

    def stop_agent(self, graceful: bool = True) -> None:
        assert self.agent is not None
        self.agent.stop(graceful=graceful)

    def call(self, op: str, timeout: float = 60, **kwargs: Any) -> Any:
        assert self.agent is not None
        return self.agent.call(op, timeout=timeout, **kwargs)

    # -- containers -----------------------------------------------------------------------------

    def container(
        self,
        network: str = "bridge",
        name: str | None = None,
        aliases: tuple[str, ...] = (),
        ip: str | None = None,
    ) -> Container:
        """A new namespace connected to ``network``, with /etc files the manager wrote."""
        self.counter += 1
        ns = self.netns(f"c{self.counter}")
        name = name or f"ctr{self.counter}"
        ep = self.call(
            "connect",
            network=network,
            container_id=ns,
            netns_path=ns,
            name=name,
            aliases=list(aliases),
            ip=ip,
        )
        c = Container(ns, ep)
        self.write_etc(c, name, aliases)
        return c

    def write_etc(self, c: Container, hostname: str, aliases: tuple[str, ...] = ()) -> None:
        """``ip netns exec`` bind-mounts /etc/netns/<ns>/* over /etc/*: our container files."""
        files = self.call(
            "container_files", container_id=c.netns, hostname=hostname, aliases=list(aliases)
        )
        if not ETC_NETNS.exists():
            ETC_NETNS.mkdir()
            self.made_etc_netns = True
        d = ETC_NETNS / c.netns
        d.mkdir(exist_ok=True)
        if d not in self.etc_dirs:
            self.etc_dirs.append(d)
        (d / "hosts").write_text(files["hosts"])
        (d / "resolv.conf").write_text(files["resolv.conf"])

    # -- inspection -----------------------------------------------------------------------------

    def host_links(self) -> list[str]:
        out = self.ns_exec(self.host, "ip", "-o", "link", "show").stdout
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]

    def llmos_links(self) -> list[str]:
        return [n for n in self.host_links() if n.startswith(("llmos", "llv"))]

    def host_tables(self) -> str:
        return self.ns_exec(self.host, "nft", "list", "tables").stdout

    def llmos_rules(self) -> list[str]:
        out = self.ns_exec(
            self.host, "nft", "-a", "list", "table", "inet", "llmos", check=False
        ).stdout
        return [
            line.strip()
            for line in out.splitlines()
            if "# handle" in line
            and (
                "dnat" in line
                or "masquerade" in line
                or "accept" in line
                or "drop" in line
                or "jump" in line
            )
        ]

    # -- cleanup --------------------------------------------------------------------------------

    def cleanup(self) -> list[str]:
        """Remove everything; returns what the manager itself failed to remove."""
        problems: list[str] = []
        try:
            if self.agent is not None and self.agent.alive():
                self.call("teardown_all")
                left = self.llmos_links()
                if left:
                    problems.append(f"links left by teardown_all: {left}")
                if "llmos" in self.host_tables():
                    problems.append("nft table llmos left by teardown_all")
        except Exception as exc:
            problems.append(f"teardown_all failed: {exc}")
        finally:
            if self.agent is not None:
                self.agent.stop()
            for proc in self.procs:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
                if proc.stdout is not None:
                    proc.stdout.close()
            for ns in reversed(self.namespaces):
                _run(["ip", "netns", "del", ns], check=False)
            for d in self.etc_dirs:
                shutil.rmtree(d, ignore_errors=True)
            if self.made_etc_netns:
                try:
                    ETC_NETNS.rmdir()  # only if empty: another lab may be using it
                except OSError:
                    pass
            shutil.rmtree(self.state_dir, ignore_errors=True)
        leftover = [
            n for n in _run(["ip", "netns", "list"]).stdout.split() if n.startswith(self.prefix)
        ]
        if leftover:
            problems.append(f"namespaces left: {leftover}")
        return problems
