"""ImageStore without a registry: create, name, resolve, archives, import, gc."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from llmos.image import (
    DigestMismatch,
    FailedPrecondition,
    Image,
    ImageStore,
    InvalidArgument,
    NotFound,
    Platform,
)
from llmos.image.testing import compress, directory, layer_tar, regular, symlink

AMD64 = Platform("linux", "amd64")


def _store(root: Path) -> ImageStore:
    return ImageStore(root, platform=AMD64)


def _image(store: ImageStore, name: str | None, files: list[dict[str, bytes]],
           compression: str = "gzip", cmd: list[str] | None = None) -> Image:
    layers = []
    for content in files:
        tar = layer_tar([regular(k, v) for k, v in content.items()])
        layers.append(store.add_layer(io.BytesIO(compress(tar, compression)),
                                      compression=compression))
    return store.commit_image(name, {"config": {"Cmd": cmd or ["/bin/sh"]}}, layers)


def _rootfs(store: ImageStore, image: Image) -> dict[str, bytes]:
    """The merged view of an image's layers, computed without mounting (upper wins)."""
    out: dict[str, bytes] = {}
    for chain in image.chain_ids:
        base = store.snapshotter.layer_dir(chain)
        for p in base.rglob("*"):
            if p.is_file():
                out[str(p.relative_to(base))] = p.read_bytes()
    return out


def test_commit_get_and_layers_unpacked(tmp_path: Path) -> None:
    store = _store(tmp_path)
    image = _image(store, "app:1", [{"a": b"1", "etc/x": b"x"}, {"a": b"2"}])
    assert image.name == "docker.io/library/app:1"
    assert len(image.layers) == 2 and len(image.chain_ids) == 2
    assert image.chain_id == image.chain_ids[-1]
    assert image.config.config["Cmd"] == ["/bin/sh"]
    assert _rootfs(store, image) == {"a": b"2", "etc/x": b"x"}
    for ref in ("app:1", "docker.io/library/app:1", image.id, image.id[7:19],
                image.manifest_digest, f"app@{image.manifest_digest}"):
        assert store.get(ref).id == image.id, ref
    assert [i.name for i in store.list()] == ["docker.io/library/app:1"]
    mounts = store.snapshotter.prepare("ctr", image.chain_id)
    assert mounts[0].type == "overlay"


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_layer_compressions(tmp_path: Path, compression: str) -> None:
    store = _store(tmp_path)
    image = _image(store, "c", [{"f": b"data" * 1000}], compression=compression)
    assert image.layers[0].media_type.endswith(
        {"none": ".tar", "gzip": ".tar+gzip", "zstd": ".tar+zstd"}[compression])
    assert _rootfs(store, image) == {"f": b"data" * 1000}


def test_shared_base_layer_is_one_snapshot(tmp_path: Path) -> None:
    store = _store(tmp_path)
    a = _image(store, "a", [{"base": b"b"}, {"a": b"a"}])
    b = _image(store, "b", [{"base": b"b"}, {"b": b"b"}])
    assert a.chain_ids[0] == b.chain_ids[0]
    committed = [s for s in store.snapshotter.walk() if s.kind == "committed"]
    assert len(committed) == 3


