"""Fixtures: Debian's docker-registry on a loopback port (plain, htpasswd, TLS), temporary
directories that are removed afterwards, and test images built in memory.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import io
import ipaddress
import os
import shutil
import socket
import ssl
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from llmos.image import Image, ImageStore, Platform, RegistryConfig
from llmos.image.testing import compress, directory, layer_tar, regular

T = TypeVar("T")
REGISTRY_BIN = "/usr/bin/docker-registry"
USER, PASSWORD = "tester", "s3cret-pw"


def _rmtree(path: Path) -> None:
    def onerror(func: object, p: str, exc: object) -> None:
        os.chmod(os.path.dirname(p), stat.S_IRWXU)
        shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else os.unlink(p)

    shutil.rmtree(path, onerror=onerror)


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Like pytest's, but removed at the end of the test (nothing is left behind)."""
    d = Path(tempfile.mkdtemp(prefix="llmos-image-test-"))
    try:
        yield d
    finally:
        _rmtree(d)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bcrypt_hash(password: str) -> str:
    """bcrypt via the C library's crypt(3) (libxcrypt), so no extra package is needed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

    # cost 4: the registry checks the hash on every request; tests need no strength
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))


def make_ca_and_cert(d: Path, addr: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost (and `addr`) signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llmos test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                *[x509.IPAddress(ipaddress.ip_address(a)) for a in sorted({"127.0.0.1", addr})]]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    d.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = d / "ca.pem", d / "server.pem", d / "server-key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


# TEST-NET-2: an address that is not loopback, so llmos does not trust a registry there by
# default; it lives on `lo` of a namespace of the test's own, never on this machine's network.
NETNS_ADDR = "198.51.100.1"


@contextlib.contextmanager
def private_netns(*, blackhole: bool = False) -> Iterator[str]:
    """A network namespace whose `lo` also carries NETNS_ADDR. With `blackhole`, every other
    destination is routed to a dummy link that drops what it is sent: connects and DNS
    queries go unanswered, as on a machine whose network silently drops them.
    """
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    name = f"llmos-img-{os.getpid()}-{os.urandom(3).hex()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        ip = ["ip", "-n", name]
        subprocess.run([*ip, "link", "set", "lo", "up"], check=True)
        subprocess.run([*ip, "addr", "add", f"{NETNS_ADDR}/32", "dev", "lo"], check=True)
        if blackhole:
            # The default route leads through a veth to a gateway whose MAC address is made
            # up (a permanent neighbour entry): the peer end drops frames not addressed to
            # it, so nothing is refused and nothing answers. (A dummy link would do, but not
            # every kernel has the module; with no neighbour entry, ARP fails and connects
            # end early with "no route to host".)
            subprocess.run([*ip, "link", "add", "drop0", "type", "veth", "peer", "name",
                            "drop1"], check=True)
            for link in ("drop0", "drop1"):
                subprocess.run([*ip, "link", "set", link, "up"], check=True)
            mac = "02:00:00:00:00:fe"
            for family, gateway in (("-4", "198.51.100.254"), ("-6", "fe80::fe")):
                subprocess.run([*ip, family, "neigh", "add", gateway, "lladdr", mac, "dev",
                                "drop0", "nud", "permanent"], check=True)
                subprocess.run([*ip, family, "route", "add", "default", "via", gateway,
                                "dev", "drop0", "onlink"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def in_netns(netns: str, fn: Callable[[], T]) -> T:
    """fn() on a thread inside `netns` (threads it starts, like a pull's workers, too)."""
    from llmos.network.links import open_netns, run_in_netns

    fd = open_netns(netns)
    try:
        return run_in_netns(fd, fn)
    finally:
        os.close(fd)


@dataclass
class Registry:
    """A running docker-registry."""

    host: str
    storage: Path
    proc: subprocess.Popen[bytes]
    config: RegistryConfig
    tls: bool = False
    auth: bool = False
    ca: Path | None = None
    skopeo_flags: list[str] = field(default_factory=list)

    def blob_data(self, digest: str) -> Path:
        hexd = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


def start_registry(workdir: Path, *, tls: bool = False, auth: bool = False,
                   extra_config: list[str] | None = None, netns: str | None = None,
                   addr: str = "127.0.0.1") -> Registry:
    """Serve on `addr`, inside the network namespace `netns` if given (see private_netns)."""
    if not os.path.exists(REGISTRY_BIN):
        pytest.skip("docker-registry (Debian package) is not installed")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "registry-data"
    storage.mkdir()
    lines = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
             "storage:", "  filesystem:", f"    rootdirectory: {storage}",
             "  delete:", "    enabled: true", "http:", f"  addr: {addr}:{port}"]
    config = RegistryConfig()
    host = f"{addr}:{port}"
    ca = None
    skopeo = []
    if tls:
        ca, cert, key = make_ca_and_cert(workdir, addr)
        lines += ["  tls:", f"    certificate: {cert}", f"    key: {key}"]
        config.ca_files[host] = str(ca)
        certs_dir = workdir / "skopeo-certs"
        certs_dir.mkdir()
        shutil.copy(ca, certs_dir / "ca.crt")
        skopeo += ["--cert-dir", str(certs_dir)]
    else:
        skopeo += ["--tls-verify=false"]
    if auth:
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text(f"{USER}:{bcrypt_hash(PASSWORD)}\n")
        lines += ["auth:", "  htpasswd:", "    realm: llmos-test", f"    path: {htpasswd}"]
        config.credentials[host] = (USER, PASSWORD)
        skopeo += ["--creds", f"{USER}:{PASSWORD}"]
    lines += extra_config or []
    cfg = workdir / "registry.yml"
    cfg.write_text("\n".join(lines) + "\n")
    log = open(workdir / "registry.log", "wb")
    prefix = ["nsenter", f"--net=/run/netns/{netns}"] if netns else []
    proc = subprocess.Popen([*prefix, REGISTRY_BIN, "serve", str(cfg)], stdout=log, stderr=log)
    log.close()
    reg = Registry(host, storage, proc, config, tls, auth, ca, skopeo)

    def probe() -> None:
        if tls:
            ctx = ssl.create_default_context(cafile=str(ca))
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                addr, port, context=ctx, timeout=2)
        else:
            conn = http.client.HTTPConnection(addr, port, timeout=2)
        conn.request("GET", "/v2/")
        conn.getresponse().read()
        conn.close()

    deadline = time.monotonic() + 15
    while True:
        try:
            if netns:
                in_netns(netns, probe)
            else:
                probe()
            return reg
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_registry(reg)
                pytest.fail("docker-registry did not start: "
                            + (workdir / "registry.log").read_text()[-2000:])
            time.sleep(0.05)


