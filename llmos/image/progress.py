"""Progress events of pull, push, load and import, for the CLI's TTY bars or plain lines.

One event type for every operation keeps the callback the daemon forwards over RPC simple.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

__all__ = ["Progress", "ProgressCallback", "emit", "reading"]

# Byte counts of a stream are reported at most this often: http.client reads a request body
# 8 KiB at a time, and an event per read would cost more than the upload (over RPC, too).
_EVERY = 0.1


@dataclass(frozen=True)
class Progress:
    """One step of one item.

    action   resolve | exists | download | resume | verify | downloaded | unpack | upload |
             uploaded | mount | load | import | done (per item), and the same words for
             whole images
    item     a short id of what moves (digest prefix, reference)
    current  bytes done so far (download/upload/unpack), else 0
    total    bytes expected when known
    """

    action: str
    item: str
    current: int = 0
    total: int | None = None
    message: str = ""


ProgressCallback = Callable[[Progress], None]


def emit(cb: ProgressCallback | None, action: str, item: str, current: int = 0,
         total: int | None = None, message: str = "") -> None:
    """Call the callback if there is one (a slow or failing callback is the caller's choice)."""
    if cb is not None:
        cb(Progress(action, _short(item), current, total, message))


def _short(item: str) -> str:
    if item.startswith("sha256:"):
        return item[7:19]
    return item


def reading(f: BinaryIO, cb: ProgressCallback | None, action: str, item: str,
            total: int | None) -> BinaryIO:
    """`f`, reporting how much of it has been read (for uploads and copies that hand the
    file to code that reads it: http.client, an ingest). Without a callback, `f` itself."""
    if cb is None:
        return f
    return cast(BinaryIO, _Reading(f, cb, action, item, total))


class _Reading:
    def __init__(self, f: BinaryIO, cb: ProgressCallback, action: str, item: str,
                 total: int | None) -> None:
        self._f = f
        self._cb = cb
        self._action = action
        self._item = item
        self._total = total
        self._done = 0
        self._last = 0.0
        self._ended = False
        emit(cb, action, item, 0, total)

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self._done += len(data)
        now = time.monotonic()
        end = not data or (self._total is not None and self._done >= self._total)
        if (end and not self._ended) or (data and now - self._last >= _EVERY):
            self._last = now
            self._ended = end
            emit(self._cb, self._action, self._item, self._done, self._total)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        """A retried request reads the body again from the start: so does the count."""
        pos = self._f.seek(offset, whence)
        self._done = pos
        self._ended = False
        return pos

    def tell(self) -> int:
        return self._f.tell()

    def seekable(self) -> bool:
        return self._f.seekable()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> _Reading:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
