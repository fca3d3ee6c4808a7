"""Container records in the daemon's SQLite store (llmos.daemon.store), plus their directories.

The row holds the container's whole inspect document (Docker's shape) in its `config` column,
with status, restart policy and exit code as columns for queries; names are unique in the
database, so two concurrent creates cannot both take one. Each container also has a
directory (bundle, log, /etc files) beside the database; a directory without a row, or a row
whose directory was never finished, is garbage the daemon collects on start.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmos.errors import AlreadyExists, NotFound

_STATUSES = {"created", "running", "paused", "restarting", "exited", "dead", "removing"}


def _ts(text: str | None) -> float | None:
    if not text or text.startswith("0001-"):
        return None
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=dt.UTC).timestamp()
    except ValueError:
        return None


class RecordStore:
    def __init__(self, root: Path, db_path: Path | None = None) -> None:
        from llmos.daemon.store import Store

        self.root = root
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.store = Store(str(db_path or root.parent / "engine.db"))

    def close(self) -> None:
        self.store.close()

    def dir(self, cid: str) -> Path:
        return self.root / cid

    def _fields(self, rec: dict[str, Any]) -> dict[str, Any]:
        st = rec["State"]
        status = st["Status"] if st["Status"] in _STATUSES else "created"
        policy = rec["HostConfig"]["RestartPolicy"]
        return {
            "status": status,
            "config": rec,
            "restart_policy": policy.get("Name", "no"),
            "restart_max": int(policy.get("MaximumRetryCount") or 0),
            "restart_count": int(rec.get("RestartCount", 0)),
            "exit_code": st.get("ExitCode") if status == "exited" else None,
            "started": _ts(st.get("StartedAt")),
            "finished": _ts(st.get("FinishedAt")),
        }

    def add(self, rec: dict[str, Any]) -> None:
        """Insert a new container; its name must be free (checked in the same transaction)."""
        from llmos.daemon import errors
        from llmos.daemon.records import ContainerRecord

        f = self._fields(rec)
        try:
            self.store.add_container(ContainerRecord(
                id=rec["Id"], name=rec["Name"].lstrip("/"), image=rec["Image"], **f))
        except errors.AlreadyExists:
            raise AlreadyExists(
                f"the container name {rec['Name'].lstrip('/')!r} is already in use") from None

    def save(self, rec: dict[str, Any]) -> None:
        """Update the record; a no-op if the container was removed meanwhile."""
        from llmos.daemon import errors

        try:
            self.store.update_container(rec["Id"], **self._fields(rec))
        except errors.NotFound:
            pass

    def remove(self, cid: str) -> None:
        from llmos.daemon import errors

        try:
            self.store.remove_container(cid)
        except errors.NotFound:
            pass

    def load(self, cid: str) -> dict[str, Any] | None:
        from llmos.daemon import errors

        try:
            return dict(self.store.get_container(cid).config)
        except errors.NotFound:
            return None

    def all(self) -> Iterator[dict[str, Any]]:
        for row in self.store.list_containers():
            yield dict(row.config)

    def ids(self) -> set[str]:
        return {row.id for row in self.store.list_containers()}

    def find_name(self, name: str) -> dict[str, Any] | None:
        rec = self.load(name.lstrip("/"))
        if rec is not None and rec["Name"] == "/" + name.lstrip("/"):
            return rec
        return None

    def resolve(self, ref: str) -> dict[str, Any]:
        """A container by full id, name, or unique id prefix (Docker's rules)."""
        from llmos.daemon import errors

        if not ref:
            raise NotFound("no container given")
        try:
            return dict(self.store.get_container(ref).config)
        except errors.AmbiguousReference as e:
            raise NotFound(str(e)) from None
        except errors.NotFound:
            raise NotFound(f"no such container: {ref}") from None

    # -- events --------------------------------------------------------------------------

    def event(self, action: str, rec: dict[str, Any], **attrs: Any) -> None:
        self.store.append_event("container", action, rec["Id"], {
            "name": rec["Name"].lstrip("/"), "image": rec["Config"]["Image"],
            **{k: str(v) for k, v in attrs.items()}})

    def events_since(self, since: float, after_seq: int = 0) -> list[Any]:
        return self.store.events_since(since, after_seq=after_seq)
