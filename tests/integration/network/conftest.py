"""Fixtures for the network layer's integration tests (the lab itself is in netlab.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.integration.network.netlab import Lab


def _can_make_netns() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


@pytest.fixture
def lab() -> Iterator[Lab]:
    reason = _can_make_netns()
    if reason:
        pytest.skip(reason)
    lab = Lab()
    try:
        lab.setup()
        yield lab
    finally:
        problems = lab.cleanup()
    assert not problems, problems
