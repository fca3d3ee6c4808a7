"""A container of an image with more layers than absolute lowerdir paths fit in one page of
mount data, run through the engine: the layers are loaded with `image.load`, the engine
prepares the snapshot, plan.overlay_mounts shortens the lowerdirs (chdir + relative paths) and
the C side mounts the overlay in the container's mount namespace.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmos.image import ImageStore, Platform
from llmos.image.testing import directory, layer_tar, opaque, regular, whiteout
from llmos.plan import Overlay, overlay_mounts
from tests.integration.conftest import make_busybox_rootfs
from tests.integration.engine.conftest import cleanup

pytestmark = pytest.mark.root

LAYERS = 130
DOOMED_IN, WHITEOUT_IN = 30, 65  # a file made in one middle layer, deleted in a later one
OPAQUE_IN = 70  # /odir (filled in the lowest layer) made opaque here


def tall_image_archive(work: Path) -> Path:
    """A docker-archive of `tall:1`: busybox and /stack/bottom in the lowest layer, one
    /stack/fN per layer, a whiteout and an opaque directory in the middle, /stack/top in
    the highest."""
    rootfs = make_busybox_rootfs(work / "rootfs")
    (rootfs / "stack").mkdir()
    (rootfs / "stack" / "bottom").write_text("lowest layer\n")
    (rootfs / "odir").mkdir()
    (rootfs / "odir" / "old").write_text("old\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(rootfs, arcname=".")
    tars = [buf.getvalue()]
    for i in range(1, LAYERS):
        entries = [directory("stack/"), regular(f"stack/f{i}", f"{i}\n".encode())]
        if i == DOOMED_IN:
            entries.append(regular("stack/doomed", b"should be hidden\n"))
        if i == WHITEOUT_IN:
            entries.append(whiteout("stack/doomed"))
        if i == OPAQUE_IN:
            entries += [directory("odir/"), opaque("odir"), regular("odir/new", b"new\n")]
        if i == LAYERS - 1:
            entries.append(regular("stack/top", b"highest layer\n"))
        tars.append(layer_tar(entries))
    store = ImageStore(work / "store", platform=Platform("linux", "amd64"))
    blobs = [store.add_layer(io.BytesIO(t), compression="none") for t in tars]
    store.commit_image("tall:1", {"config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]}}, blobs)
    out = work / "tall.tar"
    store.save(["tall:1"], out, format="docker-archive")
    return out


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Any]:
    from llmos.client import Client

    emb = tmp_path / "emb"
    cl = Client.embedded(root=str(emb / "lib"), run_root=str(emb / "run"))
    try:
        yield cl
    finally:
        cleanup(emb)


def test_container_of_a_130_layer_image_sees_lowest_highest_and_whiteouts(
        client: Any, tmp_path: Path) -> None:
    archive = tall_image_archive(tmp_path / "build")
    loaded = client.transport.call("image.load", {"path": str(archive)})
    assert loaded == {"Loaded": ["docker.io/library/tall:1"]}
    script = ("cat /stack/bottom /stack/top /stack/f1 /stack/f64 /stack/f129;"
              " ls /stack | wc -l;"
              " test -e /stack/doomed && echo doomed-visible || echo doomed-hidden;"
              " ls /odir;"
              " echo written >> /stack/bottom && tail -n 1 /stack/bottom")
    c = client.containers.run("tall:1", ["sh", "-c", script], detach=True)
    try:
        assert c.wait(timeout=60)["StatusCode"] == 0, c.logs(stdout=True, stderr=True)
        out = c.logs(stdout=True, stderr=True).decode()
        assert out.splitlines() == [
            "lowest layer", "highest layer", "1", "64", "129",
            str(LAYERS - 1 + 2),  # f1..f129, bottom and top; doomed is gone
            "doomed-hidden",
            "new",  # the opaque directory hides odir/old of the lowest layer
            "written",
        ]
        # the lowerdir list really was too long for one page as absolute paths: the
        # container was mounted through the chdir + relative-paths route
        ov = c.attrs["Overlay"]
        assert len(ov["lower"]) == LAYERS
        assert len(":".join(ov["lower"])) > 4096
        _, cwd = overlay_mounts(Overlay(ov["lower"], ov["upper"], ov["work"]), "/rootfs")
        assert cwd is not None
        # the container's write went to its own upper directory, not to the shared layer
        assert (Path(ov["upper"]) / "stack" / "bottom").read_text().endswith("written\n")
        assert (Path(ov["lower"][-1]) / "stack" / "bottom").read_text() == "lowest layer\n"
    finally:
        c.remove(force=True)
