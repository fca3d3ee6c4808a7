"""tmp_path that is removed after each test: image tests write large sparse files and
read-only blobs, and must leave nothing behind.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _rmtree(path: Path) -> None:
    def onerror(func: object, p: str, exc: object) -> None:
        os.chmod(os.path.dirname(p), stat.S_IRWXU)  # a layer may hold 0555 directories
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            os.unlink(p)

    shutil.rmtree(path, onerror=onerror)


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="llmos-image-test-"))
    try:
        yield d
    finally:
        _rmtree(d)
