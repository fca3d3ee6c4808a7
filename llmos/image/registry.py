"""Distribution API v2 client on the standard library (http.client, ssl): no dependency to
vet, and full control over what matters here: Range resume, redirects without leaking
credentials, and errors that name the host.

Transport rules, as Docker's:
- Insecure hosts get HTTPS without certificate verification first, then plain HTTP if that
  fails. A host is insecure when `insecure` lists it (HOST[:PORT] exactly, or an IP inside a
  listed CIDR: llmosd --insecure-registry), or when it is loopback (127.0.0.0/8, ::1,
  localhost) and no CA is configured for it: a registry on this machine is trusted as Docker
  trusts it. One exception to Docker: a CA configured for a loopback host is checked, since
  whoever put it there wants it checked (and tests can then prove verification happens).
- Everything else gets verified HTTPS, trusting the system roots plus any CA configured for
  the host (`ca_files`, or `<certs_dir>/<host:port>/ca.crt` like /etc/docker/certs.d).
- `connect_timeout` bounds name resolution plus TCP connect separately from reads, so a pull
  that `run` starts on a machine with no route out fails in seconds, not after `timeout`.

Auth: on a 401 the `WWW-Authenticate` challenge decides. Bearer: a token is fetched from the
realm for the repository scopes (pull, push, and pull on mount sources), with basic
credentials if we have some; tokens are cached per scope. Basic: credentials are sent as is.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .errors import (
    InvalidArgument,
    NotFound,
    RegistryError,
    RegistryUnreachable,
    Unauthorized,
)
from .manifest import (
    MEDIA_DOCKER_LIST,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
)
from .reference import Reference

__all__ = ["RegistryClient", "RegistryConfig", "Repository", "is_loopback",
           "parse_insecure_registry"]

MANIFEST_ACCEPT = ", ".join(
    [MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST]
)
MAX_MANIFEST = 4 << 20
_MAX_REDIRECTS = 5


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (with or without port and brackets)."""
    name = _split_host(host)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _split_host(host: str) -> tuple[str, int | None]:
    if host.startswith("["):
        end = host.index("]")
        name, rest = host[1:end], host[end + 1 :]
        return name, int(rest[1:]) if rest.startswith(":") else None
    if host.count(":") == 1:
        name, port = host.split(":")
        return name, int(port)
    return host, None


def parse_insecure_registry(value: str) -> str:
    """Check an --insecure-registry entry: HOST[:PORT] as written in image references, or a
    CIDR. A scheme or path is refused rather than ignored: `http://host` would otherwise
    silently match no registry, and the user would see certificate errors with no clue why.
    """
    entry = value.strip().lower()
    if not entry or "://" in entry or any(c.isspace() for c in entry):
        raise ValueError(f"insecure registry {value!r}: give HOST[:PORT] or a CIDR "
                         "(no scheme, no spaces)")
    if "/" in entry:
        try:
            return str(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"insecure registry {value!r}: not HOST[:PORT] or a CIDR "
                             "(no path)") from None
    try:
        name, port = _split_host(entry)
    except ValueError:
        raise ValueError(f"insecure registry {value!r}: bad port") from None
    if not name or (port is not None and not 0 < port < 65536):
        raise ValueError(f"insecure registry {value!r}: give HOST[:PORT] or a CIDR")
    return entry


@dataclass
class RegistryConfig:
    """Where and how to talk to registries. `credentials` maps a registry host (as in image
    references, `docker.io` for Docker Hub) to (username, password).
    """

    insecure: set[str] = field(default_factory=set)
    ca_files: dict[str, str] = field(default_factory=dict)
    certs_dir: Path | None = None
    credentials: dict[str, tuple[str, str]] = field(default_factory=dict)
    timeout: float = 60.0
    connect_timeout: float | None = None  # None: `timeout`, and name lookups unbounded
    max_parallel: int = 4
    retries: int = 3

    @classmethod
    def from_docker_config(cls, path: str | Path, **kw: object) -> RegistryConfig:
        """Credentials from a Docker-style config.json (`auths: {host: {auth: b64}}`)."""
        config = cls(**kw)  # type: ignore[arg-type]
        with contextlib.suppress(FileNotFoundError):
            doc = json.loads(Path(path).read_text())
            for host, entry in (doc.get("auths") or {}).items():
                if isinstance(entry, dict) and isinstance(entry.get("auth"), str):
                    user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                    config.credentials[_auth_key(host)] = (user, password)
        return config

    def ca_file(self, host: str) -> str | None:
        """A CA bundle configured for this host, if any."""
        if host in self.ca_files:
            return self.ca_files[host]
        if self.certs_dir is not None:
            candidate = self.certs_dir / host / "ca.crt"
            if candidate.is_file():
                return str(candidate)
        return None

    def is_insecure(self, host: str) -> bool:
        """Whether `host` gets unverified HTTPS with a plain-HTTP fallback (module docstring)."""
        listed = {entry.lower() for entry in self.insecure}
        if host.lower() in listed:
            return True
        name = _split_host(host.lower())[0]
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            ip = None
        if ip is not None:
            for entry in listed:
                if "/" in entry:
                    with contextlib.suppress(ValueError):
                        if ip in ipaddress.ip_network(entry, strict=False):
                            return True
        return is_loopback(host) and self.ca_file(host) is None


