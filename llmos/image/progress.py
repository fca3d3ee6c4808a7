"""Progress events of pull, push, load and import, for the CLI's TTY bars or plain lines.

One event type for every operation keeps the callback the daemon forwards over RPC simple.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Progress", "ProgressCallback", "emit"]


@dataclass(frozen=True)
class Progress:
    """One step of one item.

    action   resolve | exists | download | resume | verify | unpack | upload | mount |
             manifest | done (per item), and the same words for whole images
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
