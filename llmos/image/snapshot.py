"""Overlay snapshotter: one directory per layer, shared by every image that has the layer.

It mounts nothing. `prepare`, `view` and `mounts` return `Mount` descriptions that the C side
(or a test) executes, so everything here is testable without root, as in containerd's overlay
snapshotter. Committed snapshots are named by chain id; an image's rootfs is
`prepare(container_id, image.chain_id)`.

On disk:

    <root>/metadata.db           SQLite, schema below
    <root>/snapshots/<id>/fs     the layer's files (upperdir while active, a lowerdir after)
    <root>/snapshots/<id>/work   overlay workdir of an active snapshot

Schema (version 1, PRAGMA user_version; later versions migrate in `_MIGRATIONS`):

    snapshots
      key     TEXT PRIMARY KEY     chain id (committed), container id or unpack key (active)
      id      INTEGER UNIQUE       directory number: short ids keep mount options short
      kind    TEXT                 'active' | 'view' | 'committed'
      parent  TEXT NULL            key of the committed snapshot below
      created REAL
      labels  TEXT                 JSON object

Long layer stacks. Overlay mount data is limited to one page (4096 bytes including the NUL),
about 90 layers with absolute paths. When the options would not fit, `mounts` describes them
relative to `<root>/snapshots` ("12/fs") and sets `Mount.chdir`: the mounter must chdir there
before mount(2). With numeric ids that fits the kernel's own limit of 500 lower layers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import sqlitedb
from .errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

__all__ = ["MAX_LOWER_LAYERS", "Mount", "SnapshotInfo", "Snapshotter", "overlay_mounts"]

PAGE_SIZE = 4096
MAX_LOWER_LAYERS = 500  # OVL_MAX_STACK in fs/overlayfs
KINDS = ("active", "view", "committed")

_MIGRATIONS: list[str] = [
    """
    CREATE TABLE snapshots (
        key TEXT PRIMARY KEY,
        id INTEGER UNIQUE NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
        parent TEXT REFERENCES snapshots(key),
        created REAL NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX snapshots_parent ON snapshots(parent);
    """,
]


@dataclass(frozen=True)
class Mount:
    """One mount to perform, in mount(8) terms.

    type     "overlay" or "bind".
    source   "overlay" for overlay; the directory to bind for bind.
    options  overlay: `lowerdir=` (top layer first, ':'-separated), `upperdir=`, `workdir=`,
             `index=off`; bind: "rbind" and "rw" or "ro" (a read-only bind needs the usual
             second MS_REMOUNT|MS_BIND|MS_RDONLY call).
    chdir    None, or a directory the mounter must chdir to before mount(2) because the
             paths in `options` are relative to it (a stack too long for one page otherwise).
    """

    type: str
    source: str
    options: tuple[str, ...]
    chdir: str | None = None

    @property
    def data(self) -> str:
        """The mount(2) data string (options other than the bind/ro flags, comma-joined)."""
        return ",".join(o for o in self.options if o not in ("rbind", "bind", "ro", "rw"))

    def to_json(self) -> dict[str, object]:
        """As in OCI runtime-spec `mounts[]` plus `chdir`."""
        out: dict[str, object] = {"type": self.type, "source": self.source,
                                  "options": list(self.options)}
        if self.chdir is not None:
            out["chdir"] = self.chdir
        return out


@dataclass(frozen=True)
class SnapshotInfo:
    """A snapshot's metadata."""

    key: str
    kind: str
    parent: str | None
    created: float
    labels: dict[str, str] = field(default_factory=dict)
    id: int = 0


def overlay_mounts(snapshots_dir: str, kind: str, own_id: int | None,
                   parent_ids: Sequence[int], *, page_size: int = PAGE_SIZE) -> list[Mount]:
    """The pure mount description of a snapshot: `parent_ids` are the layers below, nearest
    first; `own_id` is the snapshot's own directory (None for a view, which has no upper).
    """
    if kind not in KINDS:
        raise InvalidArgument(f"snapshot kind {kind!r}")
    if len(parent_ids) > MAX_LOWER_LAYERS:
        raise InvalidArgument(
            f"snapshot has {len(parent_ids)} layers; overlayfs stacks at most {MAX_LOWER_LAYERS}"
        )
    base = snapshots_dir.rstrip("/")
    if kind == "active" and own_id is None:
        raise InvalidArgument("an active snapshot needs its own directory id")
    if kind == "active" and not parent_ids:
        return [Mount("bind", f"{base}/{own_id}/fs", ("rbind", "rw"))]
    if kind != "active":
        if not parent_ids:
            raise InvalidArgument("a view or committed snapshot needs at least one layer")
        if len(parent_ids) == 1:
            return [Mount("bind", f"{base}/{parent_ids[0]}/fs", ("rbind", "ro"))]

    def options(prefix: str) -> tuple[str, ...]:
        opts = ["index=off"]
        if kind == "active":
            opts += [f"workdir={prefix}{own_id}/work", f"upperdir={prefix}{own_id}/fs"]
        opts.append("lowerdir=" + ":".join(f"{prefix}{i}/fs" for i in parent_ids))
        return tuple(opts)

    full = options(base + "/")
    if len(",".join(full)) + 1 <= page_size:
        return [Mount("overlay", "overlay", full)]
    short = options("")
    if len(",".join(short)) + 1 > page_size:
        raise InvalidArgument(f"snapshot has {len(parent_ids)} layers: overlay options do not "
                              f"fit in {page_size} bytes even when relative")
    return [Mount("overlay", "overlay", short, chdir=base)]


class Snapshotter:
    """Overlay snapshots under `root`, with metadata in SQLite."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.snapshots_dir = self.root / "snapshots"
        self.snapshots_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db_path = self.root / "metadata.db"
        sqlitedb.migrate(self._db_path, _MIGRATIONS)

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One IMMEDIATE transaction: a writer excludes other writers (other processes too)."""
        return sqlitedb.transaction(self._db_path)

    # -- queries -----------------------------------------------------------------------
    def stat(self, key: str) -> SnapshotInfo:
        """Metadata of one snapshot; NotFound if there is none by that key."""
        with self._tx() as db:
            return self._get(db, key)

    def exists(self, key: str) -> bool:
        """True if a snapshot (of any kind) has this key."""
        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def walk(self) -> list[SnapshotInfo]:
        """Every snapshot."""
        with self._tx() as db:
            rows = db.execute("SELECT key, kind, parent, created, labels, id FROM snapshots "
                              "ORDER BY id").fetchall()
        return [_info(r) for r in rows]

    def mounts(self, key: str) -> list[Mount]:
        """How to mount an active snapshot or view (pure description, nothing is mounted)."""
        with self._tx() as db:
            info = self._get(db, key)
            if info.kind == "committed":
                raise FailedPrecondition(f"snapshot {key!r} is committed; prepare or view it")
            parents = self._parent_ids(db, info.parent)
        own = info.id if info.kind == "active" else None
        return overlay_mounts(str(self.snapshots_dir), info.kind, own, parents)

    def upper_dir(self, key: str) -> Path:
        """The writable directory of an active snapshot (where a layer is unpacked)."""
        info = self.stat(key)
        if info.kind != "active":
            raise FailedPrecondition(f"snapshot {key!r} is {info.kind}, not active")
        return self.snapshots_dir / str(info.id) / "fs"

    def lower_dirs(self, key: str) -> list[Path]:
        """Layer directories below a snapshot, nearest first (read-only to callers)."""
        with self._tx() as db:
            info = self._get(db, key)
            ids = self._parent_ids(db, info.parent)
        return [self.snapshots_dir / str(i) / "fs" for i in ids]

    def layer_dir(self, key: str) -> Path:
        """The directory holding a committed snapshot's own files."""
        info = self.stat(key)
        return self.snapshots_dir / str(info.id) / "fs"

    # -- changes -----------------------------------------------------------------------
    def prepare(self, key: str, parent: str | None = None, *,
                labels: dict[str, str] | None = None) -> list[Mount]:
        """A new writable snapshot on top of committed `parent` (None: empty)."""
        return self._create(key, parent, "active", labels)

    def view(self, key: str, parent: str, *, labels: dict[str, str] | None = None) -> list[Mount]:
        """A read-only view of committed `parent` (for inspecting an image's files)."""
        return self._create(key, parent, "view", labels)

    def _create(self, key: str, parent: str | None, kind: str,
                labels: dict[str, str] | None) -> list[Mount]:
        if not key:
            raise InvalidArgument("snapshot key: must be non-empty")
        with self._tx() as db:
            if db.execute("SELECT 1 FROM snapshots WHERE key = ?", (key,)).fetchone():
                raise AlreadyExists(f"snapshot {key!r} already exists")
            if parent is not None:
                p = self._get(db, parent)
                if p.kind != "committed":
                    raise FailedPrecondition(
                        f"snapshot parent {parent!r} is {p.kind}; only committed snapshots "
                        "can be parents"
                    )
            row = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM snapshots").fetchone()
            new_id = int(row[0])
            d = self.snapshots_dir / str(new_id)
            if d.exists():  # left by a crash between directory creation and commit
                shutil.rmtree(d)
            d.mkdir(mode=0o755)
            (d / "fs").mkdir(mode=0o755)
            if kind == "active":
                (d / "work").mkdir(mode=0o700)
            db.execute("INSERT INTO snapshots (key, id, kind, parent, created, labels) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       (key, new_id, kind, parent, time.time(), json.dumps(labels or {})))
            parents = self._parent_ids(db, parent)
        return overlay_mounts(str(self.snapshots_dir), kind,
                              new_id if kind == "active" else None, parents)

    def commit(self, name: str, key: str, *, labels: dict[str, str] | None = None) -> None:
        """Freeze active snapshot `key` as committed snapshot `name` (a chain id)."""
        with self._tx() as db:
            info = self._get(db, key)
            if info.kind != "active":
                raise FailedPrecondition(f"snapshot {key!r} is {info.kind}, not active")
            if db.execute("SELECT 1 FROM snapshots WHERE key = ?", (name,)).fetchone():
                raise AlreadyExists(f"snapshot {name!r} already exists")
            merged = {**info.labels, **(labels or {})}
            db.execute("UPDATE snapshots SET key = ?, kind = 'committed', labels = ? "
                       "WHERE key = ?", (name, json.dumps(merged), key))
        # the workdir is only needed while the snapshot is an overlay upper
        shutil.rmtree(self.snapshots_dir / str(info.id) / "work", ignore_errors=True)

    def remove(self, key: str) -> None:
        """Delete a snapshot and its files; a committed one with children is refused."""
        with self._tx() as db:
            info = self._get(db, key)
            child = db.execute("SELECT key FROM snapshots WHERE parent = ? LIMIT 1",
                               (key,)).fetchone()
            if child:
                raise FailedPrecondition(
                    f"snapshot {key!r} has children (e.g. {child[0]!r}); remove them first"
                )
            db.execute("DELETE FROM snapshots WHERE key = ?", (key,))
        shutil.rmtree(self.snapshots_dir / str(info.id), ignore_errors=True)

    def cleanup(self) -> list[Path]:
        """Remove directories no snapshot owns (left by a crash mid-create or mid-remove)."""
        with self._tx() as db:
            known = {str(r[0]) for r in db.execute("SELECT id FROM snapshots")}
            removed = []
            for entry in os.scandir(self.snapshots_dir):
                if entry.name not in known:
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed.append(Path(entry.path))
        return removed

    def usage(self, key: str) -> int:
        """Bytes allocated by a snapshot's own files (not its parents')."""
        total = 0
        for dirpath, _dirs, files in os.walk(self.snapshots_dir / str(self.stat(key).id)):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
        return total

    # -- helpers -----------------------------------------------------------------------
    def _get(self, db: sqlite3.Connection, key: str) -> SnapshotInfo:
        row = db.execute("SELECT key, kind, parent, created, labels, id FROM snapshots "
                         "WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise NotFound(f"snapshot {key!r} does not exist")
        return _info(row)

    def _parent_ids(self, db: sqlite3.Connection, parent: str | None) -> list[int]:
        ids: list[int] = []
        seen: set[str] = set()
        while parent is not None:
            if parent in seen:
                raise FailedPrecondition(f"snapshot metadata has a parent loop at {parent!r}")
            seen.add(parent)
            row = db.execute("SELECT id, parent FROM snapshots WHERE key = ?",
                             (parent,)).fetchone()
            if row is None:
                raise NotFound(f"snapshot parent {parent!r} does not exist")
            ids.append(int(row[0]))
            parent = row[1]
        return ids


def _info(row: tuple[str, str, str | None, float, str, int]) -> SnapshotInfo:
    return SnapshotInfo(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5])