def _auth_key(host: str) -> str:
    host = re.sub(r"^https?://", "", host).split("/", 1)[0]
    return "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host


@dataclass
class Response:
    """A response whose body the caller reads (`read`/`stream`) or discards (`close`)."""

    status: int
    headers: Mapping[str, str]
    _raw: http.client.HTTPResponse
    _conn: http.client.HTTPConnection
    url: str

    def read(self, limit: int = MAX_MANIFEST) -> bytes:
        data = self._raw.read(limit + 1)
        if len(data) > limit:
            self.close()
            raise RegistryError(f"{self.url}: response larger than {limit} bytes")
        return data

    def read_chunk(self, n: int) -> bytes:
        return self._raw.read(n)

    def close(self) -> None:
        self._raw.close()

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def _resolve(name: str, port: int, timeout: float) -> list[tuple[int, int, int, object]]:
    """getaddrinfo with a deadline: the C resolver takes no timeout and, with its nameserver
    blackholed, retries for tens of seconds. The lookup thread is abandoned on timeout (it
    ends when the resolver gives up; it holds nothing).
    """
    box: dict[str, object] = {}

    def work() -> None:
        try:
            box["infos"] = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            box["error"] = exc

    thread = threading.Thread(target=work, name="llmos-resolve", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise socket.gaierror(socket.EAI_AGAIN, f"no answer in {timeout:g}s")
    error = box.get("error")
    if isinstance(error, OSError):
        raise error
    infos = box["infos"]
    assert isinstance(infos, list)
    return [(family, kind, proto, addr) for family, kind, proto, _, addr in infos]


def _dial(name: str, port: int, connect_timeout: float, timeout: float | None) -> socket.socket:
    """Resolve and connect within `connect_timeout` in all, then use `timeout` for reads."""
    deadline = time.monotonic() + connect_timeout
    last: OSError = TimeoutError("timed out")
    for family, kind, proto, addr in _resolve(name, port, connect_timeout):
        left = deadline - time.monotonic()
        if left <= 0:
            last = TimeoutError("timed out")
            break
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(left)
            sock.connect(addr)  # type: ignore[arg-type]
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sock.settimeout(timeout)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise last


class _HTTPConnection(http.client.HTTPConnection):
    """http.client's connection with a connect timeout of its own (`connect_timeout`)."""

    connect_timeout: float | None = None

    def connect(self) -> None:
        if self.connect_timeout is None:
            super().connect()
            return
        port = self.port if self.port is not None else self.default_port
        self.sock = _dial(self.host, port, self.connect_timeout, self.timeout)


class _HTTPSConnection(http.client.HTTPSConnection, _HTTPConnection):
    """HTTPSConnection.connect calls super().connect(), which by this MRO is the dial above;
    the TLS handshake then runs under the read timeout.
    """


class RegistryClient:
    """Connections, TLS choice and tokens for any number of registries; thread-safe (each
    thread keeps its own connections).
    """

    def __init__(self, config: RegistryConfig | None = None) -> None:
        self.config = config or RegistryConfig()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], str] = {}
        self._challenges: dict[str, tuple[str, dict[str, str]]] = {}
        self._schemes: dict[str, str] = {}

    def repository(self, ref: Reference, actions: str = "pull",
                   mount_from: tuple[str, ...] = ()) -> Repository:
        """A handle on one repository, authorised for `actions` (pull or pull,push)."""
        return Repository(self, ref.registry, ref.api_host, ref.repository, actions, mount_from)

    # -- transport -----------------------------------------------------------------------
    def scheme(self, host: str) -> str:
        """"http" or "https" for a host, by the rules in the module docstring."""
        with self._lock:
            return self._schemes.get(host, "https")

    def use_scheme(self, host: str, scheme: str) -> None:
        """Remember a scheme that worked for a host (the insecure HTTP fallback)."""
        with self._lock:
            self._schemes[host] = scheme

    def _ssl_context(self, host: str) -> ssl.SSLContext:
        if self.config.is_insecure(host):
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        ctx = ssl.create_default_context()
        ca = self.config.ca_file(host)
        if ca is not None:
            try:
                ctx.load_verify_locations(cafile=ca)
            except (OSError, ssl.SSLError) as exc:
                raise RegistryError(f"registry {host}: cannot use CA file {ca}: {exc}") from None
        return ctx

    def _connection(self, scheme: str, host: str) -> http.client.HTTPConnection:
        conns: dict[tuple[str, str], http.client.HTTPConnection] = getattr(
            self._local, "conns", None) or {}
        self._local.conns = conns
        conn = conns.get((scheme, host))
        if conn is None:
            name, port = _split_host(host)
            made: _HTTPConnection
            if scheme == "https":
                made = _HTTPSConnection(name, port, timeout=self.config.timeout,
                                        context=self._ssl_context(host))
            else:
                made = _HTTPConnection(name, port, timeout=self.config.timeout)
            made.connect_timeout = self.config.connect_timeout
            conns[(scheme, host)] = conn = made
        return conn

    def _drop(self, scheme: str, host: str) -> None:
        conns = getattr(self._local, "conns", {})
        conn = conns.pop((scheme, host), None)
        if conn is not None:
            conn.close()

    def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                body: bytes | BinaryIO | None = None, registry: str = "") -> Response:
        """One request on a kept-alive connection. A connection the server closed while idle
        is retried once; a host that cannot be reached raises RegistryUnreachable naming it.
        """
        parsed = urllib.parse.urlsplit(url)
        scheme, host = parsed.scheme, parsed.netloc
        path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        hdrs = {"User-Agent": "llmos", **(headers or {})}
        for attempt in (0, 1):
            conn = self._connection(scheme, host)
            try:
                if hasattr(body, "seek") and attempt:
                    body.seek(0)  # type: ignore[union-attr]
                conn.request(method, path, body=body, headers=hdrs)
                raw = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self._drop(scheme, host)
                if attempt == 0 and (body is None or hasattr(body, "seek")):
                    continue
                raise RegistryUnreachable(f"registry {host}: connection lost: {exc}") from None
            except ssl.SSLCertVerificationError as exc:
                self._drop(scheme, host)
                certs = self.config.certs_dir
                where = f"{certs / host / 'ca.crt'}" if certs is not None else "the CA files"
                raise RegistryUnreachable(
                    f"registry {host}: TLS certificate not trusted ({exc.verify_message}); "
                    f"put its CA in {where}, or mark the registry insecure "
                    f"(llmosd --insecure-registry {host})"
                ) from None
            except ssl.SSLError as exc:
                self._drop(scheme, host)
                raise RegistryUnreachable(
                    f"registry {host}: TLS handshake failed ({exc.reason or exc}); if it "
                    "serves plain HTTP or a self-signed certificate, list it as insecure or "
                    "configure its CA"
                ) from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop(scheme, host)
                what = registry or host
                raise RegistryUnreachable(
                    f"cannot reach registry {what} at {scheme}://{host}: {_os_reason(exc)}"
                ) from None
            headers_map = {k.lower(): v for k, v in raw.getheaders()}
            return Response(raw.status, headers_map, raw, conn, url)
        raise AssertionError("unreachable")

    # -- auth ----------------------------------------------------------------------------
    def token(self, registry: str, challenge: tuple[str, dict[str, str]],
              scopes: list[str]) -> str:
        """A bearer token for `scopes` from the challenge's realm (cached per scope set)."""
        scheme, params = challenge
        key = (registry, " ".join(sorted(scopes)))
        with self._lock:
            if key in self._tokens:
                return self._tokens[key]
        realm = params.get("realm")
        if not realm:
            raise Unauthorized(f"registry {registry}: bearer challenge without a realm")
        query = [("scope", s) for s in scopes]
        if params.get("service"):
            query.insert(0, ("service", params["service"]))
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        headers = {}
        creds = self.config.credentials.get(_auth_key(registry))
        if creds is not None:
            headers["Authorization"] = _basic(creds)
        resp = self.request("GET", url, headers=headers, registry=registry)
        body = resp.read()
        if resp.status == 401:
            raise Unauthorized(f"registry {registry}: token server refused "
                               f"{'our credentials' if creds else 'anonymous access'}")
        if resp.status != 200:
            raise RegistryError(f"registry {registry}: token server answered {resp.status}")
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except ValueError:
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"registry {registry}: token server sent no token")
        del scheme
        with self._lock:
            self._tokens[key] = token
        return token

    def forget_token(self, registry: str, scopes: list[str]) -> None:
        with self._lock:
            self._tokens.pop((registry, " ".join(sorted(scopes))), None)


