"""Content-addressed blob store, containerd's layout: `<root>/blobs/sha256/<hex>`.

Bytes arrive through a `Writer` that hashes while it writes into `<root>/ingest/<key>/data`;
only after size and digest are verified is the file made read-only and renamed into `blobs/`,
so a reader never sees a half-written or unverified blob. An interrupted ingest keeps its
partial file: opening a writer with the same ref again resumes at its offset (the registry
client then asks for the rest with an HTTP Range request).

    <root>/blobs/sha256/<hex>          verified, read-only blobs
    <root>/ingest/<sha256(ref)>/data   partial bytes of an ingest in progress
                               /ref    the ref, for listing
                               /lock   flock() held by the one live writer of this ref
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from .digest import parse_digest
from .errors import DigestMismatch, InvalidArgument, NotFound, Unavailable

__all__ = ["BlobInfo", "ContentStore", "IngestStatus", "Writer"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class BlobInfo:
    """A committed blob: its digest and size in bytes."""

    digest: str
    size: int


@dataclass(frozen=True)
class IngestStatus:
    """An ingest in progress or interrupted: how far it got, and what it expects."""

    ref: str
    offset: int
    total: int | None
    expected: str | None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ContentStore:
    """Blobs by digest, written only through verifying writers."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs" / "sha256"
        self._ingest = self.root / "ingest"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._ingest.mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- reading -------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        """Where the blob lives (whether or not it exists); the digest is validated first."""
        return self._blobs / parse_digest(digest).split(":", 1)[1]

    def exists(self, digest: str) -> bool:
        """True if the verified blob is present."""
        return self.blob_path(digest).is_file()

    def info(self, digest: str) -> BlobInfo:
        """Size of a present blob; NotFound otherwise."""
        try:
            st = self.blob_path(digest).stat()
        except FileNotFoundError:
            raise NotFound(f"blob {digest}: not in the content store") from None
        return BlobInfo(digest, st.st_size)

    def open(self, digest: str) -> BinaryIO:
        """A reader over a committed blob."""
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest}: not in the content store") from None

    def read(self, digest: str, *, max_size: int = 64 << 20) -> bytes:
        """A small blob (manifest, config) in memory; large ones must be streamed."""
        with self.open(digest) as f:
            data = f.read(max_size + 1)
        if len(data) > max_size:
            raise InvalidArgument(f"blob {digest}: larger than {max_size} bytes, stream it")
        return data

    def blobs(self) -> Iterator[BlobInfo]:
        """Every committed blob."""
        for entry in os.scandir(self._blobs):
            if len(entry.name) == 64 and entry.is_file(follow_symlinks=False):
                yield BlobInfo("sha256:" + entry.name, entry.stat(follow_symlinks=False).st_size)

    def delete(self, digest: str) -> None:
        """Remove a blob; NotFound if absent. Callers (gc) decide it is unreferenced."""
        try:
            self.blob_path(digest).unlink()
        except FileNotFoundError:
            raise NotFound(f"blob {digest}: not in the content store") from None

    # -- writing -------------------------------------------------------------------------
    def writer(self, ref: str, *, expected: str | None = None, total: int | None = None,
               wait: bool = False) -> Writer:
        """Open (or resume) the ingest named `ref`. Only one writer per ref at a time:
        another holder makes this raise Unavailable, or block when `wait` is true.
        """
        if not ref:
            raise InvalidArgument("ingest ref: must be non-empty")
        if expected is not None:
            parse_digest(expected, what="expected digest")
        key = hashlib.sha256(ref.encode()).hexdigest()
        ingest_dir = self._ingest / key
        lock_path = ingest_dir / "lock"
        while True:
            ingest_dir.mkdir(exist_ok=True, mode=0o700)
            try:
                lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:
                continue  # the previous holder removed the directory under us
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(lock_fd)
                raise Unavailable(f"ingest {ref!r}: another writer holds it") from None
            try:
                # The holder we waited for may have committed and removed the directory: our
                # lock is then on an unlinked file and protects nothing. Start again.
                if os.stat(lock_path).st_ino == os.fstat(lock_fd).st_ino:
                    return Writer(self, ref, ingest_dir, lock_fd, expected, total)
            except FileNotFoundError:
                pass
            except BaseException:
                os.close(lock_fd)
                raise
            os.close(lock_fd)

    def ingests(self) -> list[IngestStatus]:
        """Ingests left in progress (interrupted downloads that a retry can resume)."""
        out = []
        for entry in os.scandir(self._ingest):
            d = Path(entry.path)
            try:
                meta = json.loads((d / "meta.json").read_text())
                offset = (d / "data").stat().st_size
            except (OSError, ValueError):
                continue
            out.append(IngestStatus(meta.get("ref", ""), offset, meta.get("total"),
                                    meta.get("expected")))
        return out

    def abort(self, ref: str) -> None:
        """Drop an ingest and its partial bytes."""
        key = hashlib.sha256(ref.encode()).hexdigest()
        shutil.rmtree(self._ingest / key, ignore_errors=True)

    def write_blob(self, data: bytes, *, expected: str | None = None) -> str:
        """Store a small in-memory blob (manifest, config); returns its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if expected is not None and parse_digest(expected) != digest:
            raise DigestMismatch(f"blob: content has digest {digest}, expected {expected}")
        if self.exists(digest):
            return digest
        with self.writer(f"write-{digest}", expected=digest, total=len(data), wait=True) as w:
            if w.offset:
                w.truncate()
            w.write(data)
            return w.commit(len(data), digest)

    def ingest_stream(self, src: BinaryIO, *, ref: str, expected: str | None = None,
                      size: int | None = None) -> str:
        """Copy a stream into the store (verified if `expected`/`size` are given)."""
        if expected is not None and self.exists(expected):
            return expected
        with self.writer(ref, expected=expected, total=size, wait=True) as w:
            if w.offset:
                w.truncate()
            while chunk := src.read(_CHUNK):
                w.write(chunk)
            return w.commit(size, expected)


class Writer:
    """One ingest: hashes as it writes, resumes from the partial file, commits atomically."""

    def __init__(self, store: ContentStore, ref: str, ingest_dir: Path, lock_fd: int,
                 expected: str | None, total: int | None) -> None:
        self.ref = ref
        self._store = store
        self._dir = ingest_dir
        self._lock_fd = lock_fd
        self._data_path = ingest_dir / "data"
        meta_path = ingest_dir / "meta.json"
        self._hash = hashlib.sha256()
        old: dict[str, object] = {}
        with contextlib.suppress(OSError, ValueError):
            old = json.loads(meta_path.read_text())
        self.expected = expected if expected is not None else _opt_str(old.get("expected"))
        self.total = total if total is not None else _opt_int(old.get("total"))
        self._file = open(self._data_path, "a+b")
        if expected is not None and old.get("expected") not in (None, expected):
            self._file.truncate(0)  # partial bytes of some other content: start over
        # hashlib state cannot be saved, so a resumed ingest re-reads what it already has.
        self._file.seek(0)
        while chunk := self._file.read(_CHUNK):
            self._hash.update(chunk)
        self.offset = self._file.tell()
        tmp = meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"ref": ref, "expected": self.expected, "total": self.total}))
        tmp.replace(meta_path)
        self._closed = False

    def write(self, data: bytes | memoryview) -> int:
        """Append bytes at the current offset."""
        self._file.write(data)
        self._hash.update(data)
        self.offset += len(data)
        return len(data)

    def truncate(self) -> None:
        """Start over (the server ignored our Range request, or the partial was bad)."""
        self._file.seek(0)
        self._file.truncate(0)
        self._hash = hashlib.sha256()
        self.offset = 0

    def digest(self) -> str:
        """Digest of what has been written so far."""
        return "sha256:" + self._hash.hexdigest()

    def commit(self, size: int | None = None, expected: str | None = None) -> str:
        """Verify and publish the blob; returns its digest. A short ingest is kept (to resume);
        a long or wrong one is discarded. Committing content already present is not an error:
        by its digest it is the same bytes.
        """
        size = size if size is not None else self.total
        expected = expected if expected is not None else self.expected
        self._file.flush()
        os.fsync(self._file.fileno())
        if size is not None and self.offset < size:
            raise DigestMismatch(
                f"blob {expected or self.ref}: truncated, got {self.offset} of {size} bytes"
            )
        actual = self.digest()
        if size is not None and self.offset > size:
            got = self.offset
            self.truncate()
            raise DigestMismatch(f"blob {expected or self.ref}: got {got} bytes, expected {size}")
        if expected is not None and actual != expected:
            self.truncate()
            raise DigestMismatch(f"blob {expected}: content has digest {actual}")
        target = self._store.blob_path(actual)
        os.fchmod(self._file.fileno(), 0o444)
        self._file.close()
        if target.exists():
            self._data_path.unlink()
        else:
            os.rename(self._data_path, target)
            _fsync_dir(target.parent)
        self._remove()
        return actual

    def close(self) -> None:
        """Release the ingest, keeping partial bytes for a later resume."""
        if not self._closed:
            self._closed = True
            if not self._file.closed:
                self._file.close()
            os.close(self._lock_fd)

    def abort(self) -> None:
        """Release the ingest and discard its bytes."""
        if not self._file.closed:
            self._file.close()
        self._remove()

    def _remove(self) -> None:
        # Remove while still holding the lock so a waiting writer sees the directory gone.
        shutil.rmtree(self._dir, ignore_errors=True)
        self.close()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) else None
