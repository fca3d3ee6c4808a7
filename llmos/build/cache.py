"""The build cache: (parent state, instruction, inputs) -> the state after the step.

Why a persisted index: a second build, in another process, with nothing changed, must take
every step from the cache and give the same image id. So each entry stores the whole image
config after the step (history timestamps included) and the layers added, not just a layer:
replaying the stored configs reproduces the same config digest.

The key of a step is `sha256(parent state id, instruction text after substitution, inputs
digest)`. The parent state id is the digest of the parent's full config document, which lists
its layers' diff ids, so it identifies the whole chain below. The inputs digest is the COPY
plan digest (paths, modes, owners, contents) or, for RUN, the build args in effect.

Stored in SQLite at `<store root>/build-cache.db` (schema version 1, PRAGMA user_version):

    steps
      key      TEXT PRIMARY KEY   the step key
      config   TEXT               the image config document after the step (JSON)
      layers   TEXT               JSON list of {"descriptor": {...}, "diff_id": ...} added
      created  REAL
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos.image import Descriptor, LayerBlob, sqlitedb

__all__ = ["BuildCache", "CachedStep", "state_id", "step_key"]

_MIGRATIONS = [
    """
    CREATE TABLE steps (
        key TEXT PRIMARY KEY,
        config TEXT NOT NULL,
        layers TEXT NOT NULL,
        created REAL NOT NULL
    )
    """,
]


def state_id(config_doc: dict[str, Any]) -> str:
    """The identity of a build state: the digest of its config document (canonical JSON)."""
    data = json.dumps(config_doc, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def step_key(parent: str, instruction: str, inputs: str = "") -> str:
    """The cache key of one step."""
    h = hashlib.sha256()
    for part in (parent, instruction, inputs):
        h.update(part.encode())
        h.update(b"\0")
    return "sha256:" + h.hexdigest()


@dataclass(frozen=True)
class CachedStep:
    """What a step produced: the config after it and the layers it added."""

    config: dict[str, Any]
    layers: tuple[LayerBlob, ...]


class BuildCache:
    """The persisted step cache under `root`."""

    def __init__(self, root: str | Path) -> None:
        self.path = Path(root) / "build-cache.db"
        sqlitedb.migrate(self.path, _MIGRATIONS)

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return sqlitedb.transaction(self.path)

    def get(self, key: str) -> CachedStep | None:
        """The stored result of a step, or None."""
        with self._tx() as db:
            row = db.execute("SELECT config, layers FROM steps WHERE key = ?",
                             (key,)).fetchone()
        if row is None:
            return None
        layers = tuple(
            LayerBlob(Descriptor.from_json(item["descriptor"], "build cache layer"),
                      item["diff_id"])
            for item in json.loads(row[1]))
        return CachedStep(json.loads(row[0]), layers)

    def put(self, key: str, config: dict[str, Any], layers: Sequence[LayerBlob]) -> None:
        """Record a step's result (replacing an older one)."""
        doc = [{"descriptor": lb.descriptor.to_json(), "diff_id": lb.diff_id} for lb in layers]
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO steps (key, config, layers, created) "
                       "VALUES (?, ?, ?, ?)",
                       (key, json.dumps(config, separators=(",", ":")), json.dumps(doc),
                        time.time()))

    def forget(self, key: str) -> None:
        """Drop an entry whose layers are gone (pruned)."""
        with self._tx() as db:
            db.execute("DELETE FROM steps WHERE key = ?", (key,))

    def clear(self) -> int:
        """Drop every entry; returns how many there were."""
        with self._tx() as db:
            n = int(db.execute("SELECT COUNT(*) FROM steps").fetchone()[0])
            db.execute("DELETE FROM steps")
        return n