def _basic(creds: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return f"name does not resolve ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return str(exc) or type(exc).__name__


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"|(\w+)=([^\s,]+)')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…",scope="…"` -> ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for m in _CHALLENGE_PARAM.finditer(rest):
        if m.group(1):
            params[m.group(1).lower()] = m.group(2)
        else:
            params[m.group(3).lower()] = m.group(4)
    return scheme.lower(), params


class Repository:
    """API calls on one repository of one registry, with auth applied."""

    def __init__(self, client: RegistryClient, registry: str, host: str, name: str,
                 actions: str, mount_from: tuple[str, ...]) -> None:
        self.client = client
        self.registry = registry
        self.host = host
        self.name = name
        self.scopes = [f"repository:{name}:{actions}"] + [
            f"repository:{src}:pull" for src in mount_from if src != name
        ]
        self._auth: str | None = None
        self._auth_lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"{self.client.scheme(self.host)}://{self.host}/v2/{self.name}"

    def _authorize(self, challenge_header: str | None) -> None:
        """Turn a 401 challenge (or the /v2/ ping's) into an Authorization header."""
        if not challenge_header:
            raise Unauthorized(f"registry {self.registry}: access to {self.name} refused")
        challenge = parse_challenge(challenge_header)
        if challenge[0] == "bearer":
            self.client.forget_token(self.registry, self.scopes)
            token = self.client.token(self.registry, challenge, self.scopes)
            self._auth = f"Bearer {token}"
        elif challenge[0] == "basic":
            creds = self.client.config.credentials.get(_auth_key(self.registry))
            if creds is None:
                raise Unauthorized(f"registry {self.registry}: needs a login "
                                   "(basic auth) and no credentials are configured")
            self._auth = _basic(creds)
        else:
            raise Unauthorized(f"registry {self.registry}: unsupported auth {challenge[0]!r}")

    def call(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
             body: bytes | BinaryIO | None = None, expect: tuple[int, ...] = (200,),
             what: str = "") -> Response:
        """A request with auth; a 401 is answered once with fresh credentials. Statuses
        outside `expect` become errors (404 NotFound) carrying the registry's message.
        """
        for attempt in (0, 1):
            hdrs = dict(headers or {})
            if self._auth:
                hdrs["Authorization"] = self._auth
            resp = self.client.request(method, url, headers=hdrs, body=body,
                                       registry=self.registry)
            if resp.status == 401 and attempt == 0 and (body is None or isinstance(body, bytes)
                                                         or hasattr(body, "seek")):
                resp.read()
                with self._auth_lock:
                    self._authorize(resp.header("www-authenticate"))
                if hasattr(body, "seek"):
                    body.seek(0)  # type: ignore[union-attr]
                continue
            break
        if resp.status in expect:
            return resp
        self._raise(resp, what or f"{method} {url}")
        raise AssertionError("unreachable")

    def _raise(self, resp: Response, what: str) -> None:
        try:
            detail = _error_detail(resp.read(64 << 10))
        except RegistryError:
            detail = ""
        msg = f"registry {self.registry}: {what}: {resp.status}{detail}"
        if resp.status == 401:
            raise Unauthorized(msg)
        if resp.status == 403:
            raise Unauthorized(msg + " (access denied)")
        if resp.status == 404:
            raise NotFound(msg)
        if resp.status in (400, 405, 413, 415):
            raise InvalidArgument(msg)
        raise RegistryError(msg)

    # -- API -------------------------------------------------------------------------------
    def ping(self) -> None:
        """GET /v2/ so we learn the auth scheme before sending bodies we cannot resend."""
        url = f"{self.client.scheme(self.host)}://{self.host}/v2/"
        try:
            resp = self.client.request("GET", url, registry=self.registry)
        except RegistryUnreachable:
            if not self.client.config.is_insecure(self.host) or url.startswith("http:"):
                raise
            self.client.use_scheme(self.host, "http")  # insecure: HTTPS failed, try HTTP
            url = f"http://{self.host}/v2/"
            resp = self.client.request("GET", url, registry=self.registry)
        resp.read()
        if resp.status == 401:
            with self._auth_lock:
                self._authorize(resp.header("www-authenticate"))
        elif resp.status >= 400:
            raise RegistryError(f"registry {self.registry}: /v2/ answered {resp.status}; "
                                "not a distribution API v2 registry?")

    def get_manifest(self, obj: str) -> tuple[bytes, str | None, str | None]:
        """Manifest or index bytes, its Content-Type and the Docker-Content-Digest header."""
        resp = self.call("GET", f"{self.base}/manifests/{obj}",
                         headers={"Accept": MANIFEST_ACCEPT}, what=f"manifest {self.name}:{obj}")
        data = resp.read(MAX_MANIFEST)
        ctype = (resp.header("content-type") or "").split(";")[0].strip() or None
        return data, ctype, resp.header("docker-content-digest")

    def put_manifest(self, obj: str, data: bytes, media_type: str) -> str | None:
        """Upload a manifest; returns the digest the registry computed."""
        resp = self.call("PUT", f"{self.base}/manifests/{obj}", body=data,
                         headers={"Content-Type": media_type,
                                  "Content-Length": str(len(data))},
                         expect=(201, 200), what=f"put manifest {self.name}:{obj}")
        resp.read()
        return resp.header("docker-content-digest")

    def blob_exists(self, digest: str) -> bool:
        """HEAD the blob: skip uploading what the repository already has."""
        resp = self.call("HEAD", f"{self.base}/blobs/{digest}", expect=(200, 404),
                         what=f"blob {digest}")
        resp.read()
        return resp.status == 200

    @contextlib.contextmanager
    def get_blob(self, digest: str, offset: int = 0) -> Iterator[Response]:
        """Open a blob download (from `offset` with a Range request), following redirects to
        storage without sending our credentials to another host.
        """
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        url = f"{self.base}/blobs/{digest}"
        resp = self.call("GET", url, headers=headers, expect=(200, 206, 307, 302, 301, 303,
                                                              308, 416), what=f"blob {digest}")
        hops = 0
        while resp.status in (301, 302, 303, 307, 308):
            hops += 1
            location = resp.header("location")
            resp.read()
            if not location or hops > _MAX_REDIRECTS:
                raise RegistryError(f"registry {self.registry}: blob {digest}: bad redirect")
            url = urllib.parse.urljoin(url, location)
            same = urllib.parse.urlsplit(url).netloc == self.host
            if same:
                resp = self.call("GET", url, headers=headers, expect=(200, 206, 416),
                                 what=f"blob {digest}")
            else:
                resp = self.client.request("GET", url, headers=headers, registry=self.registry)
                if resp.status not in (200, 206, 416):
                    self._raise(resp, f"blob {digest} from {url}")
        try:
            yield resp
        finally:
            resp.close()

    def mount_blob(self, digest: str, source: str) -> str | None:
        """Ask to mount a blob from another repository: None if mounted, else an upload
        location (the registry declined and opened an ordinary upload instead).
        """
        q = urllib.parse.urlencode({"mount": digest, "from": source})
        resp = self.call("POST", f"{self.base}/blobs/uploads/?{q}", body=b"",
                         headers={"Content-Length": "0"}, expect=(201, 202),
                         what=f"mount {digest} from {source}")
        resp.read()
        if resp.status == 201:
            return None
        return self._location(resp)

    def start_upload(self) -> str:
        """Open an upload session; returns its location."""
        resp = self.call("POST", f"{self.base}/blobs/uploads/", body=b"",
                         headers={"Content-Length": "0"}, expect=(202,), what="start upload")
        resp.read()
        return self._location(resp)

    def finish_upload(self, location: str, digest: str, body: BinaryIO, size: int) -> None:
        """Monolithic PUT of the whole blob to an upload session."""
        sep = "&" if "?" in location else "?"
        url = f"{location}{sep}digest={urllib.parse.quote(digest)}"
        resp = self.call("PUT", url, body=body,
                         headers={"Content-Type": "application/octet-stream",
                                  "Content-Length": str(size)},
                         expect=(201, 204), what=f"upload {digest}")
        resp.read()

    def _location(self, resp: Response) -> str:
        location = resp.header("location")
        if not location:
            raise RegistryError(f"registry {self.registry}: upload without a Location")
        return urllib.parse.urljoin(f"{self.base}/blobs/uploads/", location)


def _error_detail(body: bytes) -> str:
    try:
        doc = json.loads(body)
        errors = doc.get("errors") or []
        parts = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors
                 if isinstance(e, dict)]
        return (" " + "; ".join(parts)) if parts else ""
    except (ValueError, AttributeError):
        text = body.decode("utf-8", "replace").strip()
        return f" {text[:200]}" if text else ""
