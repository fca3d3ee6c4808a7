"""Signal names as Docker and runc take them (pure parsing)."""

from __future__ import annotations

import re
import signal

import pytest

from llmos.errors import ConfigError
from llmos.runtime.runtime import parse_signal


@pytest.mark.parametrize(("text", "number"), [
    ("TERM", 15), ("sigkill", 9), ("15", 15), (2, 2),
    ("RTMIN", int(signal.SIGRTMIN)), ("SIGRTMIN+3", int(signal.SIGRTMIN) + 3),
    ("RTMAX-1", int(signal.SIGRTMAX) - 1),
])
def test_names_numbers_and_realtime_signals(text: str | int, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["NOPE", "RTMAX+1", "RTMIN-1"])
def test_unknown_signals_are_named(text: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(text)):
        parse_signal(text)
