"""Push and pull against a real registry (Debian's docker-registry on loopback)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmos.image import (
    Descriptor,
    DigestMismatch,
    ImageStore,
    NotFound,
    Platform,
    Progress,
    RegistryError,
    RegistryUnreachable,
    Unauthorized,
)
from llmos.image.manifest import MEDIA_OCI_INDEX
from llmos.image.registry import RegistryConfig, parse_insecure_registry

from .conftest import Registry, build_image, free_port, new_store

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _files(store: ImageStore, ref: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for chain in store.get(ref).chain_ids:
        base = store.snapshotter.layer_dir(chain)
        for p in base.rglob("*"):
            if p.is_file():
                out[str(p.relative_to(base))] = p.read_bytes()
    return out


def test_push_then_pull_round_trip(registry: Registry, tmp_path: Path) -> None:
    src = new_store(tmp_path / "a", registry)
    image = build_image(src, "app:1")
    ref = f"{registry.host}/team/app:1"
    src.tag("app:1", ref)
    events: list[Progress] = []
    pushed = src.push(ref, progress=events.append)
    assert pushed.digest == image.manifest_digest
    assert {e.action for e in events} >= {"upload", "done"}

    dst = new_store(tmp_path / "b", registry)
    pulled = dst.pull(ref)
    assert pulled.manifest_digest == image.manifest_digest
    assert pulled.id == image.id
    assert [x.digest for x in pulled.layers] == [x.digest for x in image.layers]
    assert pulled.chain_ids == image.chain_ids
    # gzip, zstd and plain layers all unpacked
    files = _files(dst, ref)
    assert files["etc/os-release"] == b"ID=test\n"
    assert files["data/blob"] == b"z" * 1000
    assert files["etc/motd"] == b"hello from amd64\n"
    assert dst.get(f"{registry.host}/team/app@{image.manifest_digest}").id == image.id

    # a second push finds every blob present
    events.clear()
    src.push(ref, progress=events.append)
    assert not [e for e in events if e.action == "upload"]
    assert len([e for e in events if e.action == "exists"]) == 4


def test_cross_repository_mount(plain_registry: Registry, tmp_path: Path) -> None:
    store = new_store(tmp_path / "a", plain_registry)
    build_image(store, "app:1")
    first, second = f"{plain_registry.host}/one/app:1", f"{plain_registry.host}/two/app:1"
    store.tag("app:1", first)
    store.push(first)
    events: list[Progress] = []
    store.push("app:1", dest=second, progress=events.append)
    assert len([e for e in events if e.action == "mount"]) == 4
    assert not [e for e in events if e.action == "upload"]
    assert new_store(tmp_path / "b", plain_registry).pull(second).id == store.get("app:1").id


def test_multi_arch_index_picks_linux_amd64(plain_registry: Registry, tmp_path: Path) -> None:
    src = new_store(tmp_path / "a", plain_registry)
    amd = build_image(src, "multi:amd64", arch="amd64")
    arm = build_image(src, "multi:arm64", arch="arm64", seed=b"arm")
    index = {"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": [
        {**arm.target.to_json(), "platform": {"os": "linux", "architecture": "arm64"}},
        {**amd.target.to_json(), "platform": {"os": "linux", "architecture": "amd64"}},
    ]}
    data = json.dumps(index).encode()
    digest = src.content.write_blob(data)
    ref = f"{plain_registry.host}/multi:latest"
    src.set_name(ref, Descriptor(MEDIA_OCI_INDEX, digest, len(data)))
    src.push(ref)

    dst = new_store(tmp_path / "b", plain_registry)
    pulled = dst.pull(ref)
    assert pulled.target.digest == digest
    assert pulled.manifest_digest == amd.manifest_digest
    assert _files(dst, ref)["etc/motd"] == b"hello from amd64\n"
    assert not dst.content.exists(arm.manifest_digest)  # only one platform fetched
    arm_store = new_store(tmp_path / "c", plain_registry, platform=Platform("linux", "arm64"))
    assert arm_store.pull(ref).manifest_digest == arm.manifest_digest
    with pytest.raises(NotFound, match="no manifest for platform linux/s390x"):
        dst.pull(ref, platform=Platform("linux", "s390x"))


def _nothing_half_written(store: ImageStore, digest: str) -> None:
    assert not store.content.exists(digest)
    assert store.list() == []
    assert not [s for s in store.snapshotter.walk() if s.kind != "committed"]
    blob_dir = store.root / "blobs" / "sha256"
    assert all(len(p.name) == 64 for p in blob_dir.iterdir())  # no temp files among blobs


def test_corrupted_blob_is_refused(plain_registry: Registry, tmp_path: Path) -> None:
    src = new_store(tmp_path / "a", plain_registry)
    image = build_image(src, "app:1")
    ref = f"{plain_registry.host}/app:1"
    src.push("app:1", dest=ref)
    layer = image.layers[1].digest
    data = plain_registry.blob_data(layer)
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    dst = new_store(tmp_path / "b", plain_registry)
    with pytest.raises(DigestMismatch, match=f"blob {layer}: content has digest"):
        dst.pull(ref)
    _nothing_half_written(dst, layer)
    assert all(i.offset == 0 for i in dst.content.ingests())  # wrong bytes are not kept


def test_truncated_blob_is_refused(plain_registry: Registry, tmp_path: Path) -> None:
    src = new_store(tmp_path / "a", plain_registry)
    image = build_image(src, "app:1", big=200_000)
    ref = f"{plain_registry.host}/app:1"
    src.push("app:1", dest=ref)
    layer = image.layers[1].digest
    data = plain_registry.blob_data(layer)
    data.write_bytes(data.read_bytes()[:100_000])
    dst = new_store(tmp_path / "b", plain_registry)
    with pytest.raises(DigestMismatch, match="truncated: served 100000 of"):
        dst.pull(ref)
    _nothing_half_written(dst, layer)


def test_manifest_whose_digest_lies_is_refused(plain_registry: Registry, tmp_path: Path) -> None:
    src = new_store(tmp_path / "a", plain_registry)
    image = build_image(src, "app:1")
    ref = f"{plain_registry.host}/app:1"
    src.push("app:1", dest=ref)
    stored = plain_registry.blob_data(image.manifest_digest)
    stored.write_bytes(stored.read_bytes() + b" ")  # served under the old digest
    dst = new_store(tmp_path / "b", plain_registry)
    with pytest.raises(DigestMismatch, match="but the registry says"):
        dst.pull(ref)
    with pytest.raises(DigestMismatch, match=r"not the .* asked for"):
        dst.pull(f"{plain_registry.host}/app@{image.manifest_digest}")
    assert dst.list() == []
    assert list(dst.content.blobs()) == []


class _Interrupt(Exception):
    pass


def test_interrupted_pull_resumes(plain_registry: Registry, tmp_path: Path) -> None:
    src = new_store(tmp_path / "a", plain_registry)
    image = build_image(src, "big:1", big=8 << 20)
    ref = f"{plain_registry.host}/big:1"
    src.push("big:1", dest=ref)
    big = image.layers[1]
    dst = new_store(tmp_path / "b", plain_registry)

    def stop_half_way(event: Progress) -> None:
        if event.action == "download" and event.item == big.digest[7:19] and \
                event.current > big.size // 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        dst.pull(ref, progress=stop_half_way)
    partial = [i for i in dst.content.ingests() if i.expected == big.digest]
    assert len(partial) == 1 and 0 < partial[0].offset < big.size
    assert not dst.content.exists(big.digest) and dst.list() == []
    # Removing another image meanwhile collects garbage, but keeps the resumable bytes.
    build_image(dst, "other:1", seed=b"other")
    dst.remove("other:1")
    assert [i.offset for i in dst.content.ingests() if i.expected == big.digest] == \
        [partial[0].offset]

    events: list[Progress] = []
    pulled = dst.pull(ref, progress=events.append)
    resumed = [e for e in events if e.action == "resume" and e.item == big.digest[7:19]]
    assert resumed and resumed[0].current == partial[0].offset
    downloaded = max(e.current for e in events if e.action == "download" and
                     e.item == big.digest[7:19])
    assert downloaded == big.size
    assert pulled.manifest_digest == image.manifest_digest
    assert dst.content.ingests() == []


KILLED_PULL = """
import os, signal, sys
from llmos.image import ImageStore, Platform, RegistryConfig
store = ImageStore(sys.argv[1], platform=Platform("linux", "amd64"),
                   registry_config=RegistryConfig(insecure={sys.argv[3]}))
