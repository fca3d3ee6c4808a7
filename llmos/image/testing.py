"""Helpers for tests of anything built on images: layer tars made in memory (including hostile
ones), compression, and a tree fingerprint to prove nothing outside a directory changed.

Shipped in the package (like trio's MockClock) so the daemon's and builder's tests make images
the same way without a registry or the network.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "TarEntry",
    "chardev",
    "compress",
    "directory",
    "fifo",
    "hardlink",
    "layer_tar",
    "opaque",
    "regular",
    "symlink",
    "tree_fingerprint",
    "whiteout",
]

_MTIME = 1_700_000_000


@dataclass
class TarEntry:
    """One tar member to write: the TarInfo fields plus data and xattrs."""

    name: str
    type: bytes
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    linkname: str = ""
    mtime: float = _MTIME
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)
    size: int | None = None  # declared size when it should differ from len(data) (lies)


def regular(name: str, data: bytes = b"", *, mode: int = 0o644, uid: int = 0, gid: int = 0,
            mtime: float = _MTIME, xattrs: dict[str, bytes] | None = None) -> TarEntry:
    """A regular file."""
    return TarEntry(name, tarfile.REGTYPE, data, mode, uid, gid, mtime=mtime,
                    xattrs=xattrs or {})


def directory(name: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0,
              mtime: float = _MTIME, xattrs: dict[str, bytes] | None = None) -> TarEntry:
    """A directory."""
    return TarEntry(name, tarfile.DIRTYPE, mode=mode, uid=uid, gid=gid, mtime=mtime,
                    xattrs=xattrs or {})


def symlink(name: str, target: str, *, uid: int = 0, gid: int = 0) -> TarEntry:
    """A symbolic link (target stored verbatim)."""
    return TarEntry(name, tarfile.SYMTYPE, mode=0o777, uid=uid, gid=gid, linkname=target)


def hardlink(name: str, target: str) -> TarEntry:
    """A hard link to an earlier member `target`."""
    return TarEntry(name, tarfile.LNKTYPE, linkname=target)


def chardev(name: str, major: int, minor: int, *, mode: int = 0o666) -> TarEntry:
    """A character device node."""
    return TarEntry(name, tarfile.CHRTYPE, mode=mode, devmajor=major, devminor=minor)


def fifo(name: str, *, mode: int = 0o644) -> TarEntry:
    """A named pipe."""
    return TarEntry(name, tarfile.FIFOTYPE, mode=mode)


def whiteout(path: str) -> TarEntry:
    """The OCI whiteout hiding `path` of lower layers."""
    head, _, base = path.rstrip("/").rpartition("/")
    return regular(f"{head}/.wh.{base}" if head else f".wh.{base}", mode=0o600)


def opaque(dirpath: str) -> TarEntry:
    """The OCI marker making `dirpath` opaque (lower contents hidden)."""
    return regular(f"{dirpath.rstrip('/')}/.wh..wh..opq", mode=0o600)


def layer_tar(entries: Iterable[TarEntry]) -> bytes:
    """An uncompressed PAX tar of `entries`, in order (order matters to hostile layers)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = e.type
            info.mode = e.mode
            info.uid, info.gid = e.uid, e.gid
            info.mtime = e.mtime
            info.linkname = e.linkname
            info.devmajor, info.devminor = e.devmajor, e.devminor
            info.size = len(e.data) if e.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
            if e.xattrs:
                info.pax_headers = {
                    f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                    for k, v in e.xattrs.items()
                }
            tf.addfile(info, io.BytesIO(e.data) if info.size else None)
    return buf.getvalue()


def compress(data: bytes, kind: str) -> bytes:
    """gzip, zstd or none: how registries ship layers."""
    if kind == "gzip":
        return gzip.compress(data, compresslevel=1, mtime=0)
    if kind == "zstd":
        import zstandard

        return bytes(zstandard.ZstdCompressor().compress(data))
    if kind == "none":
        return data
    raise ValueError(f"compression {kind!r}")


def tree_fingerprint(root: str | os.PathLike[str]) -> dict[str, str]:
    """Every path under `root` (not following symlinks) -> type, mode, owner, size, mtime and a
    content hash, so a before/after comparison proves no byte changed.
    """
    out: dict[str, str] = {}
    base = Path(root)
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        for name in [*dirnames, *filenames, ""]:
            p = Path(dirpath) / name if name else Path(dirpath)
            st = p.lstat()
            desc = f"{stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid} {st.st_size} " \
                   f"{st.st_mtime_ns}"
            if stat.S_ISREG(st.st_mode):
                desc += " " + hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                desc += " -> " + os.readlink(p)
            out[str(p.relative_to(base))] = desc
    return out
