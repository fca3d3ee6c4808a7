"""Snapshotter conformance: lifecycle rules and the pure mount descriptions.

Written as a suite over a factory (containerd's SnapshotterSuite) so a second snapshotter
(e.g. a plain-copy one for kernels without overlay) runs the same checks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from llmos.image import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from llmos.image.snapshot import MAX_LOWER_LAYERS, Mount, Snapshotter, overlay_mounts

Factory = Callable[[Path], Snapshotter]
FACTORIES: list[Factory] = [Snapshotter]


@pytest.fixture(params=FACTORIES, ids=lambda f: f.__name__)
def sn(request: pytest.FixtureRequest, tmp_path: Path) -> Snapshotter:
    factory: Factory = request.param
    return factory(tmp_path / "snap")


def _chain(sn: Snapshotter, n: int, prefix: str = "layer") -> list[str]:
    """Commit n stacked snapshots, each with one file; return their names bottom first."""
    names: list[str] = []
    for i in range(n):
        key = f"unpack-{prefix}-{i}"
        sn.prepare(key, names[-1] if names else None)
        (sn.upper_dir(key) / f"f{i}").write_text(str(i))
        name = f"{prefix}-{i}"
        sn.commit(name, key)
        names.append(name)
    return names


def test_prepare_without_parent_is_a_writable_bind(sn: Snapshotter) -> None:
    mounts = sn.prepare("c1")
    assert mounts == [Mount("bind", str(sn.upper_dir("c1")), ("rbind", "rw"))]
    assert sn.mounts("c1") == mounts
    assert sn.stat("c1").kind == "active"


def test_prepare_on_one_layer_is_overlay_with_upper_and_work(sn: Snapshotter) -> None:
    (base,) = _chain(sn, 1)
    (m,) = sn.prepare("c1", base)
    assert m.type == "overlay" and m.source == "overlay" and m.chdir is None
    opts = dict(o.split("=", 1) for o in m.options)
    assert opts["lowerdir"] == str(sn.layer_dir(base))
    assert opts["upperdir"] == str(sn.upper_dir("c1"))
    assert opts["workdir"].endswith("/work") and Path(opts["workdir"]).is_dir()
    assert opts["index"] == "off"


def test_lowerdir_order_is_top_layer_first(sn: Snapshotter) -> None:
    names = _chain(sn, 3)
    (m,) = sn.prepare("c", names[-1])
    lower = next(o for o in m.options if o.startswith("lowerdir="))[len("lowerdir="):]
    assert lower.split(":") == [str(sn.layer_dir(n)) for n in reversed(names)]
    assert sn.lower_dirs("c") == [sn.layer_dir(n) for n in reversed(names)]


def test_view_of_one_layer_is_read_only_bind_and_of_many_is_lower_only(sn: Snapshotter) -> None:
    names = _chain(sn, 2)
    assert sn.view("v1", names[0]) == [Mount("bind", str(sn.layer_dir(names[0])),
                                             ("rbind", "ro"))]
    (m,) = sn.view("v2", names[1])
    assert m.type == "overlay"
    assert not any(o.startswith(("upperdir=", "workdir=")) for o in m.options)


def test_layers_are_shared_between_images(sn: Snapshotter) -> None:
    base = _chain(sn, 1, "base")
    sn.prepare("img-a-top", base[0])
    sn.commit("a", "img-a-top")
    sn.prepare("img-b-top", base[0])
    sn.commit("b", "img-b-top")
    assert sn.stat("a").parent == sn.stat("b").parent == base[0]
    with pytest.raises(FailedPrecondition, match="has children"):
        sn.remove(base[0])
    sn.remove("a")
    sn.remove("b")
    sn.remove(base[0])
    assert sn.walk() == []


def test_lifecycle_errors(sn: Snapshotter) -> None:
    names = _chain(sn, 1)
    sn.prepare("c", names[0])
    with pytest.raises(AlreadyExists):
        sn.prepare("c", names[0])
    with pytest.raises(NotFound):
        sn.prepare("d", "no-such-parent")
    with pytest.raises(FailedPrecondition, match="only committed"):
        sn.prepare("d", "c")
    with pytest.raises(FailedPrecondition, match="committed"):
        sn.mounts(names[0])
    with pytest.raises(FailedPrecondition, match="not active"):
        sn.commit("x", names[0])
    with pytest.raises(AlreadyExists):
        sn.commit(names[0], "c")
    with pytest.raises(NotFound):
        sn.remove("nope")
    with pytest.raises(InvalidArgument):
        sn.prepare("")


def test_commit_keeps_files_and_drops_workdir(sn: Snapshotter) -> None:
    sn.prepare("k")
    (sn.upper_dir("k") / "hello").write_text("hi")
    sn.commit("chain", "k")
    assert (sn.layer_dir("chain") / "hello").read_text() == "hi"
    assert not (sn.layer_dir("chain").parent / "work").exists()
    assert not sn.exists("k")
    assert sn.usage("chain") > 0


def test_remove_deletes_files_and_cleanup_sweeps_orphans(sn: Snapshotter) -> None:
    sn.prepare("k")
    d = sn.upper_dir("k").parent
    sn.remove("k")
    assert not d.exists()
    orphan = sn.snapshots_dir / "999"
    orphan.mkdir()
    assert sn.cleanup() == [orphan]
    assert not orphan.exists()


def test_metadata_survives_reopen(sn: Snapshotter) -> None:
    names = _chain(sn, 2)
    again = Snapshotter(sn.root)
    assert [i.key for i in again.walk()] == names
    assert again.stat(names[1]).parent == names[0]


# -- the pure mount function ----------------------------------------------------------

def test_long_stacks_become_relative_with_chdir() -> None:
    base = "/var/lib/llmos/image/snapshots/snapshots"
    ids = list(range(1000, 1000 + 200))
    (m,) = overlay_mounts(base, "active", 5000, ids)
    assert m.chdir == base
    assert len(m.data) + 1 <= 4096
    lower = next(o for o in m.options if o.startswith("lowerdir="))
    assert lower == "lowerdir=" + ":".join(f"{i}/fs" for i in ids)
    assert "upperdir=5000/fs" in m.options and "workdir=5000/work" in m.options


def test_short_stacks_stay_absolute() -> None:
    (m,) = overlay_mounts("/s", "active", 9, [1, 2])
    assert m.chdir is None
    assert "lowerdir=/s/1/fs:/s/2/fs" in m.options


def test_too_many_layers_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="at most 500"):
        overlay_mounts("/s", "active", 1, list(range(MAX_LOWER_LAYERS + 1)))
    with pytest.raises(InvalidArgument, match="do not fit"):
        overlay_mounts("/s", "view", None, list(range(10**9, 10**9 + 400)))


def test_maximum_stack_fits_with_chdir(sn: Snapshotter) -> None:
    names = _chain(sn, MAX_LOWER_LAYERS, "deep")
    (m,) = sn.prepare("c", names[-1])
    assert m.chdir == str(sn.snapshots_dir)
    assert len(m.data) < 4096
