"""Layer tars the builder writes: a RUN container's overlay upper directory turned back into
an OCI layer, and the entries of COPY, ADD and WORKDIR.

Why the upper directory needs converting: overlayfs records deletions as 0/0 character devices
and opaque directories as a `trusted.overlay.opaque=y` xattr, while OCI layers say `.wh.NAME`
and `DIR/.wh..wh..opq`. Overlay also leaves bookkeeping xattrs (`trusted.overlay.origin`,
`impure`) on copied-up entries; they mean nothing in another filesystem and are dropped from
both the tar and the directory (which becomes the committed layer as it is). Ownership, modes
(setuid included), xattrs, mtimes, symlinks, hard links, fifos and device nodes are kept.
Entries come in sorted order so the same tree gives the same diff id.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

__all__ = ["LayerWriter", "write_upper_tar"]

OPAQUE_XATTR = "trusted.overlay.opaque"
_OVERLAY_PREFIX = "trusted.overlay."


def _xattrs(path: str, *, scrub: bool) -> dict[str, bytes]:
    """The entry's xattrs minus overlay's own; with `scrub`, overlay's bookkeeping ones are
    removed from the file too (opaque stays: the directory is still a layer).
    """
    out: dict[str, bytes] = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for name in names:
        if name.startswith(_OVERLAY_PREFIX):
            if scrub and name != OPAQUE_XATTR:
                try:
                    os.removexattr(path, name, follow_symlinks=False)
                except OSError:
                    pass
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
    return out


def _pax(xattrs: dict[str, bytes]) -> dict[str, str]:
    return {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()}


class LayerWriter:
    """Writes layer tar entries (PAX format, so long names, big ids and xattrs fit)."""

    def __init__(self, out: BinaryIO) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)
        self.names: set[str] = set()

    def close(self) -> None:
        """Write the end-of-archive blocks."""
        self.tar.close()

    def __enter__(self) -> LayerWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _info(self, name: str, type_: bytes, mode: int, uid: int, gid: int, mtime: float,
              xattrs: dict[str, bytes] | None = None) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name.strip("/"))
        info.type = type_
        info.mode = mode & 0o7777
        info.uid, info.gid = uid, gid
        info.mtime = int(mtime)
        info.uname = info.gname = ""
        if xattrs:
            info.pax_headers = _pax(xattrs)
        return info

    def directory(self, name: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0,
                  mtime: float = 0, xattrs: dict[str, bytes] | None = None) -> None:
        """A directory entry (written once per name)."""
        key = name.strip("/")
        if key in self.names or not key:
            return
        self.names.add(key)
        self.tar.addfile(self._info(key, tarfile.DIRTYPE, mode, uid, gid, mtime, xattrs))

    def file(self, name: str, source: str | os.PathLike[str] | None, *, mode: int = 0o644,
             uid: int = 0, gid: int = 0, mtime: float = 0, data: bytes | None = None,
             xattrs: dict[str, bytes] | None = None) -> None:
        """A regular file from `source` on disk, or from `data`."""
        info = self._info(name, tarfile.REGTYPE, mode, uid, gid, mtime, xattrs)
        self.names.add(info.name)
        if data is not None:
            import io

            info.size = len(data)
            self.tar.addfile(info, io.BytesIO(data))
            return
        assert source is not None
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            info.size = os.fstat(f.fileno()).st_size
            self.tar.addfile(info, f)

    def symlink(self, name: str, target: str, *, uid: int = 0, gid: int = 0,
                mtime: float = 0, xattrs: dict[str, bytes] | None = None) -> None:
        """A symbolic link (target stored verbatim)."""
        info = self._info(name, tarfile.SYMTYPE, 0o777, uid, gid, mtime, xattrs)
        info.linkname = target
        self.names.add(info.name)
        self.tar.addfile(info)

    def hardlink(self, name: str, target: str) -> None:
        """A hard link to an earlier entry `target`."""
        info = self._info(name, tarfile.LNKTYPE, 0o644, 0, 0, 0)
        info.linkname = target.strip("/")
        self.names.add(info.name)
        self.tar.addfile(info)

    def special(self, name: str, st: os.stat_result,
                xattrs: dict[str, bytes] | None = None) -> None:
        """A fifo or device node like `st`."""
        if stat.S_ISFIFO(st.st_mode):
            type_ = tarfile.FIFOTYPE
        elif stat.S_ISCHR(st.st_mode):
            type_ = tarfile.CHRTYPE
        else:
            type_ = tarfile.BLKTYPE
        info = self._info(name, type_, st.st_mode, st.st_uid, st.st_gid, st.st_mtime, xattrs)
        if type_ != tarfile.FIFOTYPE:
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        self.names.add(info.name)
        self.tar.addfile(info)

    def member(self, info: tarfile.TarInfo, data: IO[bytes] | None) -> None:
        """An entry copied from another tar (ADD of a local archive)."""
        self.names.add(info.name)
        self.tar.addfile(info, data)


def _walk(root: str) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of everything under root, sorted, parents before children."""
    stack = [""]
    while stack:
        rel = stack.pop()
        base = os.path.join(root, rel) if rel else root
        with os.scandir(base) as it:
            entries = sorted(it, key=lambda e: e.name)
        children: list[str] = []
        for e in entries:
            path = f"{rel}/{e.name}" if rel else e.name
            st = e.stat(follow_symlinks=False)
            yield path, st
            if stat.S_ISDIR(st.st_mode):
                children.append(path)
        stack.extend(reversed(children))


