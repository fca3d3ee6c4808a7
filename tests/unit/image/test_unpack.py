"""Layer unpacking: contents and metadata, and containment of hostile tars.

Every hostile case fingerprints a sentinel tree next to the layer directory before and after,
so a passing test proves no byte outside the layer changed (not only that no error was raised).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos.image import InvalidArgument, UnsafeLayer, apply_layer
from llmos.image.testing import (
    TarEntry,
    compress,
    directory,
    fifo,
    hardlink,
    layer_tar,
    regular,
    symlink,
    tree_fingerprint,
)


class Sandbox:
    """A layer directory with a sentinel tree beside it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.layer = root / "layer"
        self.outside = root / "outside"
        self.layer.mkdir()
        (self.outside / "etc").mkdir(parents=True)
        (self.outside / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
        (self.outside / "file").write_text("precious\n")
        (self.outside / "dir").mkdir()
        self.before = tree_fingerprint(self.outside)
        self.siblings = sorted(os.listdir(root))
        self.etc_passwd = hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()

    def apply(self, entries: list[TarEntry], **kw: object) -> None:
        apply_layer(io.BytesIO(layer_tar(entries)), self.layer, **kw)  # type: ignore[arg-type]

    def assert_outside_untouched(self) -> None:
        assert tree_fingerprint(self.outside) == self.before
        assert sorted(os.listdir(self.root)) == self.siblings
        assert hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest() == self.etc_passwd


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    (tmp_path / "box").mkdir()
    yield Sandbox(tmp_path / "box")


# -- ordinary layers ---------------------------------------------------------------------

def test_contents_modes_links_and_mtimes(box: Sandbox) -> None:
    box.apply([
        directory("usr/", mode=0o755, mtime=1_600_000_000),
        directory("usr/bin/", mode=0o750, mtime=1_600_000_001),
        regular("usr/bin/tool", b"#!/bin/sh\necho hi\n", mode=0o755, mtime=1_500_000_000),
        hardlink("usr/bin/tool2", "usr/bin/tool"),
        symlink("bin", "usr/bin"),
        fifo("run/pipe", mode=0o620),
        regular("etc/empty", b""),
    ])
    root = box.layer
    tool = root / "usr/bin/tool"
    assert tool.read_bytes() == b"#!/bin/sh\necho hi\n"
    assert stat.S_IMODE(tool.stat().st_mode) == 0o755
    assert tool.stat().st_mtime == 1_500_000_000
    assert (root / "usr/bin/tool2").stat().st_ino == tool.stat().st_ino
    assert os.readlink(root / "bin") == "usr/bin"
    assert stat.S_ISFIFO((root / "run/pipe").lstat().st_mode)
    assert stat.S_IMODE((root / "run/pipe").lstat().st_mode) == 0o620
    # directory mtimes are applied after their children were written
    assert (root / "usr/bin").stat().st_mtime == 1_600_000_001
    assert stat.S_IMODE((root / "usr/bin").stat().st_mode) == 0o750
    assert (root / "etc/empty").read_bytes() == b""
    box.assert_outside_untouched()


@pytest.mark.parametrize("kind", ["none", "gzip", "zstd"])
def test_diff_id_is_digest_of_uncompressed_tar(tmp_path: Path, kind: str) -> None:
    tar = layer_tar([regular("a", b"x" * 5000), directory("d/")])
    (tmp_path / "l").mkdir()
    result = apply_layer(io.BytesIO(compress(tar, kind)), tmp_path / "l")
    assert result.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert result.size == len(tar)
    assert result.entries == 2
    assert (tmp_path / "l/a").read_bytes() == b"x" * 5000


def test_later_entry_replaces_earlier(box: Sandbox) -> None:
    box.apply([
        directory("x/"), regular("x/inner", b"1"),
        regular("x", b"now a file"),           # a directory replaced by a file
        regular("y", b"old"), directory("y/"),  # a file replaced by a directory
    ])
    assert (box.layer / "x").read_bytes() == b"now a file"
    assert (box.layer / "y").is_dir()


def test_implicit_parents_take_attributes_from_lower_layer(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    (lower / "tmp").mkdir(parents=True)
    os.chmod(lower / "tmp", 0o1777)
    upper = tmp_path / "upper"
    upper.mkdir()
    apply_layer(io.BytesIO(layer_tar([regular("tmp/x", b"1"), regular("new/y", b"2")])), upper,
                lowers=[lower])
    assert stat.S_IMODE((upper / "tmp").stat().st_mode) == 0o1777
    assert stat.S_IMODE((upper / "new").stat().st_mode) == 0o755


# -- hostile layers ----------------------------------------------------------------------

def test_dotdot_paths_are_clamped_inside(box: Sandbox) -> None:
    box.apply([regular("../outside/file", b"pwned"), regular("a/../../../../outside/x", b"p")])
    assert (box.layer / "outside/file").read_bytes() == b"pwned"
    assert (box.layer / "outside/x").read_bytes() == b"p"
    box.assert_outside_untouched()


def test_absolute_paths_are_clamped_inside(box: Sandbox) -> None:
    target = str(box.outside / "file")
    box.apply([regular(target, b"pwned"), regular("/etc/passwd", b"pwned")])
    assert (box.layer / target.lstrip("/")).read_bytes() == b"pwned"
    assert (box.layer / "etc/passwd").read_bytes() == b"pwned"
    box.assert_outside_untouched()


@pytest.mark.parametrize("target", ["../outside", "../../../../..", "/", "OUTSIDE"])
def test_write_through_symlinked_parent_stays_inside(box: Sandbox, target: str) -> None:
    target = target.replace("OUTSIDE", str(box.outside))
    box.apply([symlink("esc", target), regular("esc/file", b"pwned"),
               regular("esc/etc/passwd", b"pwned")])
    assert os.readlink(box.layer / "esc") == target  # the link itself is kept verbatim
    written = [p for p in box.layer.rglob("file") if p.is_file()]
    assert [p.read_bytes() for p in written] == [b"pwned"]
    box.assert_outside_untouched()


def test_final_symlink_is_replaced_not_written_through(box: Sandbox) -> None:
    box.apply([symlink("f", str(box.outside / "file")), regular("f", b"pwned"),
               symlink("g", "../outside/file"), regular("g", b"pwned")])
    for name in ("f", "g"):
        assert not (box.layer / name).is_symlink()
        assert (box.layer / name).read_bytes() == b"pwned"
    box.assert_outside_untouched()


@pytest.mark.parametrize("link", ["../outside/file", "/etc/passwd", "OUTSIDE/file", "d/file"])
def test_hard_link_to_outside_is_refused(box: Sandbox, link: str) -> None:
    link = link.replace("OUTSIDE", str(box.outside))
    with pytest.raises(UnsafeLayer, match=r"not in this layer|does not exist"):
        box.apply([symlink("d", str(box.outside)), hardlink("h", link)])
    box.assert_outside_untouched()


def test_hard_link_refusal_names_entry_and_target(box: Sandbox) -> None:
    with pytest.raises(UnsafeLayer) as refused:
        box.apply([hardlink("h", "/etc/passwd")])
    assert str(refused.value) == \
        "h: hard link target '/etc/passwd': etc does not exist in this layer"
    box.assert_outside_untouched()


def test_hard_link_through_symlink_to_layer_file_is_contained(box: Sandbox) -> None:
    box.apply([regular("etc/passwd", b"inside"), symlink("d", "/etc"),
               hardlink("h", "d/passwd")])
    assert (box.layer / "h").read_bytes() == b"inside"
    assert (box.layer / "h").stat().st_ino == (box.layer / "etc/passwd").stat().st_ino
    box.assert_outside_untouched()


def test_file_under_directory_replaced_by_symlink(box: Sandbox) -> None:
    box.apply([directory("dir/"), regular("dir/a", b"1"),
               symlink("dir", str(box.outside / "dir")), regular("dir/file", b"pwned")])
    assert (box.layer / "dir").is_symlink()
    assert (box.layer / str(box.outside / "dir").lstrip("/") / "file").read_bytes() == b"pwned"
    box.assert_outside_untouched()


def test_symlink_loop_is_refused(box: Sandbox) -> None:
    with pytest.raises(UnsafeLayer, match="too many levels"):
        box.apply([symlink("a", "b"), symlink("b", "a"), regular("a/x", b"1")])
    box.assert_outside_untouched()


def test_file_as_parent_is_refused(box: Sandbox) -> None:
    with pytest.raises(UnsafeLayer, match="not a directory"):
        box.apply([regular("f", b"1"), regular("f/x", b"1")])


def test_whiteout_of_dotdot_is_refused(box: Sandbox) -> None:
    with pytest.raises(UnsafeLayer):
        box.apply([regular("a/.wh...", b"")])
    box.assert_outside_untouched()


def test_huge_sparse_file_costs_no_disk(box: Sandbox, tmp_path: Path) -> None:
    if shutil.which("tar") is None:
        pytest.skip("GNU tar is needed to write a sparse archive")
    src = tmp_path / "src"
    src.mkdir()
    size = 100 << 30  # 100 GiB
    with open(src / "big", "wb") as f:
        f.truncate(size)
        f.seek(size // 2)
        f.write(b"needle")
    tar = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", "--format=posix", "-cf", str(tar), "-C", str(src),
                    "big"], check=True)
    (src / "big").unlink()
    assert tar.stat().st_size < 1 << 20
    with open(tar, "rb") as f:
        apply_layer(f, box.layer)
    st = (box.layer / "big").stat()
    assert st.st_size == size
    assert st.st_blocks * 512 < 1 << 20
    with open(box.layer / "big", "rb") as f:
        f.seek(size // 2)
        assert f.read(6) == b"needle"
    box.assert_outside_untouched()


def test_zero_bomb_is_written_as_holes(box: Sandbox) -> None:
    zeros = bytes(64 << 20)
    box.apply([regular("bomb", zeros)])
    st = (box.layer / "bomb").stat()
    assert st.st_size == len(zeros)
    assert st.st_blocks * 512 < 1 << 20


def test_max_file_size_refuses_big_files(box: Sandbox) -> None:
    with pytest.raises(UnsafeLayer, match="exceeds the limit"):
        box.apply([regular("big", b"x" * 1000)], max_file_size=999)


# -- broken input ------------------------------------------------------------------------

def test_truncated_tar_is_refused(tmp_path: Path) -> None:
    tar = layer_tar([regular("a", b"x" * 100_000)])
    (tmp_path / "l").mkdir()
    with pytest.raises(InvalidArgument, match=r"truncated|corrupt|ends inside"):
        apply_layer(io.BytesIO(tar[:50_000]), tmp_path / "l")


def test_corrupt_gzip_is_refused(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(layer_tar([regular("a", os.urandom(10_000))])))
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "l").mkdir()
    with pytest.raises(InvalidArgument):
        apply_layer(io.BytesIO(bytes(data)), tmp_path / "l")


def test_not_a_tar_is_refused(tmp_path: Path) -> None:
    (tmp_path / "l").mkdir()
    with pytest.raises(InvalidArgument):
        apply_layer(io.BytesIO(b"hello, I am not a tar" * 100), tmp_path / "l")


def test_tarfile_sparse_gnu_old_format(box: Sandbox, tmp_path: Path) -> None:
    """GNU's old sparse header type 'S' too (tar --sparse without --format=posix)."""
    if shutil.which("tar") is None:
        pytest.skip("GNU tar needed")
    src = tmp_path / "src2"
    src.mkdir()
    with open(src / "s", "wb") as f:
        f.truncate(10 << 30)
        f.write(b"head")
    tar = tmp_path / "gnu.tar"
    subprocess.run(["tar", "--sparse", "--format=gnu", "-cf", str(tar), "-C", str(src), "s"],
                   check=True)
    with tarfile.open(tar) as tf:
        assert tf.getmembers()[0].type == tarfile.GNUTYPE_SPARSE
    with open(tar, "rb") as f:
        apply_layer(f, box.layer)
    assert (box.layer / "s").stat().st_size == 10 << 30
    with open(box.layer / "s", "rb") as f:
        assert f.read(4) == b"head"
