"""Reading a container's CRI-format log (written by llmos-shim), with tail and follow."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class LogLine:
    timestamp: str
    stream: str  # stdout | stderr
    text: str  # with its newline when the line was complete

    @classmethod
    def parse(cls, line: str) -> LogLine | None:
        parts = line.split(" ", 3)
        if len(parts) < 3:
            return None
        text = parts[3] if len(parts) == 4 else ""
        return cls(parts[0], parts[1], text + ("\n" if parts[2] == "F" else ""))


def _tail_lines(path: str, n: int) -> list[str]:
    """The last n lines, reading backwards in blocks so a huge log is not read whole."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        data = b""
        pos = end
        while pos > 0 and data.count(b"\n") <= n:
            step = min(65536, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    lines = data.decode(errors="replace").splitlines()
    return lines[-n:] if n > 0 else []


def read_log(
    path: str,
    *,
    tail: int | None = None,
    follow: bool = False,
    still_running: Callable[[], bool] | None = None,
    poll: float = 0.005,
    stop: Callable[[], bool] | None = None,
) -> Iterator[LogLine]:
    """Yield the log's lines; with follow, keep yielding until the container has stopped, or
    until `stop()` says the reader has gone (a quiet log would otherwise keep a follower's
    thread polling for as long as the container runs)."""
    if not os.path.exists(path):
        if not follow:
            return
        open(path, "a").close()
    if tail is not None and tail >= 0:
        for line in _tail_lines(path, tail):
            parsed = LogLine.parse(line)
            if parsed:
                yield parsed
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            offset = f.tell()
    else:
        offset = 0
    buf = b""
    idle = 0
    with open(path, "rb") as f:
        f.seek(offset)
        while True:
            chunk = f.read(65536)
            if chunk:
                buf += chunk
                *complete, buf = buf.split(b"\n")
                for raw in complete:
                    parsed = LogLine.parse(raw.decode(errors="replace"))
                    if parsed:
                        yield parsed
                continue
            if not follow:
                return
            # Poll fast while output flows, then back off to 50 ms when the log is quiet.
            idle = idle + 1 if chunk == b"" else 0
            if still_running is not None and not still_running():
                # One more read: the shim flushes the last lines just before it exits.
                rest = f.read()
                buf += rest
                for raw in buf.split(b"\n"):
                    parsed = LogLine.parse(raw.decode(errors="replace")) if raw else None
                    if parsed:
                        yield parsed
                return
            if stop is not None and stop():
                return
            time.sleep(min(poll * (1 + idle // 10), 0.05))