def write_upper_tar(upper: str | os.PathLike[str], out: BinaryIO) -> int:
    """Write the OCI layer tar of an overlay upper directory; returns the entry count."""
    root = os.fspath(upper)
    links: dict[tuple[int, int], str] = {}
    count = 0
    with LayerWriter(out) as w:
        for rel, st in _walk(root):
            full = os.path.join(root, rel)
            head, _, base = rel.rpartition("/")
            mode = st.st_mode
            if stat.S_ISCHR(mode) and st.st_rdev == 0:
                wh = f"{head}/.wh.{base}" if head else f".wh.{base}"
                w.file(wh, None, data=b"", mode=0o600, uid=st.st_uid, gid=st.st_gid,
                       mtime=st.st_mtime)
            elif stat.S_ISDIR(mode):
                xattrs = _xattrs(full, scrub=True)
                w.directory(rel, mode=mode, uid=st.st_uid, gid=st.st_gid, mtime=st.st_mtime,
                            xattrs=xattrs)
                try:
                    opaque = os.getxattr(full, OPAQUE_XATTR, follow_symlinks=False) == b"y"
                except OSError:
                    opaque = False
                if opaque:
                    w.file(f"{rel}/.wh..wh..opq", None, data=b"", mode=0o600)
            elif stat.S_ISREG(mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in links:
                    w.hardlink(rel, links[key])
                else:
                    if st.st_nlink > 1:
                        links[key] = rel
                    w.file(rel, full, mode=mode, uid=st.st_uid, gid=st.st_gid,
                           mtime=st.st_mtime, xattrs=_xattrs(full, scrub=True))
            elif stat.S_ISLNK(mode):
                w.symlink(rel, os.readlink(full), uid=st.st_uid, gid=st.st_gid,
                          mtime=st.st_mtime, xattrs=_xattrs(full, scrub=True))
            elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                w.special(rel, st, _xattrs(full, scrub=True))
            else:
                continue  # sockets do not go into images (Docker skips them too)
            count += 1
    return count


def remove_if_empty(upper: Path, rel: str, lower: os.stat_result | None = None) -> None:
    """Drop an empty file or directory the runtime created in the upper directory as a mount
    point (`/etc/resolv.conf` for a RUN), so it does not end up in the layer. With `lower`
    (the directory as the layers below have it), an empty directory is only dropped if
    overlay merely copied it up (same mode and owner, not opaque).
    """
    p = upper / rel.strip("/")
    try:
        st = p.lstat()
    except OSError:
        return
    if lower is not None:
        if (st.st_mode, st.st_uid, st.st_gid) != (lower.st_mode, lower.st_uid, lower.st_gid):
            return
        try:
            if os.getxattr(p, OPAQUE_XATTR, follow_symlinks=False):
                return
        except OSError:
            pass
    try:
        if stat.S_ISDIR(st.st_mode):
            p.rmdir()  # fails unless empty
        elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
            p.unlink()
    except OSError:
        pass
