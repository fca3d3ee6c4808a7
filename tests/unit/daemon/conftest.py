"""Short-lived directories for daemon tests, removed after each test.

Unix socket paths are limited to 107 bytes, so these live directly under /tmp rather than in
pytest's deep tmp_path tree, and nothing is kept between runs.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="llmosd-test-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
