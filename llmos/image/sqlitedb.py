"""The one way llmos's small SQLite files are opened, written and migrated.

Each call gets its own connection in one IMMEDIATE transaction, so a writer excludes other
writers, other processes included (the daemon and an in-process client may share a root),
and nothing is cached that another process could make stale.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence


@contextlib.contextmanager
def transaction(path: str | os.PathLike[str]) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        # With the WAL journal (set once by migrate) a commit appends to the log without an
        # fsync; a power cut can lose the last commits but never corrupts the file. A
        # rollback journal fsyncs two or three times per commit: ~1 ms each on this disk,
        # several times per `llmos run`.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    finally:
        db.close()


def migrate(path: str | os.PathLike[str], migrations: Sequence[str]) -> None:
    """Bring the schema to len(migrations), tracked in PRAGMA user_version.

    Statements run one by one: executescript() would commit behind the transaction's back.
    """
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the file itself
    finally:
        db.close()
    with transaction(path) as db:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for i in range(version, len(migrations)):
            for statement in filter(str.strip, migrations[i].split(";")):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {i + 1}")
