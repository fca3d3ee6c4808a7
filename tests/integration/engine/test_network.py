"""Issue 5 through the engine: llmosd runs inside a network namespace made by the test (the
"host"), with a second namespace as an outside machine on 192.0.2.0/24 (TEST-NET-1)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.engine.conftest import Daemon, cleanup


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=60)


@pytest.fixture
def lab(tmp_path: Path, busybox_tar: Path) -> Iterator[tuple[Daemon, str, str]]:
    tag = secrets.token_hex(3)
    host, outside = f"llh{tag}", f"llo{tag}"
    sh("ip", "netns", "add", host)
    sh("ip", "netns", "add", outside)
    d = Daemon(tmp_path / "llmos", netns=host)
    try:
        for ns in (host, outside):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", f"vh{tag}", "netns", host, "type", "veth", "peer",
           "name", f"vo{tag}", "netns", outside)
        sh("ip", "-n", host, "addr", "add", "192.0.2.1/24", "dev", f"vh{tag}")
        sh("ip", "-n", outside, "addr", "add", "192.0.2.2/24", "dev", f"vo{tag}")
        sh("ip", "-n", host, "link", "set", f"vh{tag}", "up")
        sh("ip", "-n", outside, "link", "set", f"vo{tag}", "up")
        d.root.mkdir()
        d.start()
        www = tmp_path / "www"
        www.mkdir()
        (www / "index.html").write_text("hello from llmos\n")
        d.client().images.import_rootfs(str(busybox_tar), "busybox")
        yield d, host, outside
    finally:
        if d.proc is not None:
            d.kill(signal.SIGTERM)
        cleanup(d.root)
        sh("ip", "netns", "del", host, check=False)
        sh("ip", "netns", "del", outside, check=False)


def in_ns(ns: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    return sh("nsenter", f"--net=/run/netns/{ns}", *cmd, check=False)


FETCH = """
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode(), end="")
except OSError as e:
    sys.exit(f"{sys.argv[1]}: {e}")