def stop_registry(reg: Registry) -> None:
    if reg.proc.poll() is None:
        reg.proc.terminate()
        try:
            reg.proc.wait(10)
        except subprocess.TimeoutExpired:
            reg.proc.kill()
            reg.proc.wait()


@pytest.fixture(params=["plain", "auth", "tls", "tls-auth"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """The registry in each variant: plain HTTP, htpasswd basic auth, TLS with our CA, and
    basic auth over TLS."""
    kind = request.param
    reg = start_registry(tmp_path, tls=kind.startswith("tls"), auth=kind.endswith("auth"))
    try:
        yield reg
    finally:
        stop_registry(reg)


@pytest.fixture
def plain_registry(tmp_path: Path) -> Iterator[Registry]:
    reg = start_registry(tmp_path)
    try:
        yield reg
    finally:
        stop_registry(reg)


def new_store(root: Path, reg: Registry | None = None,
              platform: Platform | None = None) -> ImageStore:
    return ImageStore(root, platform=platform or Platform("linux", "amd64"),
                      registry_config=reg.config if reg else None)


def build_image(store: ImageStore, name: str, *, arch: str = "amd64",
                big: int = 0, seed: bytes = b"", middle: str = "zstd") -> Image:
    """Three layers: gzip, zstd and uncompressed; `big` adds incompressible bytes to the
    middle layer so downloads take several reads (for interruption tests).
    """
    layers = [
        ("gzip", [directory("etc/"), regular("etc/os-release", b"ID=test\n" + seed),
                  regular("bin/tool", b"#!/bin/sh\necho " + arch.encode() + b"\n", mode=0o755)]),
        (middle, [regular("data/blob", os.urandom(big) if big else b"z" * 1000 + seed)]),
        ("none", [regular("etc/motd", b"hello from " + arch.encode() + b"\n")]),
    ]
    blobs = [store.add_layer(io.BytesIO(compress(layer_tar(entries), kind)), compression=kind)
             for kind, entries in layers]
    return store.commit_image(name, {"architecture": arch, "config": {"Cmd": ["/bin/tool"]}},
                              blobs)


# -- a bearer token server (distribution's "token" auth), for the Bearer flow -------------

@dataclass
class TokenServer:
    """Issues registry JWTs to USER/PASSWORD for whatever scope is asked; records scopes."""

    realm: str
    cert: Path
    scopes: list[str]
    server: object
    ca: Path | None = None  # with tls: the CA of its HTTPS certificate

    @property
    def host(self) -> str:
        return self.realm.split("/")[2]


def start_token_server(workdir: Path, tls: bool = False) -> TokenServer:
    import base64
    import json
    import threading
    import urllib.parse
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llmos token issuer")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path = workdir / "token-cert.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    scopes: list[str] = []
    want = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            if self.headers.get("Authorization") != want:
                self.send_response(401)
                self.end_headers()
                return
            access = []
            for scope in query.get("scope", []):
                scopes.append(scope)
                kind, repo, actions = scope.split(":")
                access.append({"type": kind, "name": repo, "actions": actions.split(",")})
            t = int(time.time())
            header = {"typ": "JWT", "alg": "RS256", "x5c": [x5c]}
            claims = {"iss": "llmos-test-issuer", "sub": USER, "aud": "llmos-registry",
                      "exp": t + 300, "nbf": t - 10, "iat": t, "jti": os.urandom(8).hex(),
                      "access": access}
            signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
            sig = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
            body = json.dumps({"token": f"{signing}.{b64(sig)}"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ca = None
    if tls:
        ca, https_cert, https_key = make_ca_and_cert(workdir / "token-tls")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(https_cert, https_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    scheme = "https" if tls else "http"
    return TokenServer(f"{scheme}://127.0.0.1:{port}/token", cert_path, scopes, server, ca)


def start_token_registry(workdir: Path, tls: bool = False) -> tuple[Registry, TokenServer]:
    """A registry with bearer-token auth and its token server, both over HTTPS with `tls`
    (each with a CA of its own, both in the returned registry's config)."""
    workdir.mkdir(parents=True, exist_ok=True)
    tokens = start_token_server(workdir, tls)
    extra = ["auth:", "  token:", f"    realm: {tokens.realm}", "    service: llmos-registry",
             "    issuer: llmos-test-issuer", f"    rootcertbundle: {tokens.cert}"]
    try:
        reg = start_registry(workdir, extra_config=extra, tls=tls)
    except BaseException:
        stop_token_server(tokens)
        raise
    if tokens.ca is not None:
        reg.config.ca_files[tokens.host] = str(tokens.ca)
    reg.config.credentials[reg.host] = (USER, PASSWORD)
    reg.skopeo_flags += ["--creds", f"{USER}:{PASSWORD}"]
    return reg, tokens


def stop_token_server(tokens: TokenServer) -> None:
    tokens.server.shutdown()  # type: ignore[attr-defined]
    tokens.server.server_close()  # type: ignore[attr-defined]


@pytest.fixture(params=["http", "tls"])
def token_registry(request: pytest.FixtureRequest,
                   tmp_path: Path) -> Iterator[tuple[Registry, TokenServer]]:
    """A registry with bearer-token auth, and its token server: plain HTTP, and HTTPS with
    CAs the client is given."""
    reg, tokens = start_token_registry(tmp_path, tls=request.param == "tls")
    try:
        yield reg, tokens
    finally:
        stop_registry(reg)
        stop_token_server(tokens)
