"""COPY and ADD: which files go where, with what owner and mode, and the digest of all that.

Why plan first and write later: the cache key of a COPY step is the digest of exactly what the
new layer would hold (paths, types, modes, owners, link targets, file contents; not mtimes,
as in Docker), so the plan is computed, digested, and only written as a tar on a cache miss.

Docker's destination rules, implemented in `plan_copy`:
- a relative destination is relative to WORKDIR;
- a destination ending in `/` (or `.`), or one that is a directory in the image, receives
  sources by their base name; otherwise a single file source is written *as* the destination;
- several sources (globs included) need a directory destination;
- a directory source copies its contents, not itself;
- symlinks in the destination path are followed inside the image (`/bin` -> `usr/bin`);
- context files are owned by 0:0 unless `--chown`; files from another stage or image keep
  their owner unless `--chown`; `--chown=user` alone uses the user's uid as the gid;
- ADD of a local tar archive (plain, gzip, bzip2, xz) unpacks it into the destination;
  ADD of an http(s) URL downloads it (mode 0600, never unpacked, --checksum checked).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

from .dockerignore import Matcher
from .errors import ContextError
from .layer import LayerWriter
from .rootfs import LowerView, parse_group, parse_passwd

__all__ = ["CopyEntry", "CopyPlan", "SourceTree", "parse_chown", "plan_copy", "plan_mkdir",
           "write_copy_tar"]

_GLOB = set("*?[")


@dataclass(frozen=True)
class CopyEntry:
    """One entry of the new layer. `source` is the host file to read for a regular file;
    `data` inline content (heredocs); `archive` a tar to unpack under `path`.
    """

    path: str
    kind: str  # "dir" | "file" | "symlink" | "archive"
    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    mtime: float = 0
    source: Path | None = None
    link: str = ""
    data: bytes | None = None
    xattrs: dict[str, bytes] = field(default_factory=dict)


@dataclass
class CopyPlan:
    """Entries in write order (parents first)."""

    entries: list[CopyEntry]

    def digest(self) -> str:
        """What the cache key covers: everything the layer holds except mtimes."""
        h = hashlib.sha256()
        for e in self.entries:
            h.update(f"{e.kind}\0{e.path}\0{e.mode:o}\0{e.uid}:{e.gid}\0{e.link}\0".encode())
            for k in sorted(e.xattrs):
                h.update(k.encode() + b"=" + e.xattrs[k] + b"\0")
            if e.data is not None:
                h.update(hashlib.sha256(e.data).digest())
            elif e.source is not None:
                h.update(_file_digest(e.source))
            h.update(b"\n")
        return "sha256:" + h.hexdigest()


def _file_digest(path: Path) -> bytes:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.digest()


class SourceTree:
    """Where COPY reads from: the build context (with .dockerignore applied, owners reset) or
    an earlier stage's / another image's files (owners kept).
    """

    def __init__(self, view: LowerView, *, matcher: Matcher | None = None,
                 keep_owner: bool, what: str) -> None:
        self.view = view
        self.matcher = matcher
        self.keep_owner = keep_owner
        self.what = what

    @classmethod
    def context(cls, root: str | os.PathLike[str], matcher: Matcher) -> SourceTree:
        """The build context directory."""
        return cls(LowerView([root]), matcher=matcher, keep_owner=False,
                   what="build context")

    def excluded(self, rel: str) -> bool:
        """True if .dockerignore hides `rel`."""
        return self.matcher is not None and self.matcher.excluded(rel)

    def expand(self, pattern: str) -> list[str]:
        """Paths matching a source (glob) pattern, relative to the tree root."""
        clean = posixpath.normpath("/" + pattern).lstrip("/")
        if posixpath.normpath(pattern.lstrip("/") or ".").split("/")[0] == "..":
            raise ContextError(f"{pattern}: forbidden path outside the {self.what}")
        comps = [c for c in clean.split("/") if c]
        if not any(_GLOB & set(c) for c in comps):
            rel = "/".join(comps)
            if (rel and self.excluded(rel)) or self.view.stat(rel or "/") is None:
                raise ContextError(f"{pattern}: not found in the {self.what}"
                                   + (" (or excluded by .dockerignore)" if self.matcher else ""))
            return [rel]
        matches = [""]
        for comp in comps:
            nxt: list[str] = []
            for base in matches:
                if _GLOB & set(comp):
                    if not self.view.is_dir(base or "/"):
                        continue
                    names = [n for n in self.view.listdir(base or "/")
                             if fnmatch.fnmatchcase(n, comp)]
                else:
                    names = [comp]
                for n in names:
                    rel = f"{base}/{n}" if base else n
                    if self.view.lstat(rel) is not None and not self.excluded(rel):
                        nxt.append(rel)
            matches = nxt
        if not matches:
            raise ContextError(f"{pattern}: no source files were specified (nothing in the "
                               f"{self.what} matches)")
        return sorted(matches)


def parse_chown(spec: str, view: LowerView) -> tuple[int, int]:
    """`--chown=user[:group]` (names from the image's /etc/passwd and /etc/group)."""
    user, _, group = spec.partition(":")
    passwd = (view.read_bytes("/etc/passwd") or b"").decode(errors="replace")
    groups = (view.read_bytes("/etc/group") or b"").decode(errors="replace")
    if user.isdigit():
        uid = int(user)
    else:
        found = [u for n, u, _g in parse_passwd(passwd) if n == user]
        if not found:
            raise ContextError(f"--chown={spec}: unable to find user {user!r} in the image's "
                               "/etc/passwd")
        uid = found[0]
    if not group:
        return uid, uid
    if group.isdigit():
        return uid, int(group)
    gids = [g for n, g, _m in parse_group(groups) if n == group]
    if not gids:
        raise ContextError(f"--chown={spec}: unable to find group {group!r} in the image's "
                           "/etc/group")
    return uid, gids[0]


def _is_archive(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


@dataclass
class _Planner:
    image: LowerView
    owner: tuple[int, int] | None
    chmod: int | None
    entries: list[CopyEntry] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def add(self, e: CopyEntry) -> None:
        if e.path in self.seen and e.kind == "dir":
            return
        self.seen.add(e.path)
        self.entries.append(e)

    def parents(self, path: str) -> None:
        """Directory entries for every ancestor of `path` (already resolved in the image):
        existing ones as the image has them, missing ones 0755 and owned by root, or by the
        --chown owner (BuildKit's MkdirAll chowns the directories a COPY creates).
        """
        comps = [c for c in path.split("/") if c][:-1]
        for i in range(len(comps)):
            d = "/".join(comps[: i + 1])
            self.dest_dir(d)

    def dest_dir(self, d: str, like: os.stat_result | None = None,
                 xattrs: dict[str, bytes] | None = None, keep_owner: bool = False) -> None:
        if not d or d in self.seen:
            return
        st = self.image.lstat(d)
        if st is not None and stat.S_ISDIR(st.st_mode):
            self.add(CopyEntry(d, "dir", st.st_mode & 0o7777, st.st_uid, st.st_gid,
                               st.st_mtime))
        elif like is not None:
            uid, gid = self._owner(like, keep_owner)
            self.add(CopyEntry(d, "dir", self._mode(like.st_mode), uid, gid, like.st_mtime,
                               xattrs=xattrs or {}))
        else:
            self.add(CopyEntry(d, "dir", 0o755, *(self.owner or (0, 0)), 0))

    def _owner(self, st: os.stat_result, keep: bool) -> tuple[int, int]:
        if self.owner is not None:
            return self.owner
        return (st.st_uid, st.st_gid) if keep else (0, 0)

    def _mode(self, mode: int) -> int:
        return self.chmod if self.chmod is not None else mode & 0o7777

    def one(self, tree: SourceTree, rel: str, target: str, st: os.stat_result,
            real: Path) -> None:
        uid, gid = self._owner(st, tree.keep_owner)
        xattrs = _xattrs(real) if tree.keep_owner else {}
        if stat.S_ISREG(st.st_mode):
            self.add(CopyEntry(target, "file", self._mode(st.st_mode), uid, gid, st.st_mtime,
                               source=real, xattrs=xattrs))
        elif stat.S_ISLNK(st.st_mode):
            self.add(CopyEntry(target, "symlink", 0o777, uid, gid, st.st_mtime,
                               link=os.readlink(real), xattrs=xattrs))
        elif stat.S_ISDIR(st.st_mode):
            self.add(CopyEntry(target, "dir", self._mode(st.st_mode), uid, gid, st.st_mtime,
                               xattrs=xattrs))
        # sockets, fifos and devices are not copied (Docker skips them from the context)

    def tree(self, tree: SourceTree, rel: str, target: str) -> None:
        for child in tree.view.listdir(rel or "/"):
            crel = f"{rel}/{child}" if rel else child
            if tree.excluded(crel):
                if tree.matcher is not None and tree.matcher.may_include_below(crel):
                    st = tree.view.lstat(crel)
                    if st is not None and stat.S_ISDIR(st.st_mode):
                        self.tree(tree, crel, f"{target}/{child}")
                continue
            real = tree.view.find(crel, follow=False)
            if real is None:
                continue
            st = real.lstat()
            self.one(tree, crel, f"{target}/{child}", st, real)
            if stat.S_ISDIR(st.st_mode):
                self.tree(tree, crel, f"{target}/{child}")


def _xattrs(path: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    try:
        for name in os.listxattr(path, follow_symlinks=False):
            if not name.startswith("trusted.overlay."):
                out[name] = os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        pass
    return out


def plan_copy(sources: Sequence[tuple[SourceTree, str]], dest: str, *, workdir: str,
              image: LowerView, owner: tuple[int, int] | None = None,
              chmod: int | None = None, extract_archives: bool = False,
              inline: Sequence[tuple[str, bytes]] = (),
              downloads: Sequence[tuple[str, Path, float]] = ()) -> CopyPlan:
    """Plan a COPY/ADD of `sources` ((tree, pattern) pairs), `inline` ((name, data)
    heredoc files) and `downloads` ((name, file, mtime) of ADD URLs: mode 0600 and never
    extracted, as Docker has them) to `dest` in the image seen through `image`.
    """
    dest_path = dest if dest.startswith("/") else posixpath.join(workdir or "/", dest)
    dir_syntax = dest.endswith("/") or dest in (".", "..") or dest.endswith(("/.", "/.."))
    matched: list[tuple[SourceTree, str]] = []
    for tree, pattern in sources:
        matched.extend((tree, rel) for rel in tree.expand(pattern))
    count = len(matched) + len(inline) + len(downloads)
    resolved_dest = image.resolve(dest_path)
    dest_is_dir = dir_syntax or image.is_dir(dest_path)
    if count > 1 and not dest_is_dir:
        raise ContextError(f"when copying more than one source file, the destination must be "
                           f"a directory and end with a / (got {dest!r})")
    p = _Planner(image, owner, chmod)
    dest_rel = resolved_dest.strip("/")

    def file_target(name: str) -> str:
        if dest_is_dir:
            return f"{dest_rel}/{name}" if dest_rel else name
        parent = image.resolve(posixpath.dirname(dest_path)).strip("/")
        base = posixpath.basename(dest_path.rstrip("/"))
        return f"{parent}/{base}" if parent else base

    for name, data in inline:
        target = file_target(name)
        p.parents(target)
        p.add(CopyEntry(target, "file", chmod if chmod is not None else 0o644,
                        *(owner or (0, 0)), data=data))
    for name, path, mtime in downloads:
        if not name and dest_is_dir:
            raise ContextError(f"cannot determine a file name from the URL to put it in "
                               f"{dest!r}: name the file in the destination")
        target = file_target(name)
        p.parents(target)
        p.add(CopyEntry(target, "file", chmod if chmod is not None else 0o600,
                        *(owner or (0, 0)), mtime, source=path))
    for tree, rel in matched:
        real = tree.view.find(rel or "/")  # a source symlink itself is followed
        if real is None:
            raise ContextError(f"{rel}: not found in the {tree.what}")
        st = real.lstat()
        if stat.S_ISDIR(st.st_mode):
            if dest_rel:
                p.parents(dest_rel + "/x")
                p.dest_dir(dest_rel, like=st, xattrs=_xattrs(real) if tree.keep_owner else None,
                           keep_owner=tree.keep_owner)
            p.tree(tree, tree.view.resolve(rel or "/").strip("/"), dest_rel)
            continue
        if extract_archives and not tree.keep_owner and _is_archive(real):
            if dest_rel:
                p.parents(dest_rel + "/x")
                p.dest_dir(dest_rel)
            p.add(CopyEntry(dest_rel, "archive", source=real))
            continue
        target = file_target(posixpath.basename(rel))
        p.parents(target)
        p.one(tree, rel, target, st, real)
    return CopyPlan(p.entries)


def plan_mkdir(path: str, image: LowerView) -> CopyPlan:
    """The layer of a WORKDIR that does not exist yet: the directory (0755 root) and its
    parents (as the image has them, or 0755 root), symlinks in the path followed.
    """
    p = _Planner(image, None, None)
    p.parents(image.resolve(path).strip("/") + "/x")
    return CopyPlan(p.entries)


def write_copy_tar(plan: CopyPlan, out: BinaryIO) -> None:
    """Write the planned entries as a layer tar."""
    with LayerWriter(out) as w:
        for e in plan.entries:
            if e.kind == "dir":
                w.directory(e.path, mode=e.mode, uid=e.uid, gid=e.gid, mtime=e.mtime,
                            xattrs=e.xattrs)
            elif e.kind == "file":
                w.file(e.path, e.source, mode=e.mode, uid=e.uid, gid=e.gid, mtime=e.mtime,
                       data=e.data, xattrs=e.xattrs)
            elif e.kind == "symlink":
                w.symlink(e.path, e.link, uid=e.uid, gid=e.gid, mtime=e.mtime, xattrs=e.xattrs)
            elif e.kind == "archive":
                assert e.source is not None
                for info, data in _archive_members(e.source, e.path):
                    w.member(info, data)


def _archive_members(path: Path, dest: str) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
    """Members of a local archive renamed under `dest`; names are clamped inside it (the
    unpacker clamps again, but the layer should not even say `../`).
    """
    def under(name: str) -> str:
        clean = posixpath.normpath("/" + name).lstrip("/")
        return f"{dest}/{clean}" if dest else clean

    with tarfile.open(path, mode="r:*") as tf:
        for m in tf:
            if m.name in (".", "./") or not posixpath.normpath("/" + m.name).lstrip("/"):
                continue
            m.name = under(m.name)
            if m.islnk():
                m.linkname = under(m.linkname)
            data = tf.extractfile(m) if m.isreg() else None
            yield m, data
