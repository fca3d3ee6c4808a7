"""The merged layer view and USER resolution."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmos.build.rootfs import ExecUser, LowerView, resolve_user

PASSWD = "root:x:0:0::/root:/bin/sh\nwww:x:33:33::/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"
GROUP = "root:x:0:\nwww:x:33:\nadm:x:4:www\nstaff:x:50:www,other\n"


@pytest.mark.parametrize(("spec", "user"), [
    ("", ExecUser(0, 0)),
    ("www", ExecUser(33, 33, (4, 50))),
    ("www:staff", ExecUser(33, 50)),
    ("33", ExecUser(33, 33, (4, 50))),
    ("1234", ExecUser(1234, 0)),
    ("1234:7", ExecUser(1234, 7)),
])
def test_resolve_user(spec: str, user: ExecUser) -> None:
    assert resolve_user(spec, PASSWD, GROUP) == user


def test_unknown_names() -> None:
    with pytest.raises(LookupError, match="unable to find user ghost"):
        resolve_user("ghost", PASSWD, GROUP)
    with pytest.raises(LookupError, match="unable to find group ghost"):
        resolve_user("www:ghost", PASSWD, GROUP)


def test_view_merges_layers_and_resolves_links_inside(tmp_path: Path) -> None:
    top, bottom = tmp_path / "top", tmp_path / "bottom"
    (bottom / "usr" / "bin").mkdir(parents=True)
    (bottom / "usr" / "bin" / "old").write_text("old")
    (top / "usr" / "bin").mkdir(parents=True)
    (top / "usr" / "bin" / "new").write_text("new")
    os.symlink("/usr/bin", top / "bin")
    os.symlink("../../../../etc", top / "escape")  # must stay inside the view
    view = LowerView([top, bottom])
    assert view.listdir("/bin") == ["new", "old"]
    assert view.read_bytes("/bin/old") == b"old"
    assert view.resolve("/escape/passwd") == "/etc/passwd"
    assert view.read_bytes("/escape/passwd") is None
    assert view.is_dir("/bin") and not view.is_dir("/bin/new")
    assert view.lstat("/nope") is None
