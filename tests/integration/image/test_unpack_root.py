"""Unpacking as root: ownership, setuid, device nodes, xattrs and whiteouts in overlay form."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from llmos.image import apply_layer
from llmos.image.testing import (
    chardev,
    directory,
    layer_tar,
    opaque,
    regular,
    symlink,
    whiteout,
)

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod, xattrs)")]


def test_ownership_modes_devices_xattrs(tmp_path: Path) -> None:
    tar = layer_tar([
        directory("home/u/", mode=0o700, uid=1000, gid=1000),
        regular("home/u/f", b"x", mode=0o640, uid=1000, gid=100),
        regular("bin/su", b"su", mode=0o4755, uid=0, gid=0),
        regular("bin/ping", b"p", mode=0o755,
                xattrs={"security.capability": bytes.fromhex(
                    "0000000200200000000000000000000000000000"), "user.note": b"hello"}),
        regular("evil", b"e", xattrs={"trusted.overlay.redirect": b"/etc",
                                      "trusted.overlay.opaque": b"y"}),
        chardev("dev/null", 1, 3, mode=0o666),
        symlink("home/link", "u", uid=1000, gid=1000),
    ])
    apply_layer(io.BytesIO(tar), tmp_path)
    st = (tmp_path / "home/u").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o700)
    st = (tmp_path / "home/u/f").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 100, 0o640)
    assert stat.S_IMODE((tmp_path / "bin/su").stat().st_mode) == 0o4755  # setuid survives chown
    assert os.getxattr(tmp_path / "bin/ping", "user.note") == b"hello"
    assert os.getxattr(tmp_path / "bin/ping", "security.capability")[:4] == b"\0\0\0\x02"
    assert not [a for a in os.listxattr(tmp_path / "evil") if a.startswith("trusted.overlay")]
    dev = (tmp_path / "dev/null").lstat()
    assert stat.S_ISCHR(dev.st_mode) and os.major(dev.st_rdev) == 1 and os.minor(dev.st_rdev) == 3
    link = (tmp_path / "home/link").lstat()
    assert (link.st_uid, link.st_gid) == (1000, 1000)


def test_whiteouts_become_overlay_whiteouts(tmp_path: Path) -> None:
    tar = layer_tar([whiteout("etc/gone"), directory("var/"), opaque("var"),
                     regular("var/new", b"n"), regular("top/.wh..wh.plnk", b"")])
    apply_layer(io.BytesIO(tar), tmp_path)
    wh = (tmp_path / "etc/gone").lstat()
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == os.makedev(0, 0)
    assert not (tmp_path / "etc/.wh.gone").exists()
    assert os.getxattr(tmp_path / "var", "trusted.overlay.opaque") == b"y"
    assert (tmp_path / "var/new").read_bytes() == b"n"
    assert not (tmp_path / "var/.wh..wh..opq").exists()
    assert not (tmp_path / "top/.wh..wh.plnk").exists()
