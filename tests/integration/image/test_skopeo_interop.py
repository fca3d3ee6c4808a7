"""Interoperability with a real client: Debian's skopeo reads what we push and save, and we
pull and load what skopeo pushes and writes.
"""

from __future__ import annotations

import functools
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from llmos.build import run_image
from llmos.image import Image, ImageStore
from llmos.image.testing import layer_tar, regular
from tests.integration.conftest import make_busybox_rootfs

from .conftest import Registry, build_image, new_store, start_registry, stop_registry

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")]


def skopeo(reg: Registry | None, *args: str) -> str:
    """Run skopeo with the registry's TLS/auth flags placed after the subcommand."""
    cmd, *rest = args
    flags: list[str] = []
    if reg is not None:
        flags = list(reg.skopeo_flags)
        if cmd == "copy":
            flags = [f.replace("--tls-verify", "--dest-tls-verify")
                     .replace("--cert-dir", "--dest-cert-dir").replace("--creds", "--dest-creds")
                     for f in flags]
            flags += [f.replace("--tls-verify", "--src-tls-verify")
                      .replace("--cert-dir", "--src-cert-dir").replace("--creds", "--src-creds")
                      for f in reg.skopeo_flags]
    proc = subprocess.run(["skopeo", "--insecure-policy", cmd, *flags, *rest],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


MOTD = b"hello from a busybox image\n"


@functools.cache
def busybox_tar() -> bytes:
    """An uncompressed tar of a busybox-static rootfs (made once per test process)."""
    with tempfile.TemporaryDirectory(prefix="llmos-skopeo-bb-") as d:
        rootfs = make_busybox_rootfs(Path(d) / "rootfs")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            tf.add(rootfs, arcname=".")
        return buf.getvalue()


def build_busybox_image(store: ImageStore, name: str, *, middle: str = "gzip") -> Image:
    """Three layers: the busybox rootfs (gzip), a data file (`middle` compression) and
    /etc/motd (uncompressed); the default command prints /etc/motd."""
    layers = [("gzip", busybox_tar()),
              (middle, layer_tar([regular("data/blob", b"z" * 1000)])),
              ("none", layer_tar([regular("etc/motd", MOTD)]))]
    blobs = [store.add_layer(io.BytesIO(data), compression=kind) for kind, data in layers]
    return store.commit_image(name, {"architecture": "amd64",
                                     "config": {"Env": ["PATH=/bin"],
                                                "Cmd": ["cat", "/etc/motd"]}}, blobs)


def assert_runs(store: ImageStore, image: Image, runtime_root: Path) -> None:
    """The image runs in a container: its default command prints the top layer's motd, and
    a command sees the middle layer's file and returns its exit code."""
    assert run_image(store, image, runtime_root=runtime_root) == (0, MOTD.decode())
    code, out = run_image(store, image, runtime_root=runtime_root,
                          args=["sh", "-c", "wc -c < /data/blob; busybox echo ran; exit 7"])
    assert (code, out.split()) == (7, ["1000", "ran"])


def test_skopeo_inspects_and_copies_what_we_push(registry: Registry, tmp_path: Path) -> None:
    store = new_store(tmp_path / "s", registry)
    image = build_image(store, "app:1")
    ref = f"{registry.host}/interop/app:1"
    store.push("app:1", dest=ref)
    info = json.loads(skopeo(registry, "inspect", f"docker://{ref}"))
    assert info["Digest"] == image.manifest_digest
    assert info["Layers"] == [layer.digest for layer in image.layers]
    assert info["Architecture"] == "amd64"
    raw = skopeo(registry, "inspect", "--raw", f"docker://{ref}")
    assert json.loads(raw)["config"]["digest"] == image.id

    # skopeo copies it to another repository; we pull that copy
    copy = f"{registry.host}/interop/copy:1"
    skopeo(registry, "copy", "--preserve-digests", f"docker://{ref}", f"docker://{copy}")
    other = new_store(tmp_path / "o", registry)
    assert other.pull(copy).id == image.id


def test_we_load_what_skopeo_writes(plain_registry: Registry, tmp_path: Path) -> None:
    store = new_store(tmp_path / "s", plain_registry)
    # docker-archive cannot hold zstd layers (skopeo refuses), so gzip in the middle
    image = build_busybox_image(store, "app:1", middle="gzip")
    ref = f"{plain_registry.host}/app:1"
    store.push("app:1", dest=ref)

    layout = tmp_path / "layout"
    skopeo(plain_registry, "copy", f"docker://{ref}", f"oci:{layout}:v1")
    archive = tmp_path / "docker.tar"
    skopeo(plain_registry, "copy", f"docker://{ref}", f"docker-archive:{archive}:mine/app:v2")

    # one store per source, so each run uses only layers that source delivered
    oci_loader, archive_loader = new_store(tmp_path / "lo"), new_store(tmp_path / "la")
    (from_layout,) = oci_loader.load(layout, name="mine/oci")
    assert from_layout.name == "docker.io/mine/oci:v1"
    assert from_layout.id == image.id
    (from_archive,) = archive_loader.load(archive)
    assert from_archive.name == "docker.io/mine/app:v2"
    assert from_archive.id == image.id
    assert from_archive.chain_id == image.chain_id
    motd = archive_loader.snapshotter.layer_dir(from_archive.chain_ids[2]) / "etc/motd"
    assert motd.read_bytes() == MOTD
    assert_runs(oci_loader, oci_loader.get("mine/oci:v1"), tmp_path / "rt")
    assert_runs(archive_loader, archive_loader.get("mine/app:v2"), tmp_path / "rt")


def test_skopeo_reads_what_we_save_and_pushes_it_for_us(plain_registry: Registry,
                                                        tmp_path: Path) -> None:
    store = new_store(tmp_path / "s", plain_registry)
    image = build_busybox_image(store, "app:1", middle="zstd")
    docker_tar, oci_tar = tmp_path / "d.tar", tmp_path / "o.tar"
    store.save(["app:1"], docker_tar, format="docker-archive")
    store.save(["app:1"], oci_tar, format="oci")
    info = json.loads(skopeo(None, "inspect", f"docker-archive:{docker_tar}"))
    assert info["Layers"] and info["Architecture"] == "amd64"
    info = json.loads(skopeo(None, "inspect", f"oci-archive:{oci_tar}"))
    assert info["Digest"] == image.manifest_digest

    for source, repo in ((f"docker-archive:{docker_tar}", "from-docker"),
                         (f"oci-archive:{oci_tar}", "from-oci")):
        dest = f"{plain_registry.host}/{repo}:1"
        skopeo(plain_registry, "copy", source, f"docker://{dest}")
        puller = new_store(tmp_path / repo, plain_registry)
        pulled = puller.pull(dest)
        assert pulled.id == image.id
        assert pulled.diff_ids == image.diff_ids
        assert_runs(puller, pulled, tmp_path / "rt")


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def skopeo_zstd_copy(reg: Registry, src: str, dest: str) -> None:
    """skopeo copy recompressing every layer with zstd (its own encoder, not ours); skips
    the test when this skopeo cannot."""
    if "--dest-compress-format" not in subprocess.run(
            ["skopeo", "copy", "--help"], capture_output=True, text=True).stdout:
        pytest.skip("this skopeo has no copy --dest-compress-format")
    try:
        skopeo(reg, "copy", "--dest-compress", "--dest-compress-format", "zstd", src, dest)
    except AssertionError as e:
        if "zstd" in str(e) and any(w in str(e).lower()
                                    for w in ("unsupported", "not supported", "unknown")):
            pytest.skip(f"this skopeo cannot write zstd layers: {e}")
        raise


def test_zstd_layers_written_by_skopeo_are_loaded_pulled_and_run(
        plain_registry: Registry, tmp_path: Path) -> None:
    store = new_store(tmp_path / "s", plain_registry)
    image = build_busybox_image(store, "app:1", middle="gzip")  # no zstd of ours in it
    ref = f"{plain_registry.host}/gz/app:1"
    store.push("app:1", dest=ref)

    layout = tmp_path / "layout"
    skopeo_zstd_copy(plain_registry, f"docker://{ref}", f"oci:{layout}:zstd")
    index = json.loads((layout / "index.json").read_text())
    (desc,) = index["manifests"]

    def blob(digest: str) -> Path:
        return layout / "blobs" / digest.replace(":", "/")

    manifest = json.loads(blob(desc["digest"]).read_text())
    assert [layer["mediaType"] for layer in manifest["layers"]] == \
        ["application/vnd.oci.image.layer.v1.tar+zstd"] * 3
    for layer in manifest["layers"]:
        with open(blob(layer["digest"]), "rb") as f:
            assert f.read(4) == ZSTD_MAGIC
    assert [layer["digest"] for layer in manifest["layers"]] != \
        [layer.digest for layer in image.layers]

    loader = new_store(tmp_path / "l")
    (loaded,) = loader.load(layout, name="mine/zstd")
    assert loaded.id == image.id and loaded.diff_ids == image.diff_ids
    assert [layer.digest for layer in loaded.layers] == \
        [layer["digest"] for layer in manifest["layers"]]
    assert_runs(loader, loaded, tmp_path / "rt")

    # skopeo pushes zstd layers to a registry; we pull them into a fresh store. A second
    # registry: within one, skopeo would mount the gzip blobs it already has instead.
    (tmp_path / "reg2").mkdir()
    other = start_registry(tmp_path / "reg2")
    try:
        zref = f"{other.host}/zstd/app:1"
        skopeo_zstd_copy(plain_registry, f"docker://{ref}", f"docker://{zref}")
        raw = json.loads(skopeo(other, "inspect", "--raw", f"docker://{zref}"))
        assert [layer["mediaType"] for layer in raw["layers"]] == \
            ["application/vnd.oci.image.layer.v1.tar+zstd"] * 3
        puller = new_store(tmp_path / "p", other)
        pulled = puller.pull(zref)
        assert pulled.id == image.id
        assert [layer.digest for layer in pulled.layers] == \
            [layer["digest"] for layer in raw["layers"]]
        assert_runs(puller, pulled, tmp_path / "rt")
    finally:
        stop_registry(other)
