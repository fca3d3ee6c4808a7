"""Apply one layer tar (plain, gzip or zstd) into an empty layer directory, in overlay form.

Why this is careful: a layer is untrusted input that root writes to disk. Every path is resolved
relative to an fd of the layer directory, one component at a time with O_NOFOLLOW, so nothing
the tar says can reach outside it:

- `../` and absolute names are clamped to the layer root, as Docker and containerd do
  (`/etc/passwd` and `../../etc/passwd` both land at `<layer>/etc/passwd`).
- A symlink met as a parent directory is resolved *inside* the layer (absolute targets from the
  layer root, `..` stopping at it), like openat2(RESOLVE_IN_ROOT): `link -> /etc` then
  `link/passwd` writes `<layer>/etc/passwd`. The last component is never followed: an entry
  replacing a symlink unlinks it first and creates with O_EXCL|O_NOFOLLOW.
- Hard link targets are resolved the same way, so they can only name files in the layer;
  a target that does not exist there is refused.
- File data is written sparsely: runs of zeros become holes and GNU/PAX sparse members only
  write their data segments, so a "huge sparse file" (or a gzip bomb of zeros) costs no disk.
  `max_file_size` refuses files larger than a limit outright.
- `trusted.overlay.*` xattrs from the tar are dropped: they would let an image forge overlay
  metadata (redirects, opaque markers) that only whiteout conversion may write.

Whiteouts become overlayfs whiteouts: `.wh.NAME` -> a 0/0 character device NAME, and
`.wh..wh..opq` -> `trusted.overlay.opaque=y` on its directory. Ownership, modes (including
setuid), xattrs, mtimes, hard links, symlinks and device nodes are kept as the image says.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from .errors import FailedPrecondition, InvalidArgument, UnsafeLayer

__all__ = ["ApplyResult", "apply_layer", "decompressed", "detect_compression"]

WHITEOUT_PREFIX = ".wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
_CHUNK = 1 << 20
_HOLE = 64 << 10
_ZERO = bytes(_HOLE)
_MAX_SYMLINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class ApplyResult:
    """What a layer turned out to be: the digest of its uncompressed tar (the diff id, which
    the caller checks against the image config) and how many bytes that tar had.
    """

    diff_id: str
    size: int
    entries: int


def detect_compression(head: bytes) -> str:
    """"gzip", "zstd" or "none" from the first bytes, so a layer is read correctly even when
    its media type lies or was lost (docker-archive layers carry none).
    """
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return "none"


class _Peek:
    """A reader that can look at its first bytes without consuming them."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._head = raw.read(4)

    def head(self) -> bytes:
        return self._head

    def read(self, n: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            if n < 0:
                return head + self._raw.read()
            if n <= len(head):
                self._head = head[n:]
                return head[:n]
            return head + self._raw.read(n - len(head))
        return self._raw.read(n)


class _Hashing:
    """Counts and hashes the uncompressed tar as tarfile consumes it."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data: bytes = self._raw.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


def decompressed(stream: BinaryIO, compression: str = "auto") -> IO[bytes]:
    """A reader of the uncompressed tar: gzip via the stdlib, zstd via `zstandard`."""
    peek = _Peek(stream)
    kind = detect_compression(peek.head()) if compression == "auto" else compression
    if kind == "gzip":
        return cast(IO[bytes], gzip.GzipFile(fileobj=cast(Any, peek), mode="rb"))
    if kind == "zstd":
        import zstandard

        reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(
            cast(Any, peek), read_across_frames=True
        )
        return reader
    if kind == "none":
        return peek  # type: ignore[return-value]
    raise InvalidArgument(f"layer compression {compression!r}: want auto, none, gzip or zstd")


def _clean(name: str) -> list[str]:
    """Tar name -> components under the root; `..` stops at the root like filepath.Join("/")."""
    out: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            continue
        out.append(part)
    return out


class _Layer:
    """Holds the layer directory fd and performs resolution and creation relative to it."""

    def __init__(self, root: Path, lowers: Sequence[Path], same_owner: bool,
                 max_file_size: int | None) -> None:
        self.root_fd = os.open(root, _DIR_FLAGS)
        self.lowers = list(lowers)
        self.same_owner = same_owner
        self.max_file_size = max_file_size
        # (canonical components, mtime ns) of directories, applied last: creating entries
        # inside a directory would otherwise overwrite its mtime again.
        self.dir_times: list[tuple[tuple[str, ...], int]] = []

    def close(self) -> None:
        os.close(self.root_fd)

    # -- resolution --------------------------------------------------------------------
    def open_dir(self, comps: Sequence[str], name: str, *, create: bool) -> tuple[int, list[str]]:
        """Open the directory at `comps`, following symlinks only inside the layer; returns
        the fd and its canonical components. Missing directories are made when `create`.
        """
        fds = [self.root_fd]
        resolved: list[str] = []
        todo = list(reversed(comps))
        links = 0
        try:
            while todo:
                c = todo.pop()
                if c in ("", "."):
                    continue
                if c == "..":
                    if resolved:
                        resolved.pop()
                        os.close(fds.pop())
                    continue
                try:
                    fd = os.open(c, _DIR_FLAGS, dir_fd=fds[-1])
                except FileNotFoundError:
                    if not create:
                        raise UnsafeLayer(f"{name}: {'/'.join([*resolved, c])} does not exist "
                                          "in this layer") from None
                    self._make_implicit_dir(fds[-1], [*resolved, c])
                    fd = os.open(c, _DIR_FLAGS, dir_fd=fds[-1])
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    st = os.stat(c, dir_fd=fds[-1], follow_symlinks=False)
                    if not stat.S_ISLNK(st.st_mode):
                        raise UnsafeLayer(f"{name}: {'/'.join([*resolved, c])} is not a "
                                          "directory") from None
                    links += 1
                    if links > _MAX_SYMLINKS:
                        raise UnsafeLayer(f"{name}: too many levels of symbolic links") from None
                    target = os.readlink(c, dir_fd=fds[-1])
                    if target.startswith("/"):
                        while len(fds) > 1:
                            os.close(fds.pop())
                        resolved.clear()
                    todo.extend(reversed(target.split("/")))
                    continue
                fds.append(fd)
                resolved.append(c)
            result = fds.pop() if len(fds) > 1 else os.dup(self.root_fd)
            return result, resolved
        finally:
            for fd in fds[1:]:
                os.close(fd)

    def _make_implicit_dir(self, parent_fd: int, comps: list[str]) -> None:
        """A parent the tar never listed: copy its attributes from the layer below, so the
        merged view keeps e.g. /tmp's 1777 instead of a default 0755 hiding it.
        """
        os.mkdir(comps[-1], 0o755, dir_fd=parent_fd)
        st = self._lower_dir_stat(comps)
        if st is None:
            return
        fd = os.open(comps[-1], _DIR_FLAGS, dir_fd=parent_fd)
        try:
            if self.same_owner:
                os.fchown(fd, st.st_uid, st.st_gid)
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
        finally:
            os.close(fd)
        self.dir_times.append((tuple(comps), st.st_mtime_ns))

    def _lower_dir_stat(self, comps: list[str]) -> os.stat_result | None:
        for lower in self.lowers:
            try:
                fd = os.open(lower, _DIR_FLAGS)
            except OSError:
                continue
            try:
                for c in comps:
                    nfd = os.open(c, _DIR_FLAGS, dir_fd=fd)
                    os.close(fd)
                    fd = nfd
                return os.fstat(fd)
            except OSError:
                continue
            finally:
                os.close(fd)
        return None

    def reopen_nofollow(self, comps: Sequence[str]) -> int | None:
        """Open a directory by canonical path without following anything (for late mtimes)."""
        fd = os.dup(self.root_fd)
        try:
            for c in comps:
                nfd = os.open(c, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nfd
        except OSError:
            os.close(fd)
            return None
        return fd

    # -- entries -----------------------------------------------------------------------
    def apply(self, tf: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = member.name
        comps = _clean(name)
        if not comps:  # "./": the layer root itself
            if member.isdir():
                self._set_meta_fd(self.root_fd, member)
                self.dir_times.append(((), _mtime_ns(member)))
            return
        base = comps[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(comps, name)
            return
        parent_fd, parent = self.open_dir(comps[:-1], name, create=True)
        try:
            self._create(tf, member, parent_fd, parent, base)
        finally:
            os.close(parent_fd)

    def _whiteout(self, comps: list[str], name: str) -> None:
        base = comps[-1]
        if base == WHITEOUT_OPAQUE:
            fd, _ = self.open_dir(comps[:-1], name, create=True)
            try:
                os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")
            except PermissionError:
                raise FailedPrecondition(
                    f"{name}: setting {OVERLAY_OPAQUE_XATTR} needs CAP_SYS_ADMIN (run as root)"
                ) from None
            finally:
                os.close(fd)
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk and friends): meaningless here
        target = base[len(WHITEOUT_PREFIX):]
        if target in ("", ".", ".."):
            raise UnsafeLayer(f"{name}: whiteout of {target!r} is not allowed")
        parent_fd, _ = self.open_dir(comps[:-1], name, create=True)
        try:
            self._remove_existing(parent_fd, target)
            try:
                os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent_fd)
            except PermissionError:
                raise FailedPrecondition(
                    f"{name}: creating an overlay whiteout needs CAP_MKNOD (run as root)"
                ) from None
        finally:
            os.close(parent_fd)

    def _remove_existing(self, parent_fd: int, base: str) -> os.stat_result | None:
        try:
            st = os.stat(base, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(base, dir_fd=parent_fd)
        else:
            os.unlink(base, dir_fd=parent_fd)
        return st

    def _create(self, tf: tarfile.TarFile, m: tarfile.TarInfo, pfd: int, parent: list[str],
                base: str) -> None:
        name = m.name
        if m.isdir():
            try:
                st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    self._remove_existing(pfd, base)
                    os.mkdir(base, 0o700, dir_fd=pfd)
            except FileNotFoundError:
                os.mkdir(base, 0o700, dir_fd=pfd)
            fd = os.open(base, _DIR_FLAGS, dir_fd=pfd)
            try:
                self._set_meta_fd(fd, m)
            finally:
                os.close(fd)
            self.dir_times.append(((*parent, base), _mtime_ns(m)))
            return
        self._remove_existing(pfd, base)
        if m.isreg():
            if self.max_file_size is not None and m.size > self.max_file_size:
                raise UnsafeLayer(f"{name}: file of {m.size} bytes exceeds the limit of "
                                  f"{self.max_file_size}")
            fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=pfd)
            try:
                self._write_data(tf, m, fd)
                self._set_meta_fd(fd, m)
                os.utime(fd, ns=(_mtime_ns(m), _mtime_ns(m)))
            finally:
                os.close(fd)
            return
        if m.issym():
            os.symlink(m.linkname, base, dir_fd=pfd)
            if self.same_owner:
                os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            self._set_xattrs(f"/proc/self/fd/{pfd}/{base}", m, follow=False)
            os.utime(base, ns=(_mtime_ns(m), _mtime_ns(m)), dir_fd=pfd, follow_symlinks=False)
            return
        if m.islnk():
            tcomps = _clean(m.linkname)
            if not tcomps:
                raise UnsafeLayer(f"{name}: hard link to the layer root")
            try:
                tfd, _ = self.open_dir(tcomps[:-1], name, create=False)
            except UnsafeLayer as exc:  # say which target, not only which component failed
                detail = str(exc).removeprefix(f"{name}: ")
                raise UnsafeLayer(f"{name}: hard link target {m.linkname!r}: {detail}") from None
            try:
                os.link(tcomps[-1], base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                raise UnsafeLayer(f"{name}: hard link target {m.linkname!r} is not in this "
                                  "layer") from None
            except PermissionError:
                raise UnsafeLayer(f"{name}: cannot hard link to {m.linkname!r}") from None
            finally:
                os.close(tfd)
            return
        if m.ischr() or m.isblk() or m.isfifo():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
            dev = os.makedev(m.devmajor, m.devminor) if not m.isfifo() else 0
            try:
                os.mknod(base, kind | 0o600, dev, dir_fd=pfd)
            except PermissionError:
                raise FailedPrecondition(f"{name}: creating a device node needs CAP_MKNOD "
                                         "(run as root)") from None
            if self.same_owner:
                os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            # Not a symlink (we just made it), so following is safe; a device is not opened.
            os.chmod(base, stat.S_IMODE(m.mode), dir_fd=pfd)
            self._set_xattrs(f"/proc/self/fd/{pfd}/{base}", m, follow=False)
            os.utime(base, ns=(_mtime_ns(m), _mtime_ns(m)), dir_fd=pfd, follow_symlinks=False)
            return
        raise UnsafeLayer(f"{name}: unsupported tar entry type {m.type!r}")

    def _write_data(self, tf: tarfile.TarFile, m: tarfile.TarInfo, fd: int) -> None:
        src = tf.extractfile(m)
        if src is None:
            raise UnsafeLayer(f"{m.name}: no data for a regular file")
        sparse = getattr(m, "sparse", None)
        if sparse:
            # Only the data segments are read; the holes between them are never materialised.
            raw = getattr(src, "raw", src)
            for offset, length in sparse:
                if length <= 0:
                    continue
                if offset + length > m.size:
                    raise UnsafeLayer(f"{m.name}: sparse segment past the end of the file")
                raw.seek(offset)
                os.lseek(fd, offset, os.SEEK_SET)
                self._copy(raw, fd, length, m.name)
        else:
            self._copy(src, fd, m.size, m.name)
        os.ftruncate(fd, m.size)

    @staticmethod
    def _copy(src: Any, fd: int, length: int, name: str) -> None:
        remaining = length
        while remaining:
            buf = src.read(min(_CHUNK, remaining))
            if not buf:
                raise UnsafeLayer(f"{name}: tar stream ends inside the file")
            remaining -= len(buf)
            view = memoryview(buf)
            for start in range(0, len(buf), _HOLE):
                piece = view[start:start + _HOLE]
                if piece == _ZERO[:len(piece)]:
                    os.lseek(fd, len(piece), os.SEEK_CUR)  # a hole, not written zeros
                else:
                    while piece:
                        piece = piece[os.write(fd, piece):]

    def _set_meta_fd(self, fd: int, m: tarfile.TarInfo) -> None:
        if self.same_owner:
            os.fchown(fd, m.uid, m.gid)
        os.fchmod(fd, stat.S_IMODE(m.mode))  # after chown, which clears setuid
        self._set_xattrs(fd, m, follow=True)

    def _set_xattrs(self, target: int | str, m: tarfile.TarInfo, *, follow: bool) -> None:
        for key, value in m.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            attr = key[len("SCHILY.xattr."):]
            if attr.startswith("trusted.overlay."):
                continue  # only whiteout conversion writes overlay metadata
            data = value.encode("utf-8", "surrogateescape")
            try:
                os.setxattr(target, attr, data, follow_symlinks=follow)
            except OSError as exc:
                if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                    continue
                if exc.errno == errno.EPERM and not self.same_owner:
                    continue  # unprivileged unpack: trusted.* and security.* are root's
                raise


def _mtime_ns(m: tarfile.TarInfo) -> int:
    return int(m.mtime * 1_000_000_000)


def apply_layer(stream: BinaryIO, dest: str | os.PathLike[str], *,
                compression: str = "auto", lowers: Sequence[str | os.PathLike[str]] = (),
                same_owner: bool | None = None, max_file_size: int | None = None) -> ApplyResult:
    """Unpack a layer tar into the directory `dest` (normally empty: the snapshot's upper
    dir) and return its diff id. `lowers` are the layer directories below, top first, only read
    to give implicit parent directories their real attributes. `same_owner` defaults to
    "running as root"; unprivileged callers keep their own uid.
    """
    if same_owner is None:
        same_owner = os.geteuid() == 0
    layer = _Layer(Path(dest), [Path(p) for p in lowers], same_owner, max_file_size)
    hashing = _Hashing(decompressed(stream, compression))
    entries = 0
    try:
        try:
            tf = tarfile.open(fileobj=hashing, mode="r|", errorlevel=2)  # type: ignore[call-overload]
        except tarfile.ReadError as exc:
            raise InvalidArgument(f"layer: not a tar archive: {exc}") from None
        try:
            for member in _members(tf):
                layer.apply(tf, member)
                entries += 1
        finally:
            tf.close()
        hashing.drain()  # the diff id covers the whole stream, end-of-archive padding included
        for comps, mtime in reversed(layer.dir_times):
            fd = layer.reopen_nofollow(comps)
            if fd is not None:
                try:
                    os.utime(fd, ns=(mtime, mtime))
                finally:
                    os.close(fd)
    except _stream_errors() as exc:
        raise InvalidArgument(f"layer: corrupt or truncated stream: {exc}") from None
    finally:
        layer.close()
    return ApplyResult("sha256:" + hashing.hash.hexdigest(), hashing.size, entries)


def _stream_errors() -> tuple[type[BaseException], ...]:
    import zstandard

    return (EOFError, tarfile.TarError, gzip.BadGzipFile, zlib.error, zstandard.ZstdError)


def _members(tf: tarfile.TarFile) -> Any:
    while True:
        try:
            member = tf.next()
        except tarfile.ReadError as exc:
            raise InvalidArgument(f"layer: corrupt tar: {exc}") from None
        if member is None:
            return
        yield member
