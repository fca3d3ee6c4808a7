"""Progress of pull, push, load and build as Docker shows it: on a terminal one line per layer,
redrawn in place with bytes and speed; elsewhere (a pipe, a log file, CI) plain lines, one per
change of state, so a log holds no carriage returns, escapes or a line per chunk.

Inside llmosd the verb writes to the caller's terminal through `llmos.cli.session`, so
`sys.stdout.isatty()` (the caller's `stdout_tty`) decides the mode either way; the
terminal's width is only known from COLUMNS there, so lines are kept to 80 columns without it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from llmos.image.progress import Progress

__all__ = ["ProgressView", "human_size", "human_speed"]

# What an event's action reads as; Docker's words where Docker has one.
_LABELS = {
    "resolve": "Resolving",
    "exists": "Already exists",
    "download": "Downloading",
    "resume": "Resuming",
    "verify": "Verifying Checksum",
    "downloaded": "Download complete",
    "unpack": "Extracting",
    "upload": "Pushing",
    "uploaded": "Pushed",
    "mount": "Mounted",
    "load": "Loading",
    "import": "Importing",
    "export": "Exporting",
    "done": "Done",
}
_VERB_LABELS = {
    "pull": {"done": "Pull complete"},
    "push": {"exists": "Layer already exists", "done": "Push complete"},
    "load": {"done": "Load complete"},
    "build": {"export": "Exporting layer", "done": "Exported layer"},
}
# Actions whose `current` counts bytes as they move: these get a bar, a count and a speed.
_MOVING = frozenset({"download", "resume", "upload", "load", "import", "export"})
# Actions that end a phase: their line sums it up (size, mean speed).
_FINISHING = frozenset({"downloaded", "uploaded", "done"})
_WINDOW = 2.0  # seconds of samples behind the speed shown while bytes move
_BAR = 20


def human_size(n: float) -> str:
    """Decimal units as Docker's progress shows them (12.3 MB)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def human_speed(bytes_per_second: float) -> str:
    return f"{bytes_per_second / 1e6:.1f} MB/s"


@dataclass
class _Item:
    name: str
    action: str = ""
    label: str = ""
    message: str = ""
    current: int = 0
    total: int | None = None
    # The byte phase (the last one if there were several): when and where it started and
    # where it stands, for the mean speed of its summary.
    start_time: float | None = None
    start_bytes: int = 0
    last_time: float = 0.0
    last_bytes: int = 0
    samples: deque[tuple[float, int]] = field(default_factory=deque)
    summed_up: bool = False  # plain mode: the summary was printed once already

    def speed(self, now: float) -> float | None:
        """Bytes a second over the last few seconds (a stall shows as a falling figure)."""
        if not self.samples:
            return None
        t0, b0 = self.samples[0]
        dt = now - t0
        return (self.current - b0) / dt if dt > 0 and self.current > b0 else None

    def mean_speed(self) -> float | None:
        if self.start_time is None:
            return None
        dt = self.last_time - self.start_time
        moved = self.last_bytes - self.start_bytes
        return moved / dt if dt > 0 and moved > 0 else None


