"""An injectable clock, and a fake one that tests and the simulator move by hand.

The scheduler never reads the wall clock directly: decisions are stamped with ``clock.now()``
so a replay at simulated time gives the same stamps every run (trio's MockClock idea).
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "FakeClock", "MonotonicClock"]


class Clock(Protocol):
    """Anything that tells the time in seconds; only differences are meaningful."""

    def now(self) -> float:
        """Current time in seconds."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic``, immune to wall-clock steps."""

    def now(self) -> float:
        """Seconds from an arbitrary origin, never going backwards."""
        return time.monotonic()


class FakeClock:
    """A clock that only moves when told, so time-dependent code is testable and replayable."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        """The time last set or reached by jumps."""
        return self._now

    def jump(self, seconds: float) -> None:
        """Move forward by ``seconds``; moving backwards would break ordering, so it is refused."""
        if seconds < 0:
            raise ValueError(f"clock.jump: seconds must be >= 0, got {seconds}")
        self._now += seconds

    def set(self, t: float) -> None:
        """Jump to the absolute time ``t`` (never earlier than now)."""
        if t < self._now:
            raise ValueError(f"clock.set: {t} is before the current time {self._now}")
        self._now = float(t)
