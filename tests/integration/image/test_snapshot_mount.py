"""The snapshotter's mount descriptions really mount, and whiteouts really hide files."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from llmos.image import ImageStore, Platform
from llmos.image.testing import compress, directory, layer_tar, opaque, regular, whiteout

from .mounting import mount_and_list

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for overlay mounts")]


def _store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "store", platform=Platform("linux", "amd64"))


def test_whiteouts_hide_files_in_the_container_view(tmp_path: Path) -> None:
    store = _store(tmp_path)
    layers = [
        [directory("d/"), regular("d/a", b"a"), regular("d/b", b"b"), regular("f", b"f"),
         directory("o/"), regular("o/x", b"x"), regular("o/y", b"y"),
         directory("gone/"), regular("gone/deep", b"1")],
        [whiteout("d/a"), whiteout("f"), directory("o/"), opaque("o"), regular("o/z", b"z"),
         whiteout("gone")],
        [regular("d/c", b"c"), regular("f", b"back")],
    ]
    blobs = [store.add_layer(io.BytesIO(compress(layer_tar(entries), "gzip")))
             for entries in layers]
    image = store.commit_image("wh", {}, blobs)
    target = tmp_path / "rootfs"
    target.mkdir()
    mounts = store.snapshotter.prepare("ctr", image.chain_id)
    view = mount_and_list(mounts, target, write={"new": "written"})
    assert view == {"d": "dir", "o": "dir", "f": "back", "new": "written",
                    "d/b": "b", "d/c": "c", "o/z": "z"}
    # the container's write went to its own upper directory, not to a shared layer
    assert (store.snapshotter.upper_dir("ctr") / "new").read_text() == "written"
    store.snapshotter.remove("ctr")
    assert not os.path.ismount(target)


def test_view_of_single_layer_is_read_only(tmp_path: Path) -> None:
    store = _store(tmp_path)
    blob = store.add_layer(io.BytesIO(layer_tar([regular("a", b"1")])))
    image = store.commit_image("one", {}, [blob])
    target = tmp_path / "rootfs"
    target.mkdir()
    mounts = store.snapshotter.view("v", image.chain_id)  # type: ignore[arg-type]
    assert mount_and_list(mounts, target) == {"a": "1"}
    with pytest.raises(RuntimeError, match="Read-only file system"):
        mount_and_list(mounts, target, write={"b": "x"})


def test_long_layer_stack_mounts_with_chdir(tmp_path: Path) -> None:
    # a deep store path makes absolute lowerdirs overflow the one-page mount data
    root = tmp_path / ("deep-" * 10) / "store"
    store = ImageStore(root, platform=Platform("linux", "amd64"))
    n = 120
    blobs = [store.add_layer(io.BytesIO(layer_tar([regular(f"f{i}", str(i).encode())])),
                             compression="none") for i in range(n)]
    image = store.commit_image("tall", {}, blobs)
    mounts = store.snapshotter.prepare("ctr", image.chain_id)
    assert mounts[0].chdir is not None
    target = tmp_path / "rootfs"
    target.mkdir()
    view = mount_and_list(mounts, target)
    assert view == {f"f{i}": str(i) for i in range(n)}