def test_not_found_and_ambiguity(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(NotFound, match="no such image"):
        store.get("nothere")
    with pytest.raises(NotFound):
        store.get("sha256:" + "0" * 64)


def test_tag_remove_and_prune(tmp_path: Path) -> None:
    store = _store(tmp_path)
    a = _image(store, "a", [{"base": b"b"}, {"a": b"a"}])
    b = _image(store, "b", [{"base": b"b"}, {"b": b"b"}])
    store.tag("a", "alias:2")
    assert store.get("alias:2").id == a.id
    with pytest.raises(FailedPrecondition, match="referenced by 2 names"):
        store.remove(a.id)
    assert store.remove("alias:2") == ["docker.io/library/alias:2"]
    # a container on a's top layer keeps its layers through gc
    store.snapshotter.prepare("ctr", a.chain_id)
    store.remove("a", prune=False)
    store.prune()
    assert store.snapshotter.exists(a.chain_ids[-1])
    assert not store.content.exists(a.manifest_digest)
    assert not store.content.exists(a.layers[1].digest)
    store.snapshotter.remove("ctr")
    report = store.prune()
    assert report.snapshots == (a.chain_ids[-1],)
    assert not store.snapshotter.exists(a.chain_ids[-1])
    assert store.snapshotter.exists(b.chain_ids[0])  # still used by b
    assert store.content.exists(a.layers[0].digest)  # shared with b
    assert store.get("b").id == b.id
    store.remove("b")
    assert list(store.content.blobs()) == []
    assert store.snapshotter.walk() == []


def test_docker_archive_round_trip(tmp_path: Path) -> None:
    store = _store(tmp_path / "one")
    image = _image(store, "localhost:5000/app:v1", [{"a": b"1"}, {"b/c": b"2"}])
    out = tmp_path / "app.tar"
    store.save(["localhost:5000/app:v1"], out, format="docker-archive")
    with tarfile.open(out) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
        repositories = json.load(tf.extractfile("repositories"))  # type: ignore[arg-type]
        names = tf.getnames()
    assert manifest[0]["RepoTags"] == ["localhost:5000/app:v1"]
    assert "localhost:5000/app" in repositories
    assert all(n.endswith("/layer.tar") for n in manifest[0]["Layers"])
    assert manifest[0]["Config"] in names
    other = _store(tmp_path / "two")
    (loaded,) = other.load(out)
    assert loaded.name == "docker.io/library/app:v1".replace("docker.io/library", "localhost:5000")
    assert loaded.id == image.id  # same config: same image id
    assert loaded.diff_ids == image.diff_ids
    assert _rootfs(other, loaded) == {"a": b"1", "b/c": b"2"}


def test_oci_archive_round_trip_keeps_manifest_digest(tmp_path: Path) -> None:
    store = _store(tmp_path / "one")
    image = _image(store, "app:v1", [{"a": b"1"}], compression="zstd")
    out = tmp_path / "app-oci.tar"
    store.save(["app:v1"], out, format="oci")
    other = _store(tmp_path / "two")
    (loaded,) = other.load(out)
    assert loaded.name == "docker.io/library/app:v1"
    assert loaded.manifest_digest == image.manifest_digest
    assert loaded.layers == image.layers


def test_oci_layout_directory_with_tag_only_name(tmp_path: Path) -> None:
    store = _store(tmp_path / "one")
    image = _image(store, "x", [{"a": b"1"}])
    out = tmp_path / "x.tar"
    store.save(["x"], out, format="oci")
    layout = tmp_path / "layout"
    with tarfile.open(out) as tf:
        tf.extractall(layout, filter="data")
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": "v9"}
    (layout / "index.json").write_text(json.dumps(index))
    other = _store(tmp_path / "two")
    (unnamed,) = other.load(layout)
    assert unnamed.name == image.target.digest
    (named,) = other.load(layout, name="myrepo/x")
    assert named.name == "docker.io/myrepo/x:v9"


def test_oci_layout_with_corrupt_blob_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path / "one")
    image = _image(store, "x", [{"a": os.urandom(5000)}], compression="none")
    out = tmp_path / "x.tar"
    store.save(["x"], out, format="oci")
    layout = tmp_path / "layout"
    with tarfile.open(out) as tf:
        tf.extractall(layout, filter="data")
    blob = layout / "blobs/sha256" / image.layers[0].digest[7:]
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    other = _store(tmp_path / "two")
    with pytest.raises(DigestMismatch):
        other.load(layout)
    assert not other.content.exists(image.layers[0].digest)
    assert other.list() == []


def test_docker_archive_with_lying_diff_id_is_refused(tmp_path: Path) -> None:
    layer = layer_tar([regular("f", b"x")])
    fake = "sha256:" + hashlib.sha256(b"other").hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [fake]}}).encode()
    out = tmp_path / "lie.tar"
    with tarfile.open(out, "w") as tf:
        for name, data in (("c.json", config), ("l/layer.tar", layer),
                           ("manifest.json", json.dumps([{"Config": "c.json",
                            "RepoTags": ["lie:1"], "Layers": ["l/layer.tar"]}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    store = _store(tmp_path / "s")
    with pytest.raises(DigestMismatch, match="config says"):
        store.load(out)
    assert store.list() == []
    assert store.snapshotter.walk() == []


def test_import_rootfs(tmp_path: Path) -> None:
    tar = compress(layer_tar([directory("bin/"), regular("bin/sh", b"#!", mode=0o755),
                              symlink("sh", "bin/sh")]), "gzip")
    src = tmp_path / "rootfs.tar.gz"
    src.write_bytes(tar)
    store = _store(tmp_path / "s")
    image = store.import_rootfs(src, "imported:1", config={"config": {"Cmd": ["/bin/sh"]}})
    assert image.name == "docker.io/library/imported:1"
    assert len(image.layers) == 1
    assert image.config.config["Cmd"] == ["/bin/sh"]
    assert any(e.startswith("PATH=") for e in image.config.config["Env"])
    assert image.config.platform == AMD64
    layer = store.snapshotter.layer_dir(image.chain_ids[0])
    assert (layer / "bin/sh").read_bytes() == b"#!"
    assert os.readlink(layer / "sh") == "bin/sh"


def test_bad_inputs(tmp_path: Path) -> None:
    store = _store(tmp_path)
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar")
    with pytest.raises(InvalidArgument, match="not a tar"):
        store.load(junk)
    with pytest.raises(NotFound):
        store.load(tmp_path / "missing.tar")
    with pytest.raises(InvalidArgument, match="format"):
        store.save(["x"], tmp_path / "o.tar", format="zip")
