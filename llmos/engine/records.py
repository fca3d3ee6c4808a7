"""Container records: one JSON document per container, written tmp + rename.

A record lives in the container's own directory, so creating or removing a container touches
one place; a crash between steps leaves either a whole record or none, and a directory
without a record is garbage the daemon collects on start.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmos.errors import NotFound, RuntimeError_

RECORD = "record.json"


class RecordStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def dir(self, cid: str) -> Path:
        return self.root / cid

    def save(self, rec: dict[str, Any]) -> None:
        """Write the record; a no-op if the container was removed meanwhile (a supervisor
        refresh racing a `rm`). The temporary name is per thread: two threads saving the same
        record must not rename each other's file."""
        d = self.dir(rec["Id"])
        tmp = d / f"{RECORD}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(rec, f)
            os.replace(tmp, d / RECORD)
        except FileNotFoundError:
            if d.exists():
                raise

    def load(self, cid: str) -> dict[str, Any] | None:
        try:
            with open(self.dir(cid) / RECORD) as f:
                data: dict[str, Any] = json.load(f)
                return data
        except FileNotFoundError:
            return None
        except ValueError as e:
            raise RuntimeError_(f"container {cid}: corrupt record: {e}") from None

    def all(self) -> Iterator[dict[str, Any]]:
        for entry in sorted(os.listdir(self.root)):
            rec = self.load(entry)
            if rec is not None:
                yield rec

    def find_name(self, name: str) -> dict[str, Any] | None:
        want = "/" + name.lstrip("/")
        return next((r for r in self.all() if r["Name"] == want), None)

    def resolve(self, ref: str) -> dict[str, Any]:
        """A container by full id, name, or unique id prefix (Docker's rules)."""
        if not ref:
            raise NotFound("no container given")
        rec = self.load(ref) if len(ref) == 64 else None
        if rec is not None:
            return rec
        by_name = self.find_name(ref)
        if by_name is not None:
            return by_name
        matches = [e for e in os.listdir(self.root) if e.startswith(ref)]
        if len(matches) > 1:
            raise NotFound(f"container id prefix {ref!r} is ambiguous ({len(matches)} match)")
        if matches:
            rec = self.load(matches[0])
            if rec is not None:
                return rec
        raise NotFound(f"no such container: {ref}")
