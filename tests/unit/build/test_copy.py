"""COPY planning: Docker's destination rules, owners, modes and the cache digest (no root:
the image is a LowerView over plain directories)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmos.build import ContextError, Matcher
from llmos.build.copy import SourceTree, parse_chown, plan_copy, plan_mkdir
from llmos.build.rootfs import LowerView


@pytest.fixture
def image(tmp_path: Path) -> LowerView:
    layer = tmp_path / "layer"
    (layer / "usr" / "bin").mkdir(parents=True)
    (layer / "etc").mkdir()
    (layer / "srv").mkdir(mode=0o700)
    os.symlink("usr/bin", layer / "bin")
    (layer / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/:/bin/sh\n")
    (layer / "etc" / "group").write_text("root:x:0:\nstaff:x:50:app\n")
    return LowerView([layer])


@pytest.fixture
def ctx(tmp_path: Path) -> SourceTree:
    d = tmp_path / "ctx"
    (d / "dir" / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("a")
    (d / "b.txt").write_text("b")
    (d / "dir" / "sub" / "c").write_text("c")
    (d / "secret").write_text("s")
    os.chmod(d / "a.txt", 0o640)
    return SourceTree.context(d, Matcher.from_lines(["secret"]))


def paths(plan: object) -> list[tuple[str, str]]:
    return [(e.path, e.kind) for e in plan.entries]  # type: ignore[attr-defined]


def test_file_into_directory_and_as_a_name(ctx: SourceTree, image: LowerView) -> None:
    into = plan_copy([(ctx, "a.txt")], "/srv/", workdir="/", image=image)
    assert paths(into) == [("srv", "dir"), ("srv/a.txt", "file")]
    assert into.entries[0].mode == 0o700  # an existing parent keeps its attributes
    named = plan_copy([(ctx, "a.txt")], "/new/name", workdir="/", image=image)
    assert paths(named) == [("new", "dir"), ("new/name", "file")]
    existing_dir = plan_copy([(ctx, "a.txt")], "/srv", workdir="/", image=image)
    assert paths(existing_dir)[-1] == ("srv/a.txt", "file")


def test_relative_destination_and_symlinked_directory(ctx: SourceTree, image: LowerView) -> None:
    plan = plan_copy([(ctx, "a.txt")], "x/", workdir="/srv", image=image)
    assert paths(plan)[-1] == ("srv/x/a.txt", "file")
    via_link = plan_copy([(ctx, "a.txt")], "/bin/", workdir="/", image=image)
    assert paths(via_link)[-1] == ("usr/bin/a.txt", "file")


def test_directory_copies_its_contents(ctx: SourceTree, image: LowerView) -> None:
    plan = plan_copy([(ctx, "dir")], "/app", workdir="/", image=image)
    assert paths(plan) == [("app", "dir"), ("app/sub", "dir"), ("app/sub/c", "file")]


def test_globs_multiple_sources_and_ignored_files(ctx: SourceTree, image: LowerView) -> None:
    plan = plan_copy([(ctx, "*.txt")], "/d/", workdir="/", image=image)
    assert [p for p, k in paths(plan) if k == "file"] == ["d/a.txt", "d/b.txt"]
    with pytest.raises(ContextError, match="must be a directory"):
        plan_copy([(ctx, "*.txt")], "/d", workdir="/", image=image)
    with pytest.raises(ContextError, match="dockerignore"):
        plan_copy([(ctx, "secret")], "/", workdir="/", image=image)
    whole = plan_copy([(ctx, ".")], "/all/", workdir="/", image=image)
    assert "all/secret" not in [p for p, _ in paths(whole)]
    with pytest.raises(ContextError, match="outside"):
        plan_copy([(ctx, "../x")], "/", workdir="/", image=image)


def test_owner_mode_and_digest(ctx: SourceTree, image: LowerView) -> None:
    plain = plan_copy([(ctx, "a.txt")], "/a", workdir="/", image=image)
    entry = plain.entries[-1]
    assert (entry.uid, entry.gid, entry.mode) == (0, 0, 0o640)
    owned = plan_copy([(ctx, "a.txt")], "/a", workdir="/", image=image,
                      owner=parse_chown("app:staff", image), chmod=0o755)
    assert (owned.entries[-1].uid, owned.entries[-1].gid, owned.entries[-1].mode) == \
        (1000, 50, 0o755)
    assert plain.digest() != owned.digest()
    assert plain.digest() == plan_copy([(ctx, "a.txt")], "/a", workdir="/", image=image).digest()


def test_parse_chown(image: LowerView) -> None:
    assert parse_chown("app", image) == (1000, 1000)  # Docker: the uid doubles as gid
    assert parse_chown("5:6", image) == (5, 6)
    with pytest.raises(ContextError, match="unable to find user"):
        parse_chown("nobody", image)
    with pytest.raises(ContextError, match="unable to find group"):
        parse_chown("app:nogroup", image)


def test_mkdir_plan(image: LowerView) -> None:
    assert paths(plan_mkdir("/bin/tool/dir", image)) == [
        ("usr", "dir"), ("usr/bin", "dir"), ("usr/bin/tool", "dir"), ("usr/bin/tool/dir", "dir")]


def test_chown_owns_the_directories_the_copy_creates(ctx: SourceTree, image: LowerView) -> None:
    owner = parse_chown("app:staff", image)
    plan = plan_copy([(ctx, "a.txt")], "/srv/new/deep/", workdir="/", image=image, owner=owner)
    assert [(e.path, e.uid, e.gid) for e in plan.entries] == [
        ("srv", 0, 0),  # existed: as the image has it
        ("srv/new", 1000, 50), ("srv/new/deep", 1000, 50),
        ("srv/new/deep/a.txt", 1000, 50)]
    tree = plan_copy([(ctx, "dir")], "/made/app", workdir="/", image=image, owner=owner)
    assert {(e.path, e.uid, e.gid) for e in tree.entries} == {
        ("made", 1000, 50), ("made/app", 1000, 50), ("made/app/sub", 1000, 50),
        ("made/app/sub/c", 1000, 50)}
    plain = plan_copy([(ctx, "a.txt")], "/srv/new/", workdir="/", image=image)
    assert plain.entries[1].path == "srv/new" and (plain.entries[1].uid,
                                                   plain.entries[1].gid) == (0, 0)
