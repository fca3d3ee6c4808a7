"""Interoperability with a real client: Debian's skopeo reads what we push and save, and we
pull and load what skopeo pushes and writes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import Registry, build_image, new_store

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
    image = build_image(store, "app:1", middle="gzip")
    ref = f"{plain_registry.host}/app:1"
    store.push("app:1", dest=ref)

    layout = tmp_path / "layout"
    skopeo(plain_registry, "copy", f"docker://{ref}", f"oci:{layout}:v1")
    archive = tmp_path / "docker.tar"
    skopeo(plain_registry, "copy", f"docker://{ref}", f"docker-archive:{archive}:mine/app:v2")

    loader = new_store(tmp_path / "l")
    (from_layout,) = loader.load(layout, name="mine/oci")
    assert from_layout.name == "docker.io/mine/oci:v1"
    assert from_layout.id == image.id
    (from_archive,) = loader.load(archive)
    assert from_archive.name == "docker.io/mine/app:v2"
    assert from_archive.id == image.id
    assert from_archive.chain_id == image.chain_id
    motd = loader.snapshotter.layer_dir(from_archive.chain_ids[2]) / "etc/motd"
    assert motd.read_bytes() == b"hello from amd64\n"


def test_skopeo_reads_what_we_save_and_pushes_it_for_us(plain_registry: Registry,
                                                        tmp_path: Path) -> None:
    store = new_store(tmp_path / "s", plain_registry)
    image = build_image(store, "app:1")
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
        pulled = new_store(tmp_path / repo, plain_registry).pull(dest)
        assert pulled.id == image.id
        assert pulled.diff_ids == image.diff_ids
