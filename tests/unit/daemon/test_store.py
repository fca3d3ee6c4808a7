"""The daemon's SQLite store: records, Docker-style references, transactions, migrations,
concurrent writers, and consistency after the writer is killed mid-transaction."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos.daemon import (
    SCHEMA_VERSION,
    AlreadyExists,
    AmbiguousReference,
    ContainerRecord,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Store,
    VolumeRecord,
    new_id,
)
from llmos.daemon.store import MIGRATIONS


def cid(prefix: str = "") -> str:
    return (prefix + new_id())[:64]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(str(tmp_path / "llmosd.db"))
    yield s
    s.close()


def test_container_round_trip_and_lookups(store: Store) -> None:
    store.add_volume(VolumeRecord("data", "/var/lib/llmos/volumes/data/_data"))
    rec = ContainerRecord(
        cid(), "web", "busybox", created=100.5, status="running",
        config={"Cmd": ["sh", "-c", "echo hi"], "Env": ["A=1"], "cpus": 0.5},
        state={"pid": 42, "shim_pid": 41, "start_time": 123456},
        restart_policy="on-failure", restart_max=3, restart_count=1,
        started=101.0, volumes=("data",),
    )
    store.add_container(rec)
    assert store.get_container(rec.id) == rec
    assert store.get_container("web") == rec
    assert store.get_container("/web") == rec
    assert store.get_container(rec.id[:12]) == rec
    assert store.get_container(rec.id[:1]) == rec
    assert store.list_containers() == [rec]


def test_reopen_keeps_data_and_file_is_private(tmp_path: Path) -> None:
    path = str(tmp_path / "llmosd.db")
    with Store(path) as s:
        rec = s.add_container(ContainerRecord(cid(), "keep", "img"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with Store(path) as s:
        assert s.get_container("keep") == rec
        assert s.schema_version == SCHEMA_VERSION
        assert s.check() == []


def test_prefix_ambiguity_and_name_precedence(store: Store) -> None:
    a = store.add_container(ContainerRecord("abc1" + new_id()[4:], "first", "img"))
    b = store.add_container(ContainerRecord("abc2" + new_id()[4:], "second", "img"))
    with pytest.raises(AmbiguousReference, match="more than one container") as info:
        store.get_container("abc")
    assert info.value.kind == "invalid_argument"
    assert store.get_container("abc1") == a
    assert store.get_container("abc2") == b
    with pytest.raises(NotFound, match="no such container: abc3"):
        store.get_container("abc3")
    # A name wins over an id prefix, as in Docker.
    c = store.add_container(ContainerRecord(cid("f"), "abc1", "img"))
    assert store.get_container("abc1") == c
    # Non-hex references never match as prefixes (and are not SQL patterns).
    with pytest.raises(NotFound):
        store.get_container("ab%")
    with pytest.raises(InvalidArgument):
        store.get_container("")


def test_conflicts_name_the_holder(store: Store) -> None:
    a = store.add_container(ContainerRecord(cid(), "web", "img"))
    with pytest.raises(AlreadyExists, match=f'"web" is already in use by container {a.id[:12]}'):
        store.add_container(ContainerRecord(cid(), "web", "img"))
    with pytest.raises(AlreadyExists, match="container id"):
        store.add_container(ContainerRecord(a.id, "other", "img"))
    store.add_volume(VolumeRecord("vol", "/v"))
    with pytest.raises(AlreadyExists, match="volume vol already exists"):
        store.add_volume(VolumeRecord("vol", "/v"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "ABC"}, "64 lowercase hex"),
        ({"name": "a"}, "container name 'a'"),
        ({"name": "-bad"}, "container name '-bad'"),
        ({"name": "has space"}, "container name"),
        ({"image": ""}, "image must not be empty"),
        ({"status": "zombie"}, "status 'zombie'"),
        ({"restart_policy": "sometimes"}, "restart policy 'sometimes'"),
        ({"restart_max": -1}, "must not be negative"),
        ({"config": {"x": object()}}, "container.config: not JSON data"),
        ({"state": {"x": float("nan")}}, "container.state: not JSON data"),
    ],
)
def test_invalid_records_are_refused(store: Store, change: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"id": cid(), "name": "ok", "image": "img", **change}
    with pytest.raises(InvalidArgument, match=message):
        store.add_container(ContainerRecord(**fields))  # type: ignore[arg-type]
    assert store.list_containers() == []


def test_update_and_compare_and_set(store: Store) -> None:
    rec = store.add_container(ContainerRecord(cid(), "web", "img"))
    other = store.add_container(ContainerRecord(cid(), "db", "img"))
    new = store.update_container(
        rec.id, status="running", started=5.0, state={"pid": 7}, expect_status="created"
    )
    assert (new.status, new.started, new.state) == ("running", 5.0, {"pid": 7})
    assert store.get_container(rec.id) == new
    with pytest.raises(FailedPrecondition, match="is running, not created or paused"):
        store.update_container(rec.id, status="exited", expect_status=("created", "paused"))
    done = store.update_container(rec.id, status="exited", exit_code=3, finished=6.0,
                                  expect_status=["running"])
    assert (done.status, done.exit_code) == ("exited", 3)
    with pytest.raises(AlreadyExists, match='"db" is already in use'):
        store.update_container(rec.id, name="db")
    assert store.update_container(rec.id, name="web2").name == "web2"
    assert store.get_container("web2").id == rec.id
    with pytest.raises(InvalidArgument, match="cannot change created, volumes"):
        store.update_container(rec.id, created=1.0, volumes=())
    with pytest.raises(InvalidArgument, match="status 'bogus'"):
        store.update_container(rec.id, status="bogus")
    with pytest.raises(NotFound):
        store.update_container(cid(), status="exited")
    assert store.get_container(other.id) == other
    assert store.get_container(rec.id).status == "exited"


def test_volumes_in_use_cannot_be_removed(store: Store) -> None:
    store.add_volume(VolumeRecord("data", "/v/data", labels={"a": "b"}, options={"o": "1"}))
    store.add_volume(VolumeRecord("logs", "/v/logs"))
    with pytest.raises(NotFound, match="no such volume: nope"):
        store.add_container(ContainerRecord(cid(), "web", "img", volumes=("data", "nope")))
    assert store.list_containers() == []  # nothing half-inserted
    rec = store.add_container(ContainerRecord(cid(), "web", "img", volumes=("data", "logs")))
    assert store.volume_users("data") == [rec.id]
    with pytest.raises(FailedPrecondition, match=f"in use by container\\(s\\) {rec.id[:12]}"):
        store.remove_volume("data")
    assert store.remove_container(rec.id) == rec
    assert store.volume_users("data") == []
    removed = store.remove_volume("data")
    assert removed.labels == {"a": "b"} and removed.options == {"o": "1"}
    assert [v.name for v in store.list_volumes()] == ["logs"]
    with pytest.raises(NotFound):
        store.get_volume("data")
    with pytest.raises(NotFound):
        store.remove_container(rec.id)
    with pytest.raises(InvalidArgument, match="volume name"):
        store.add_volume(VolumeRecord("/etc", "/etc"))


def test_list_order_and_status_filter(store: Store) -> None:
    old = store.add_container(ContainerRecord(cid(), "old", "img", created=1.0, status="exited"))
    new = store.add_container(ContainerRecord(cid(), "new", "img", created=2.0, status="running"))
    assert [c.name for c in store.list_containers()] == ["new", "old"]
    assert store.list_containers("running") == [new]
    assert store.list_containers(["exited", "dead"]) == [old]
    assert store.list_containers([]) == [new, old]


def test_transactions_are_atomic_and_nest_as_savepoints(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.add_volume(VolumeRecord("data", "/v"))
        store.add_container(ContainerRecord(cid(), "web", "img", volumes=("data",)))
        raise RuntimeError("crash before commit")
    assert store.list_containers() == [] and store.list_volumes() == []

    with store.transaction():
        store.add_volume(VolumeRecord("kept", "/v"))
        try:
            with store.transaction():
                store.add_volume(VolumeRecord("undone", "/v"))
                store.add_volume(VolumeRecord("kept", "/v"))  # AlreadyExists
        except AlreadyExists:
            pass
        store.append_event("volume", "create", "kept")
    assert [v.name for v in store.list_volumes()] == ["kept"]
    assert [e.actor for e in store.events_since()] == ["kept"]


def test_event_ring(tmp_path: Path) -> None:
    with Store(str(tmp_path / "db"), max_events=5) as s:
        for i in range(12):
            s.append_event("container", "start", f"c{i}", {"name": f"n{i}"}, time=100.0 + i)
        events = s.events_since()
        assert [e.actor for e in events] == [f"c{i}" for i in range(7, 12)]
        assert [e.seq for e in events] == list(range(8, 13))
        assert events[0].attributes == {"name": "n7"}
        assert [e.actor for e in s.events_since(110.0)] == ["c10", "c11"]
        assert [e.actor for e in s.events_since(after_seq=11)] == ["c11"]
        assert [e.actor for e in s.events_since(108.0, until=110.0)] == ["c8", "c9"]
        assert len(s.events_since(limit=2)) == 2
        # seqs are never reused, even after everything older was pruned
        assert s.append_event("daemon", "reload", "llmosd").seq == 13


def _make_old_db(path: str, version: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:version]:
        for statement in step:
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {version}")
    db.execute(
        "INSERT INTO containers (id, name, image, status, created, restart_policy, config) "
        "VALUES (?, 'legacy', 'busybox', 'exited', 1.0, 'always', '{\"Cmd\": [\"true\"]}')",
        ("e" * 64,),
    )
    db.execute("INSERT INTO volumes (name, driver, mountpoint, created) "
               "VALUES ('oldvol', 'local', '/v/oldvol', 1.0)")
    db.close()


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_migration_from_an_older_schema(tmp_path: Path, version: int) -> None:
    path = str(tmp_path / "old.db")
    _make_old_db(path, version)
    with Store(path) as s:
        assert s.schema_version == SCHEMA_VERSION
        legacy = s.get_container("legacy")
        assert (legacy.id, legacy.restart_policy, legacy.restart_max) == ("e" * 64, "always", 0)
        assert legacy.config == {"Cmd": ["true"]} and legacy.volumes == ()
        # what later versions added works on the migrated database
        s.append_event("container", "die", legacy.id, {"exitCode": "0"})
        rec = s.add_container(ContainerRecord(cid(), "new", "img", volumes=("oldvol",)))
        with pytest.raises(FailedPrecondition):
            s.remove_volume("oldvol")
        assert s.get_container("new") == rec
        assert s.check() == []
    with Store(path) as s:  # reopening is a no-op
        assert s.schema_version == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "new.db")
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(FailedPrecondition, match=f"schema version {SCHEMA_VERSION + 1} is newer"):
        Store(path)


def test_concurrent_writers_from_ten_threads(tmp_path: Path) -> None:
    path = str(tmp_path / "llmosd.db")
    first = Store(path)
    second = Store(path)  # a second connection: writers also meet SQLite's file lock
    errors: list[BaseException] = []
    per_thread = 20

    def work(n: int) -> None:
        s = first if n % 2 else second
        try:
            for i in range(per_thread):
                with s.transaction():
                    s.add_volume(VolumeRecord(f"v{n}-{i}", "/v"))
                    rec = s.add_container(
                        ContainerRecord(new_id(), f"c{n}-{i}", "img", volumes=(f"v{n}-{i}",))
                    )
                    s.append_event("container", "create", rec.id)
                s.update_container(rec.id, status="running", expect_status="created")
                s.update_container(rec.id, restart_count=i)
                if i % 4 == 0:
                    with s.transaction():
                        s.remove_container(rec.id)
                        s.remove_volume(f"v{n}-{i}")
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        containers = first.list_containers()
        assert len(containers) == 10 * (per_thread - per_thread // 4)
        assert {c.status for c in containers} == {"running"}
        for c in containers:
            n, i = c.name[1:].split("-")
            assert c.volumes == (f"v{n}-{i}",) and c.restart_count == int(i)
        assert len(first.list_volumes()) == len(containers)
        assert len(second.events_since()) == 10 * per_thread
        assert first.check() == []
    finally:
        first.close()
        second.close()


def _writer(path: str, seed: int) -> None:
    """Runs in a forked child until it is killed: multi-row transactions, as fast as it can."""
    rng = random.Random(seed)
    store = Store(path, max_events=200)
    n = 0
    while True:
        n += 1
        with store.transaction():
            for j in range(rng.randint(1, 6)):
                key = f"{seed}-{n}-{j}"
                store.add_volume(VolumeRecord(f"v{key}", "/v"))
                store.add_container(ContainerRecord(
                    new_id(), f"c{key}", "img", volumes=(f"v{key}",),
                    config={"pad": "x" * rng.randint(0, 20000)},
                ))
                store.append_event("container", "create", f"c{key}")
        victims = store.list_containers()[20:]
        with store.transaction():
            for c in victims:
                store.remove_container(c.id)
                store.remove_volume("v" + c.name[1:])
                store.append_event("container", "destroy", c.name)


def _check_invariants(path: str) -> int:
    with Store(path, max_events=200) as s:
        assert s.check() == []
        containers = s.list_containers()
        volumes = {v.name for v in s.list_volumes()}
        # each container came with exactly its own volume, and left with it
        assert {c.volumes for c in containers} == {("v" + c.name[1:],) for c in containers}
        assert volumes == {"v" + c.name[1:] for c in containers}
        assert len(s.events_since()) <= 200
        return len(containers)


def test_killed_writer_leaves_a_consistent_store(tmp_path: Path) -> None:
    path = str(tmp_path / "crash.db")
    Store(path).close()
    rng = random.Random(1234)
    seen = 0
    for attempt in range(50):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            try:
                _writer(path, attempt)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.005, 0.08))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
        seen = max(seen, _check_invariants(path))
    assert seen > 0  # the writer did get work done between kills
