"""Content store: verified, atomic, read-only, resumable."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

import pytest

from llmos.image import ContentStore, DigestMismatch, InvalidArgument, NotFound, Unavailable


def _d(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_write_blob_lands_read_only_at_its_digest(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    digest = cs.write_blob(b"hello")
    assert digest == _d(b"hello")
    path = tmp_path / "blobs" / "sha256" / digest[7:]
    assert path.read_bytes() == b"hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert cs.info(digest).size == 5
    assert cs.read(digest) == b"hello"
    assert [b.digest for b in cs.blobs()] == [digest]
    assert cs.write_blob(b"hello") == digest  # idempotent
    assert cs.ingests() == []


def test_digest_mismatch_publishes_nothing(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    with pytest.raises(DigestMismatch, match="content has digest"):
        cs.write_blob(b"evil", expected=_d(b"good"))
    with cs.writer("r", expected=_d(b"good"), total=4) as w:
        w.write(b"evil")
        with pytest.raises(DigestMismatch, match="content has digest"):
            w.commit()
        assert w.offset == 0  # wrong bytes are not kept for a resume
    assert list(cs.blobs()) == []
    assert not cs.exists(_d(b"good"))


def test_size_mismatch(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    with cs.writer("long", total=3) as w:
        w.write(b"four")
        with pytest.raises(DigestMismatch, match="got 4 bytes, expected 3"):
            w.commit()
    with cs.writer("short", total=10) as w:
        w.write(b"four")
        with pytest.raises(DigestMismatch, match="truncated, got 4 of 10"):
            w.commit()
    assert list(cs.blobs()) == []


def test_interrupted_ingest_resumes_at_its_offset(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    cs = ContentStore(tmp_path)
    with cs.writer("pull-x", expected=_d(data), total=len(data)) as w:
        w.write(data[:100_000])
    # the process "died": nothing published, the partial ingest is listed
    assert list(cs.blobs()) == []
    (status,) = cs.ingests()
    assert (status.ref, status.offset, status.total) == ("pull-x", 100_000, len(data))
    again = ContentStore(tmp_path)
    with again.writer("pull-x") as w:
        assert w.offset == 100_000
        assert w.expected == _d(data) and w.total == len(data)
        w.write(data[100_000:])
        assert w.commit() == _d(data)
    assert again.read(_d(data)) == data
    assert again.ingests() == []


def test_resume_with_other_expected_digest_starts_over(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    with cs.writer("r", expected=_d(b"aaaa")) as w:
        w.write(b"aa")
    with cs.writer("r", expected=_d(b"bbbb")) as w:
        assert w.offset == 0


def test_one_writer_per_ref(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    with cs.writer("r"), pytest.raises(Unavailable, match="another writer"):
        cs.writer("r")
    with cs.writer("r") as w:  # released on close
        w.abort()


def test_missing_and_invalid(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    missing = _d(b"nothing")
    with pytest.raises(NotFound, match="not in the content store"):
        cs.info(missing)
    with pytest.raises(NotFound):
        cs.open(missing)
    with pytest.raises(NotFound):
        cs.delete(missing)
    with pytest.raises(InvalidArgument):
        cs.blob_path("sha256:../../etc/passwd")
    with pytest.raises(InvalidArgument):
        cs.blob_path("md5:abc")


def test_ingest_stream_and_delete(tmp_path: Path) -> None:
    cs = ContentStore(tmp_path)
    data = os.urandom(3 << 20)
    digest = cs.ingest_stream(io.BytesIO(data), ref="s", expected=_d(data), size=len(data))
    assert cs.info(digest).size == len(data)
    cs.delete(digest)
    assert not cs.exists(digest)
