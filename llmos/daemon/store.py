"""The daemon's state in SQLite: containers, named volumes, (later) networks, and events.

Why SQLite: the daemon must survive SIGKILL at any instant (issue 3, point 4) with every
multi-row change (a container and its volume references, a removal and its event) either whole
or absent. SQLite's WAL journal gives that without a home-made log, `PRAGMA integrity_check`
proves it, and `sqlite3 /var/lib/llmos/llmosd.db` lets a human look.

Schema (version 3), migrated by `PRAGMA user_version` through MIGRATIONS:

    containers                          one row per container the daemon knows about
      id             TEXT PK            64 lowercase hex digits (see new_id)
      name           TEXT UNIQUE        without Docker's leading "/"
      image          TEXT               the image as the user named it
      status         TEXT               one of STATUSES; "creating"/"removing" mark work that a
                                        crash may have cut short, for recovery to finish
      created        REAL               unix seconds; started/finished likewise, or NULL
      started, finished, exit_code      the last run
      restart_policy TEXT               no | on-failure | always | unless-stopped
      restart_max    INTEGER            on-failure's N (0: no limit)            [version 3]
      restart_count  INTEGER            restarts done by the policy so far
      config         TEXT (JSON)        what was asked (the engine's create options)
      state          TEXT (JSON)        what is (pids, start times, bundle paths, ...)
        │ 1
        │     ON DELETE CASCADE: removing a container drops its references
        │ n
    container_volumes                   which named volumes a container mounts  [version 3]
      container_id   TEXT  -> containers.id
      volume         TEXT  -> volumes.name   ON DELETE RESTRICT: a volume in use stays
        │ n
        │ 1
    volumes
      name TEXT PK, driver TEXT, mountpoint TEXT, created REAL,
      labels TEXT (JSON), options TEXT (JSON)

    networks                            reserved for the network layer: id TEXT PK,
                                        name TEXT UNIQUE, data TEXT (JSON)

    events                              append-only ring of the last `max_events`  [version 2]
      seq            INTEGER PK AUTOINCREMENT   never reused, so "after seq N" is exact
      time           REAL                       unix seconds (indexed, for --since)
      type, action, actor, attributes (JSON)    Docker's Type, Action, Actor.ID/Attributes

Access from threads: one connection behind a re-entrant lock. The daemon's writes are a few
small rows each and SQLite serialises writers anyway; a connection per thread would leak one
per RPC connection thread. Other processes (a second daemon, tools) coordinate through
SQLite's own file locks, with a busy timeout.

Durability: WAL with synchronous=NORMAL. A killed daemon loses nothing committed; a power loss
may roll back the last commits but never corrupts, and after a power loss every container is
gone anyway, which recovery reconciles.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from llmos.daemon.errors import (
    AlreadyExists,
    AmbiguousReference,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from llmos.daemon.records import (
    RESTART_POLICIES,
    STATUSES,
    ContainerRecord,
    EventRecord,
    VolumeRecord,
    check_container,
    check_volume,
    new_id,
)

__all__ = [
    "MIGRATIONS",
    "RESTART_POLICIES",
    "SCHEMA_VERSION",
    "STATUSES",
    "ContainerRecord",
    "EventRecord",
    "Store",
    "VolumeRecord",
    "new_id",
]

# Each entry is one schema version: applying MIGRATIONS[k] moves version k to k + 1. Never
# edit a shipped entry; append one. All pending steps run in one transaction.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: containers, volumes, networks
        """CREATE TABLE containers (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            image TEXT NOT NULL,
            status TEXT NOT NULL,
            created REAL NOT NULL,
            started REAL,
            finished REAL,
            exit_code INTEGER,
            restart_policy TEXT NOT NULL DEFAULT 'no',
            restart_count INTEGER NOT NULL DEFAULT 0,
            config TEXT NOT NULL DEFAULT '{}',
            state TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX containers_status ON containers(status)",
        """CREATE TABLE volumes (
            name TEXT PRIMARY KEY,
            driver TEXT NOT NULL,
            mountpoint TEXT NOT NULL,
            created REAL NOT NULL,
            labels TEXT NOT NULL DEFAULT '{}',
            options TEXT NOT NULL DEFAULT '{}'
        )""",
        """CREATE TABLE networks (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            data TEXT NOT NULL DEFAULT '{}'
        )""",
    ),
    (  # 2: the event ring
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            time REAL NOT NULL,
            type TEXT NOT NULL,
            action TEXT NOT NULL,
            actor TEXT NOT NULL,
            attributes TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX events_time ON events(time)",
    ),
    (  # 3: on-failure's retry limit; volume references, so a volume in use cannot be removed
        "ALTER TABLE containers ADD COLUMN restart_max INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE container_volumes (
            container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
            volume TEXT NOT NULL REFERENCES volumes(name) ON DELETE RESTRICT,
            PRIMARY KEY (container_id, volume)
        )""",
        "CREATE INDEX container_volumes_volume ON container_volumes(volume)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_HEX = re.compile(r"[0-9a-f]+")

_CONTAINER_COLUMNS = (
    "id", "name", "image", "status", "created", "started", "finished", "exit_code",
    "restart_policy", "restart_max", "restart_count", "config", "state",
)
# What update_container may change: id and created are identity, volumes are fixed at create.
_UPDATABLE = frozenset(_CONTAINER_COLUMNS) - {"id", "created"}
_JSON_FIELDS = frozenset({"config", "state"})


class Store:
    """The daemon's state database at `path` (created 0600; ":memory:" for tests).

    Every method is atomic; `transaction()` makes several calls one atomic change.
    """

    def __init__(self, path: str, *, max_events: int = 10_000, busy_timeout: float = 30.0):
        if max_events < 1:
            raise InvalidArgument(f"max_events: must be at least 1, not {max_events}")
        self.path = path
        self.max_events = max_events
        if path != ":memory:":
            # The state holds environment variables, maybe secrets: never world-readable.
            # SQLite gives the -wal and -shm files the database file's mode.
            os.close(os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600))
        self._db = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._depth = 0
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    # -- plumbing ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (the last one to close folds the WAL into the database)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic change across calls; other threads wait, so keep it short and free of
        I/O. Nested use is a savepoint: an inner failure that is caught undoes only itself."""
        with self._lock:
            if self._depth:
                name = f"sp{self._depth}"
                self._db.execute(f"SAVEPOINT {name}")
                self._depth += 1
                try:
                    yield
                except BaseException:
                    self._db.execute(f"ROLLBACK TO {name}")
                    raise
                finally:
                    self._depth -= 1
                    self._db.execute(f"RELEASE {name}")
                return
            # IMMEDIATE takes the write lock now, so two processes cannot both read and then
            # deadlock upgrading to write.
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth = 0

    def _migrate(self) -> None:
        with self.transaction():
            version = self.schema_version
            if version > SCHEMA_VERSION:
                raise FailedPrecondition(
                    f"{self.path}: schema version {version} is newer than this llmosd knows "
                    f"({SCHEMA_VERSION}); run a newer llmosd"
                )
            for step in MIGRATIONS[version:]:
                for statement in step:
                    self._db.execute(statement)
            if version != SCHEMA_VERSION:
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def schema_version(self) -> int:
        """The database's `user_version`: how many MIGRATIONS it has had."""
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def check(self) -> list[str]:
        """Problems found by SQLite's integrity and foreign-key checks; [] when sound."""
        with self._lock:
            problems = [str(r[0]) for r in self._db.execute("PRAGMA integrity_check")]
            if problems == ["ok"]:
                problems = []
            for r in self._db.execute("PRAGMA foreign_key_check"):
                problems.append(f"foreign key: {r[0]} row {r[1]} -> {r[2]}")
            return problems

    # -- containers ----------------------------------------------------------------------

    def add_container(self, rec: ContainerRecord) -> ContainerRecord:
        """Insert a container and its volume references; the volumes must exist."""
        check_container(rec)
        with self.transaction():
            taken = self._db.execute(
                "SELECT id, name FROM containers WHERE id = ? OR name = ?", (rec.id, rec.name)
            ).fetchone()
            if taken is not None:
                if taken["id"] == rec.id:
                    raise AlreadyExists(f"container id {rec.id} is already in use")
                raise AlreadyExists(
                    f'container name "{rec.name}" is already in use by container '
                    f"{taken['id'][:12]}"
                )
            for volume in rec.volumes:
                if not self._exists("volumes", "name", volume):
                    raise NotFound(f"no such volume: {volume}")
            values = _container_values(rec)
            self._db.execute(
                f"INSERT INTO containers ({', '.join(_CONTAINER_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_CONTAINER_COLUMNS))})",
                [values[c] for c in _CONTAINER_COLUMNS],
            )
            self._db.executemany(
                "INSERT INTO container_volumes (container_id, volume) VALUES (?, ?)",
                [(rec.id, v) for v in dict.fromkeys(rec.volumes)],
            )
        return rec

    def get_container(self, ref: str) -> ContainerRecord:
        """Resolve as Docker does: full id, then name ("/name" too), then a unique id prefix.

        A prefix that matches several containers is AmbiguousReference; none is NotFound.
        """
        if not ref:
            raise InvalidArgument("container reference: must not be empty")
        with self._lock:
            row = self._db.execute("SELECT * FROM containers WHERE id = ?", (ref,)).fetchone()
            if row is None:
                row = self._db.execute(
                    "SELECT * FROM containers WHERE name = ?", (ref.removeprefix("/"),)
                ).fetchone()
            if row is None and _HEX.fullmatch(ref):
                # Ids are hex, so every id starting with `ref` sorts in [ref, ref + "g").
                rows = self._db.execute(
                    "SELECT * FROM containers WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                    (ref, ref + "g"),
                ).fetchall()
                if len(rows) > 1:
                    raise AmbiguousReference(
                        f"container reference {ref!r} matches more than one container "
                        f"({rows[0]['id'][:12]}, {rows[1]['id'][:12]}, ...); give more of the id"
                    )
                row = rows[0] if rows else None
            if row is None:
                raise NotFound(f"no such container: {ref}")
            return self._container(row)

    def list_containers(self, status: str | Collection[str] | None = None) -> list[ContainerRecord]:
        """All containers, newest first (as `docker ps -a`), optionally only some statuses."""
        wanted = [status] if isinstance(status, str) else list(status or ())
        with self._lock:
            if wanted:
                marks = ", ".join("?" * len(wanted))
                rows = self._db.execute(
                    f"SELECT * FROM containers WHERE status IN ({marks}) "
                    "ORDER BY created DESC, id",
                    wanted,
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM containers ORDER BY created DESC, id"
                ).fetchall()
            volumes: dict[str, list[str]] = {}
            for r in self._db.execute(
                "SELECT container_id, volume FROM container_volumes ORDER BY rowid"
            ):
                volumes.setdefault(r[0], []).append(r[1])
            return [_container_from_row(r, volumes.get(r["id"], [])) for r in rows]

    def update_container(
        self, id: str, *, expect_status: str | Collection[str] | None = None, **fields: Any
    ) -> ContainerRecord:
        """Change some fields of container `id` (a full id) and return the new record.

        `expect_status` makes it a compare-and-set: FailedPrecondition unless the container is
        in (one of) those statuses, so a stop and a restart racing cannot both win.
        """
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise InvalidArgument(
                f"update_container: cannot change {', '.join(sorted(unknown))}"
            )
        with self.transaction():
            current = self._db.execute(
                "SELECT * FROM containers WHERE id = ?", (id,)
            ).fetchone()
            if current is None:
                raise NotFound(f"no such container: {id}")
            if expect_status is not None:
                allowed = {expect_status} if isinstance(expect_status, str) else set(expect_status)
                if current["status"] not in allowed:
                    raise FailedPrecondition(
                        f"container {id[:12]} is {current['status']}, not "
                        f"{' or '.join(sorted(allowed))}"
                    )
            if not fields:
                return self._container(current)
            rec = self._container(current)
            for key, value in fields.items():
                setattr(rec, key, value)
            check_container(rec)
            if "name" in fields and fields["name"] != current["name"]:
                other = self._db.execute(
                    "SELECT id FROM containers WHERE name = ?", (rec.name,)
                ).fetchone()
                if other is not None:
                    raise AlreadyExists(
                        f'container name "{rec.name}" is already in use by container '
                        f"{other['id'][:12]}"
                    )
            values = _container_values(rec)
            self._db.execute(
                f"UPDATE containers SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                [*(values[k] for k in fields), id],
            )
            return rec

    def remove_container(self, id: str) -> ContainerRecord:
        """Delete container `id` (a full id) and its volume references; returns what it was."""
        with self.transaction():
            row = self._db.execute("SELECT * FROM containers WHERE id = ?", (id,)).fetchone()
            if row is None:
                raise NotFound(f"no such container: {id}")
            rec = self._container(row)
            self._db.execute("DELETE FROM containers WHERE id = ?", (id,))
            return rec

    def _container(self, row: sqlite3.Row) -> ContainerRecord:
        vols = [
            r[0]
            for r in self._db.execute(
                "SELECT volume FROM container_volumes WHERE container_id = ? ORDER BY rowid",
                (row["id"],),
            )
        ]
        return _container_from_row(row, vols)

    # -- volumes -------------------------------------------------------------------------

    def add_volume(self, rec: VolumeRecord) -> VolumeRecord:
        """Insert a named volume; AlreadyExists if the name is taken."""
        check_volume(rec)
        with self.transaction():
            if self._exists("volumes", "name", rec.name):
                raise AlreadyExists(f"volume {rec.name} already exists")
            self._db.execute(
                "INSERT INTO volumes (name, driver, mountpoint, created, labels, options) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (rec.name, rec.driver, rec.mountpoint, rec.created,
                 _dumps(rec.labels, "volume.labels"), _dumps(rec.options, "volume.options")),
            )
        return rec

    def get_volume(self, name: str) -> VolumeRecord:
        """Volume `name` (volumes resolve by exact name only, as in Docker)."""
        with self._lock:
            row = self._db.execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no such volume: {name}")
        return _volume_from_row(row)

    def list_volumes(self) -> list[VolumeRecord]:
        """All volumes, by name."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM volumes ORDER BY name").fetchall()
        return [_volume_from_row(r) for r in rows]

    def volume_users(self, name: str) -> list[str]:
        """Ids of the containers that mount volume `name`."""
        with self._lock:
            return [
                r[0]
                for r in self._db.execute(
                    "SELECT container_id FROM container_volumes WHERE volume = ? "
                    "ORDER BY container_id",
                    (name,),
                )
            ]

    def remove_volume(self, name: str) -> VolumeRecord:
        """Delete volume `name`; FailedPrecondition while a container (even stopped) uses it."""
        with self.transaction():
            rec = self.get_volume(name)
            users = self.volume_users(name)
            if users:
                raise FailedPrecondition(
                    f"volume {name} is in use by container(s) "
                    f"{', '.join(u[:12] for u in users)}"
                )
            self._db.execute("DELETE FROM volumes WHERE name = ?", (name,))
            return rec

    # -- events --------------------------------------------------------------------------

    def append_event(
        self,
        type: str,
        action: str,
        actor: str,
        attributes: dict[str, str] | None = None,
        *,
        time: float | None = None,
    ) -> EventRecord:
        """Record an event, dropping the oldest beyond `max_events` in the same transaction."""
        when = _now() if time is None else time
        attrs = dict(attributes or {})
        with self.transaction():
            cur = self._db.execute(
                "INSERT INTO events (time, type, action, actor, attributes) "
                "VALUES (?, ?, ?, ?, ?)",
                (when, type, action, actor, _dumps(attrs, "event.attributes")),
            )
            seq = int(cur.lastrowid or 0)
            self._db.execute("DELETE FROM events WHERE seq <= ?", (seq - self.max_events,))
        return EventRecord(seq, when, type, action, actor, attrs)

    def events_since(
        self,
        since: float = 0.0,
        *,
        after_seq: int = 0,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[EventRecord]:
        """Events with time >= `since` (and < `until`) and seq > `after_seq`, oldest first.

        A follower polls with `after_seq` set to the last seq it saw: times can repeat, seqs
        cannot.
        """
        sql = "SELECT * FROM events WHERE time >= ? AND seq > ?"
        args: list[Any] = [since, after_seq]
        if until is not None:
            sql += " AND time < ?"
            args.append(until)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [
            EventRecord(r["seq"], r["time"], r["type"], r["action"], r["actor"],
                        json.loads(r["attributes"]))
            for r in rows
        ]

    def _exists(self, table: str, column: str, value: str) -> bool:
        row = self._db.execute(f"SELECT 1 FROM {table} WHERE {column} = ?", (value,)).fetchone()
        return row is not None


def _now() -> float:
    return time.time()


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"{what}: not JSON data: {e}") from None


def _container_values(rec: ContainerRecord) -> dict[str, Any]:
    values: dict[str, Any] = {c: getattr(rec, c) for c in _CONTAINER_COLUMNS}
    for key in _JSON_FIELDS:
        values[key] = _dumps(values[key], f"container.{key}")
    return values


def _container_from_row(row: sqlite3.Row, volumes: Sequence[str]) -> ContainerRecord:
    return ContainerRecord(
        id=row["id"],
        name=row["name"],
        image=row["image"],
        created=row["created"],
        status=row["status"],
        config=json.loads(row["config"]),
        state=json.loads(row["state"]),
        restart_policy=row["restart_policy"],
        restart_max=row["restart_max"],
        restart_count=row["restart_count"],
        exit_code=row["exit_code"],
        started=row["started"],
        finished=row["finished"],
        volumes=tuple(volumes),
    )


def _volume_from_row(row: sqlite3.Row) -> VolumeRecord:
    return VolumeRecord(
        name=row["name"],
        mountpoint=row["mountpoint"],
        driver=row["driver"],
        created=row["created"],
        labels=json.loads(row["labels"]),
        options=json.loads(row["options"]),
    )