class ProgressView:
    """Feed it events (`update`, or call it as a `ProgressCallback`) and lines (`log`); close
    it (or use it as a context manager) to leave the terminal below the last line."""

    def __init__(self, out: TextIO | None = None, *, verb: str = "", tty: bool | None = None,
                 width: int | None = None, interval: float = 0.1, keep_done: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`keep_done=False` moves an item that is done out of the live lines into the log:
        for a build, whose layers come one after another between lines of its own."""
        self.out = out if out is not None else sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self.width = width or _width(self.out)
        self.interval = interval
        self.keep_done = keep_done
        self.clock = clock
        self._labels = {**_LABELS, **_VERB_LABELS.get(verb, {})}
        self._items: dict[str, _Item] = {}
        self._drawn = 0  # lines of the live block now on the terminal, above the cursor
        self._last_draw = float("-inf")
        self._dirty = False
        self._lock = threading.Lock()

    def __enter__(self) -> ProgressView:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __call__(self, p: Progress) -> None:
        self.update(p.action, p.item, p.current, p.total, p.message)

    def event(self, ev: Mapping[str, Any]) -> None:
        """An event as the daemon streams it ({action, item, current, total, message})."""
        self.update(str(ev.get("action", "")), str(ev.get("item", "")),
                    int(ev.get("current") or 0), ev.get("total"), str(ev.get("message") or ""))

    def update(self, action: str, item: str, current: int = 0, total: int | None = None,
               message: str = "") -> None:
        with self._lock:
            now = self.clock()
            it = self._items.get(item)
            if it is None:
                it = self._items[item] = _Item(item)
            label = self._labels.get(action, action.capitalize())
            changed = (label, message) != (it.label, it.message)
            if action in _MOVING:
                if it.action not in _MOVING or current < it.current:
                    it.start_time, it.start_bytes = now, current  # a new phase, or a retry
                    it.samples.clear()
                it.samples.append((now, current))
                while len(it.samples) > 2 and now - it.samples[1][0] >= _WINDOW:
                    it.samples.popleft()
                it.last_time, it.last_bytes = now, current
            it.action, it.label, it.message, it.current = action, label, message, current
            if total is not None:
                it.total = total
            if not self.keep_done and action == "done":
                del self._items[item]
                if changed:
                    self._log(self._text(it, now))
                return
            if not self.tty:
                if changed:
                    self._write(self._text(it, now) + "\n")
                    if action in _FINISHING and it.mean_speed() is not None:
                        it.summed_up = True
                return
            self._dirty = True
            if changed or now - self._last_draw >= self.interval:
                self._draw(now)

    def log(self, line: str) -> None:
        """A line of its own (a build step, a summary), printed above the live lines."""
        with self._lock:
            self._log(line)

    def _log(self, line: str) -> None:
        if not self.tty:
            self._write(line + "\n")
            return
        up = f"\033[{self._drawn}A" if self._drawn else ""
        self._drawn = 0
        self._write(f"{up}\r{line}\033[K\n")
        if self._items:
            self._draw(self.clock())

    def close(self) -> None:
        with self._lock:
            if self.tty and self._dirty:
                self._draw(self.clock())

    def _draw(self, now: float) -> None:
        up = f"\033[{self._drawn}A" if self._drawn else ""
        lines = [self._fit(self._text(it, now)) for it in self._items.values()]
        self._write(up + "".join(f"\r{line}\033[K\n" for line in lines))
        self._drawn = len(lines)
        self._last_draw = now
        self._dirty = False

    def _text(self, it: _Item, now: float) -> str:
        text = f"{it.name}: {it.label}"
        if it.message:
            text += f" {it.message}"
        if it.action in _MOVING:
            if not self.tty:  # one line for the whole phase: its size is all there is to say
                return text + (f" {human_size(it.total)}" if it.total else "")
            if it.total:
                done = min(it.current, it.total) * _BAR // it.total
                arrow = ">" if done < _BAR else ""
                text += f" [{'=' * done}{arrow}{' ' * (_BAR - done - len(arrow))}]"
                text += f" {human_size(it.current)}/{human_size(it.total)}"
            else:
                text += f" {human_size(it.current)}"
            speed = it.speed(now)
            if speed is not None:
                text += f" {human_speed(speed)}"
        elif it.action in _FINISHING and not it.summed_up:
            mean = it.mean_speed()
            if mean is not None:
                text += f" {human_size(it.last_bytes)} ({human_speed(mean)})"
        return text

    def _fit(self, line: str) -> str:
        """One terminal row: a wrapped line would throw the cursor arithmetic off."""
        return line if len(line) < self.width else line[:self.width - 1]

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()


def _width(out: TextIO) -> int:
    from llmos.cli import session

    columns = session.environ().get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(out.fileno()).columns
    except (OSError, ValueError):
        return 80