def die(event):
    if (event.action, event.item) == ("download", sys.argv[4]) and \\
            event.current > int(sys.argv[5]):
        os.kill(os.getpid(), signal.SIGKILL)
store.pull(sys.argv[2], progress=die)
"""


def test_pull_killed_with_sigkill_resumes(plain_registry: Registry, tmp_path: Path) -> None:
    """A pulling process killed outright (no exception handler runs) leaves a partial ingest
    and nothing else; the next pull resumes from its offset and ends with the same image."""
    import subprocess
    import sys

    src = new_store(tmp_path / "a", plain_registry)
    image = build_image(src, "big:1", big=8 << 20)
    ref = f"{plain_registry.host}/big:1"
    src.push("big:1", dest=ref)
    big = image.layers[1]
    root = tmp_path / "b"
    proc = subprocess.run([sys.executable, "-c", KILLED_PULL, str(root), ref,
                           plain_registry.host, big.digest[7:19], str(big.size // 2)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    dst = new_store(root, plain_registry)
    partial = [i for i in dst.content.ingests() if i.expected == big.digest]
    assert len(partial) == 1 and big.size // 2 < partial[0].offset < big.size
    assert dst.list() == [] and not dst.content.exists(big.digest)
    events: list[Progress] = []
    pulled = dst.pull(ref, progress=events.append)
    resumed = [e for e in events if e.action == "resume" and e.item == big.digest[7:19]]
    assert resumed and resumed[0].current == partial[0].offset
    assert pulled.manifest_digest == image.manifest_digest
    assert dst.content.ingests() == []


def test_unreachable_registry_names_the_host(tmp_path: Path) -> None:
    port = free_port()
    store = new_store(tmp_path)
    with pytest.raises(RegistryUnreachable, match=f"127.0.0.1:{port}.*connection refused"):
        store.pull(f"127.0.0.1:{port}/app:1")


def test_missing_image_is_not_found(plain_registry: Registry, tmp_path: Path) -> None:
    store = new_store(tmp_path, plain_registry)
    with pytest.raises(NotFound, match=r"MANIFEST_UNKNOWN|NAME_UNKNOWN"):
        store.pull(f"{plain_registry.host}/nothing:here")


def test_auth_required_and_wrong_password(tmp_path: Path) -> None:
    from .conftest import start_registry, stop_registry

    reg = start_registry(tmp_path, auth=True)
    try:
        store = new_store(tmp_path / "s")
        build_image(store, "app:1")
        with pytest.raises(Unauthorized, match="no credentials"):
            store.push("app:1", dest=f"{reg.host}/app:1")
        reg.config.credentials[reg.host] = ("tester", "wrong")
        bad = new_store(tmp_path / "s2", reg)
        build_image(bad, "app:1")
        with pytest.raises(Unauthorized):
            bad.push("app:1", dest=f"{reg.host}/app:1")
    finally:
        stop_registry(reg)


def _round_trip(tmp_path: Path, host: str, config: RegistryConfig) -> None:
    """Push a three-layer image to `host` and pull it into a second store."""
    src = ImageStore(tmp_path / "src", platform=Platform("linux", "amd64"),
                     registry_config=config)
    image = build_image(src, "app:1")
    assert src.push("app:1", dest=f"{host}/team/app:1").digest == image.manifest_digest
    dst = ImageStore(tmp_path / "dst", platform=Platform("linux", "amd64"),
                     registry_config=config)
    assert dst.pull(f"{host}/team/app:1").id == image.id
    assert _files(dst, f"{host}/team/app:1")["etc/motd"] == b"hello from amd64\n"


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "loopback-default"])
def test_loopback_tls_registry_with_an_unknown_ca_is_insecure(tmp_path: Path,
                                                              listed: bool) -> None:
    """Docker's rule: a registry listed as insecure, and any loopback one, gets HTTPS
    without certificate checks (this one serves only HTTPS, so plain HTTP would fail)."""
    from .conftest import start_registry, stop_registry

    reg = start_registry(tmp_path / "reg", tls=True)
    try:
        config = RegistryConfig(insecure={reg.host} if listed else set())
        _round_trip(tmp_path, reg.host, config)
    finally:
        stop_registry(reg)


def test_a_ca_configured_for_a_loopback_host_is_checked(tmp_path: Path) -> None:
    from .conftest import make_ca_and_cert, start_registry, stop_registry

    reg = start_registry(tmp_path / "reg", tls=True)
    try:
        other_ca = make_ca_and_cert(tmp_path / "other")[0]
        store = ImageStore(tmp_path / "s", registry_config=RegistryConfig(
            ca_files={reg.host: str(other_ca)}))
        with pytest.raises(RegistryUnreachable,
                           match=rf"{reg.host}: TLS certificate not trusted \("):
            store.pull(f"{reg.host}/app:1")
        store = ImageStore(tmp_path / "s2", registry_config=RegistryConfig(
            ca_files={reg.host: os.devnull}))
        with pytest.raises(RegistryError, match="cannot use CA file"):
            store.pull(f"{reg.host}/app:1")
        # Listed as insecure: its CA is not checked, as with Docker.
        _round_trip(tmp_path / "insecure", reg.host, RegistryConfig(
            insecure={reg.host}, ca_files={reg.host: str(other_ca)}))
    finally:
        stop_registry(reg)


def test_insecure_registries_off_loopback(tmp_path: Path) -> None:
    """At an address that is not loopback: TLS with a CA we lack is refused with an error
    that names the certificate problem and the way out; listed as insecure (HOST:PORT or a
    CIDR), TLS goes unchecked and a plain-HTTP registry is reached by the HTTP fallback."""
    from .conftest import NETNS_ADDR, in_netns, private_netns, start_registry, stop_registry

    with private_netns() as ns:
        tls = start_registry(tmp_path / "tls", tls=True, netns=ns, addr=NETNS_ADDR)
        try:
            plain = start_registry(tmp_path / "plain", netns=ns, addr=NETNS_ADDR)
            try:
                def check() -> None:
                    store = ImageStore(tmp_path / "refused",
                                       platform=Platform("linux", "amd64"))
                    build_image(store, "app:1")
                    with pytest.raises(RegistryUnreachable) as refused:
                        store.push("app:1", dest=f"{tls.host}/app:1")
                    message = str(refused.value)
                    assert f"registry {tls.host}: TLS certificate not trusted" in message
                    assert "self-signed certificate" in message \
                        or "unable to get local issuer certificate" in message, message
                    assert f"--insecure-registry {tls.host}" in message
                    with pytest.raises(RegistryUnreachable, match=rf"{plain.host}: TLS"):
                        store.push("app:1", dest=f"{plain.host}/app:1")

                    by_host = RegistryConfig(insecure={tls.host})
                    _round_trip(tmp_path / "by-host", tls.host, by_host)
                    other_port = ImageStore(tmp_path / "other-port",
                                            platform=Platform("linux", "amd64"),
                                            registry_config=by_host)
                    build_image(other_port, "app:1")
                    with pytest.raises(RegistryUnreachable, match=rf"{plain.host}: TLS"):
                        other_port.push("app:1", dest=f"{plain.host}/app:1")
                    _round_trip(tmp_path / "by-cidr", plain.host,
                                RegistryConfig(insecure={"198.51.100.0/24"}))

                in_netns(ns, check)
            finally:
                stop_registry(plain)
        finally:
            stop_registry(tls)


@pytest.mark.parametrize("value, expected", [
    ("Registry.Example:5000", "registry.example:5000"), ("10.1.2.3", "10.1.2.3"),
    ("10.1.0.0/16", "10.1.0.0/16"), ("10.1.2.3/16", "10.1.0.0/16"), ("[::1]:5000", "[::1]:5000"),
])
def test_insecure_registry_entries(value: str, expected: str) -> None:
    assert parse_insecure_registry(value) == expected


@pytest.mark.parametrize("value", ["http://registry:5000", "registry:5000/path", "host:0",
                                   "host:x", "", "a b"])
def test_bad_insecure_registry_entries_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="insecure registry"):
        parse_insecure_registry(value)


def test_bearer_token_auth_with_cross_repository_mount(token_registry: tuple[Registry, object],
                                                       tmp_path: Path) -> None:
    from .conftest import TokenServer

    reg, tokens = token_registry
    assert isinstance(tokens, TokenServer)
    store = new_store(tmp_path / "a", reg)
    image = build_image(store, "app:1")
    store.push("app:1", dest=f"{reg.host}/one/app:1")
    assert "repository:one/app:pull,push" in tokens.scopes
    events: list[Progress] = []
    store.push("app:1", dest=f"{reg.host}/two/app:1", progress=events.append)
    assert "repository:one/app:pull" in tokens.scopes  # asked for the mount source too
    assert len([e for e in events if e.action == "mount"]) == 4
    pulled = new_store(tmp_path / "b", reg).pull(f"{reg.host}/two/app:1")
    assert pulled.id == image.id
    anonymous = new_store(tmp_path / "c")
    with pytest.raises(Unauthorized, match="anonymous"):
        anonymous.pull(f"{reg.host}/two/app:1")