"""


def fetch(ns: str, url: str) -> str:
    """GET url from inside namespace ns (Python: static busybox's resolver crashes here)."""
    r = in_ns(ns, sys.executable, "-c", FETCH, url)
    return r.stdout if r.returncode == 0 else f"failed: {r.stderr.strip()}"


# An HTTP GET with busybox nc (its wget crashes in static glibc's resolver).
GET = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {} 80"
HTTPD = ["sh", "-c", "mkdir -p /www && echo hello from llmos > /www/index.html && "
         "exec httpd -f -p 80 -h /www"]


def test_published_port(lab: tuple[Daemon, str, str]) -> None:
    d, host, outside = lab
    r = d.cli("run", "-d", "--name", "web", "--network", "bridge", "-p", "8080:80",
              "busybox", *HTTPD)
    assert r.returncode == 0, r.stderr
    time.sleep(0.5)
    for url in ("http://127.0.0.1:8080/", "http://192.0.2.1:8080/"):
        assert fetch(host, url) == "hello from llmos\n", url
    assert fetch(outside, "http://192.0.2.1:8080/") == "hello from llmos\n"
    assert d.cli("port", "web").stdout.strip() == "80/tcp -> 0.0.0.0:8080"
    doc = json.loads(d.cli("inspect", "web").stdout)[0]
    assert doc["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"] == "8080"
    ip = doc["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    assert ip.startswith("172.29.")
    # A random host port, reported by `port` and inspect.
    r = d.cli("run", "-d", "--name", "web2", "--network", "bridge", "-p", "80", "busybox",
              *HTTPD)
    assert r.returncode == 0, r.stderr
    line = d.cli("port", "web2").stdout.strip()
    hport = int(line.rsplit(":", 1)[1])
    assert hport > 1024
    time.sleep(0.5)
    assert fetch(host, f"http://127.0.0.1:{hport}/") == "hello from llmos\n"
    doc2 = json.loads(d.cli("inspect", "web2").stdout)[0]
    assert doc2["NetworkSettings"]["Ports"]["80/tcp"] == [{"HostIp": "0.0.0.0",
                                                          "HostPort": str(hport)}]
    # Publishing the same port again is a clear error, and nothing is left half-made: no
    # veth, no rule, no network namespace. The container stays "created", as Docker leaves it.
    links_before = in_ns(host, "ip", "-o", "link", "show").stdout.count("llv")
    rules_before = in_ns(host, "nft", "list", "table", "inet", "llmos").stdout
    r = d.cli("run", "-d", "--network", "bridge", "-p", "8080:80", "busybox", *HTTPD)
    assert r.returncode == 125 and "8080/tcp: already published" in r.stderr, r.stderr
    running = d.cli("ps", "-q").stdout.split()
    failed = [c for c in d.cli("ps", "-aq").stdout.split() if c not in running]
    assert len(running) == 2 and len(failed) == 1
    doc3 = json.loads(d.cli("inspect", failed[0]).stdout)[0]
    assert doc3["State"]["Status"] == "created" and not doc3["NetworkSettings"]["Ports"]
    assert in_ns(host, "ip", "-o", "link", "show").stdout.count("llv") == links_before
    assert in_ns(host, "nft", "list", "table", "inet", "llmos").stdout == rules_before
    assert sorted(os.listdir(d.root / "run" / "netns")) == sorted(
        json.loads(d.cli("inspect", "web", "web2").stdout)[i]["Id"] for i in (0, 1))
    # Survives a daemon restart.
    d.kill(signal.SIGKILL)
    d.start()
    assert fetch(host, "http://127.0.0.1:8080/") == "hello from llmos\n"


def test_user_network_names_and_isolation(lab: tuple[Daemon, str, str]) -> None:
    d, _, _ = lab
    assert d.cli("network", "create", "front").returncode == 0
    assert d.cli("network", "create", "back").returncode == 0
    r = d.cli("run", "-d", "--name", "api", "--network", "front", "--network-alias", "www",
              "--network-alias", "api.internal", "busybox", *HTTPD)
    assert r.returncode == 0, r.stderr
    d.cli("run", "-d", "--name", "db", "--network", "back", "busybox", *HTTPD)
    time.sleep(0.5)
    nets = {n["Name"]: n for n in json.loads(d.cli("network", "inspect", "front").stdout)}
    gw = nets["front"]["IPAM"]["Config"][0]["Gateway"]
    # busybox's nslookup speaks DNS itself (its static libc resolver cannot).
    r = d.cli("run", "--rm", "--network", "front", "busybox", "nslookup", "api", gw)
    assert r.returncode == 0, r.stdout + r.stderr
    api = json.loads(d.cli("inspect", "api").stdout)[0]
    api_ip = api["NetworkSettings"]["IPAddress"]
    assert api_ip in r.stdout
    assert api["NetworkSettings"]["Networks"]["front"]["Aliases"] == ["api", "www", "api.internal"]
    # Aliases resolve too, through the nameserver the container's own resolv.conf names.
    r = d.cli("run", "--rm", "--network", "front", "busybox", "sh", "-c",
              "cat /etc/resolv.conf; nslookup www; nslookup api.internal")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"nameserver {gw}" in r.stdout.splitlines()
    assert r.stdout.count(f"Address: {api_ip}") == 2, r.stdout
    # The default bridge has no names, so an alias there is refused, as Docker refuses it.
    r = d.cli("run", "--rm", "--network-alias", "x", "busybox", "true")
    assert r.returncode == 125 and "--network-alias" in r.stderr, r.stderr
    r = d.cli("run", "--rm", "--network", "front", "busybox", "sh", "-c", GET.format(api_ip))
    assert r.stdout.endswith("hello from llmos\n"), r.stdout + r.stderr
    db_ip = json.loads(d.cli("inspect", "db").stdout)[0]["NetworkSettings"]["IPAddress"]
    r = d.cli("run", "--rm", "--network", "front", "busybox", "sh", "-c", GET.format(db_ip))
    assert "hello" not in r.stdout
    # Removing a network in use is refused; after its containers go, it is removed.
    r = d.cli("network", "rm", "back")
    assert r.returncode != 0
    d.cli("rm", "-f", "db")
    assert d.cli("network", "rm", "back").returncode == 0


def _wait_listening(ns: str, port: int) -> None:
    """Until a TCP socket listens on `port` in namespace `ns` (a container now starts in
    tens of milliseconds, sooner than a server started just before it may listen)."""
    deadline = time.monotonic() + 10
    while f":{port} " not in subprocess.run(
            ["ip", "netns", "exec", ns, "ss", "-ltnH"], capture_output=True, text=True).stdout:
        assert time.monotonic() < deadline, f"nothing listens on {port} in {ns}"
        time.sleep(0.05)


def test_outbound_nat(lab: tuple[Daemon, str, str]) -> None:
    d, host, outside = lab
    in_ns(host, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    server = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{outside}", "busybox", "nc", "-l", "-p", "9000"],
        stdout=subprocess.PIPE, text=True)
    try:
        _wait_listening(outside, 9000)
        # The outside machine routes nothing back to 172.29/16: only NAT makes this work.
        r = d.cli("run", "--rm", "--network", "bridge", "busybox", "sh", "-c",
                  "echo ping | nc -w 2 192.0.2.2 9000")
        assert r.returncode == 0, r.stderr
        out, _ = server.communicate(timeout=10)
        assert out == "ping\n"
    finally:
        server.kill()
        server.wait()


def test_publish_all_and_shared_network(lab: tuple[Daemon, str, str], tmp_path: Path) -> None:
    d, host, _ = lab
    # An image that EXPOSEs 80: -P publishes it on a random host port.
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nEXPOSE 80\n")
    env_root = {**d.env, "LLMOS_ROOT": str(d.root / "lib")}
    r = subprocess.run([sys.executable, "-m", "llmos.cli.main", "build", "-t", "exposer",
                        str(ctx)], capture_output=True, text=True, env=env_root, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    r = d.cli("run", "-d", "--name", "pweb", "--network", "bridge", "-P", "exposer", *HTTPD)
    assert r.returncode == 0, r.stderr
    line = d.cli("port", "pweb").stdout.strip()
    assert line.startswith("80/tcp -> 0.0.0.0:"), line
    time.sleep(0.5)
    assert fetch(host, f"http://127.0.0.1:{line.rsplit(':', 1)[1]}/") == "hello from llmos\n"
    # --network container:pweb shares its namespace: its server is on our 127.0.0.1.
    r = d.cli("run", "--rm", "--network", "container:pweb", "busybox", "sh", "-c",
              GET.format("127.0.0.1"))
    assert r.stdout.endswith("hello from llmos\n"), r.stdout + r.stderr


def test_connect_and_disconnect(lab: tuple[Daemon, str, str]) -> None:
    d, _, _ = lab
    d.cli("network", "create", "side")
    d.cli("run", "-d", "--name", "srv", "--network", "side", "busybox", *HTTPD)
    d.cli("run", "-d", "--name", "cli", "--network", "bridge", "busybox", "sleep", "60")
    srv_ip = json.loads(d.cli("inspect", "srv").stdout)[0]["NetworkSettings"]["IPAddress"]
    time.sleep(0.3)
    get = GET.format(srv_ip)
    assert "hello" not in d.cli("exec", "cli", "sh", "-c", get).stdout  # different networks
    # By an id prefix, as Docker resolves network references; recorded under its name.
    side_id = json.loads(d.cli("network", "inspect", "side").stdout)[0]["Id"][:12]
    assert d.cli("network", "connect", side_id, "cli").returncode == 0
    r = d.cli("exec", "cli", "sh", "-c", get)
    assert r.stdout.endswith("hello from llmos\n"), r.stdout + r.stderr
    nets = json.loads(d.cli("inspect", "cli").stdout)[0]["NetworkSettings"]["Networks"]
    assert set(nets) == {"bridge", "side"}
    assert d.cli("network", "disconnect", side_id, "cli").returncode == 0
    assert "hello" not in d.cli("exec", "cli", "sh", "-c", get).stdout
    nets = json.loads(d.cli("inspect", "cli").stdout)[0]["NetworkSettings"]["Networks"]
    assert set(nets) == {"bridge"}


def _mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) for line in f)


def test_network_namespace_made_first_and_released(lab: tuple[Daemon, str, str]) -> None:
    """A bridged container starts straight into a namespace wired beforehand, held at
    RUN_ROOT/netns/ID while it runs; its exit releases it, and a daemon start sweeps one
    that belongs to no running container."""
    d, _, _ = lab
    netns_dir = d.root / "run" / "netns"
    r = d.cli("run", "-d", "--name", "held", "--network", "bridge", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert _mounted(netns_dir / cid)
    pid = json.loads(d.cli("inspect", "held").stdout)[0]["State"]["Pid"]
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(netns_dir / cid).st_ino
    assert d.cli("stop", "-t", "0", "held").returncode == 0
    deadline = time.monotonic() + 10
    while (netns_dir / cid).exists():
        assert time.monotonic() < deadline, "the namespace outlived its container"
        time.sleep(0.05)
    assert not _mounted(netns_dir / cid)
    assert d.cli("rm", "held").returncode == 0
    # One left by a daemon killed between making a namespace and starting its container.
    from llmos.runtime import native

    stray = netns_dir / ("f" * 64)
    native.netns_new(str(stray))
    d.kill()
    d.start()
    assert not stray.exists() and not _mounted(stray)


PEER = str(Path(__file__).parents[1] / "network" / "peer.py")


@pytest.mark.parametrize("owner", ["daemon", "no-daemon"])
def test_build_run_goes_out_through_nat(lab: tuple[Daemon, str, str], tmp_path: Path,
                                        owner: str) -> None:
    """RUN in `llmos build` gets a namespace of its own on the default bridge and reaches an
    outside machine through NAT (the outside routes nothing back to the bridge's subnet),
    wired by llmosd when it runs and by the build itself when none does."""
    d, host, outside = lab
    if owner == "no-daemon":
        d.kill(signal.SIGTERM)
        d.proc = None
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\n"
        "RUN nc -w 3 192.0.2.2 9000 > /got; ip -4 -o addr show > /addrs; "
        "cat /etc/resolv.conf > /resolv\n")
    server = subprocess.Popen(["nsenter", f"--net=/run/netns/{outside}", sys.executable, PEER,
                               "tcp-server", "9000", "outside"])
    try:
        _wait_listening(outside, 9000)
        env = {**d.env, "LLMOS_ROOT": str(d.root / "lib")}
        r = subprocess.run(["nsenter", f"--net=/run/netns/{host}", sys.executable, "-m",
                            "llmos.cli.main", "build", "-t", "natted", str(ctx)],
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        server.kill()
        server.wait()
    from llmos.build import run_image
    from llmos.image import ImageStore

    store = ImageStore(d.root / "lib" / "image")
    code, text = run_image(store, store.get("natted"), runtime_root=d.root / "run-img",
                           args=["cat", "/got", "/addrs", "/resolv"])
    assert code == 0, text
    # The outside saw the host's address: the step's own one was masqueraded.
    assert text.splitlines()[0] == "outside 192.0.2.1", text
    # Its own namespace: an address on the default bridge (172.29/16), not the host's.
    assert "inet 172.29." in text and "192.0.2.1" not in text.split("\n", 1)[1], text
    assert "nameserver" in text
    # Nothing of the step is left on the host: no veth, no endpoint in the network state.
    links = in_ns(host, "ip", "-o", "link", "show").stdout
    assert "llv" not in links, links
    state = json.loads((d.root / "lib" / "network" / "network.json").read_text())
    assert state["networks"]["bridge"]["endpoints"] == {}, state


def test_run_rm_cycles_leave_nothing_behind(lab: tuple[Daemon, str, str]) -> None:
    """Issue 5's churn through the whole engine (netlab repeats it 500 times on the network
    manager alone): bridged `run --rm`, every tenth with a published port, then nothing of
    them is left: no veth, no rule, no address, no DNS name, no namespace file."""
    d, host, _ = lab
    assert d.cli("network", "create", "churn").returncode == 0
    cl = d.client()
    cl.containers.run("busybox", ["true"], remove=True, network="churn")  # the bridge exists
    links = in_ns(host, "ip", "-o", "link", "show").stdout.count("llv")
    rules = in_ns(host, "nft", "list", "table", "inet", "llmos").stdout
    t0 = time.monotonic()
    for i in range(100):
        ports = {"80/tcp": 18000 + i} if i % 10 == 0 else None
        out = cl.containers.run("busybox", ["sh", "-c", "ip -4 -o addr show eth0"],
                                remove=True, network="churn", ports=ports)
        assert b"inet 172." in out, out
    print(f"100 bridged run --rm: {time.monotonic() - t0:.1f} s")
    assert in_ns(host, "ip", "-o", "link", "show").stdout.count("llv") == links
    assert in_ns(host, "nft", "list", "table", "inet", "llmos").stdout == rules
    assert os.listdir(d.root / "run" / "netns") == []
    assert cl.containers.list(all=True) == []
    state = json.loads((d.root / "lib" / "network" / "network.json").read_text())
    assert state["networks"]["churn"]["endpoints"] == {}
    assert state["published"] == []
    ipam = state["networks"]["churn"]["ipam"]
    assert not ipam.get("allocated"), ipam
