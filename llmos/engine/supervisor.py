"""Daemon-side duties the engine has while llmosd runs: restart policies and recovery.

Restart policies are the daemon's job (as in Docker): a watcher notices containers whose
process ended, and restarts those whose policy says so, with a doubling back-off (100 ms up
to 1 min) that resets once a container has run for 10 s. Recovery on start re-adopts running
containers (their shims kept them alive), records exits that happened while the daemon was
down, and collects what a crash left half-made.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from typing import Any

from llmos.engine.engine import Engine, now_iso
from llmos.errors import NotFound, RuntimeError_

log = logging.getLogger("llmos.supervisor")

BACKOFF_MIN = 0.1
BACKOFF_MAX = 60.0
STABLE_AFTER = 10.0


def should_restart(rec: dict[str, Any]) -> bool:
    """Docker's rules: policy, exit code, retry count, and whether a user stopped it."""
    policy = rec["HostConfig"]["RestartPolicy"]
    name = policy.get("Name", "no")
    if name == "no" or rec.get("UserStopped"):
        return False
    code = rec["State"]["ExitCode"]
    if name == "on-failure":
        limit = policy.get("MaximumRetryCount") or 0
        return code != 0 and (limit == 0 or rec.get("RestartCount", 0) < limit)
    return name in ("always", "unless-stopped")


class Supervisor:
    def __init__(self, engine: Engine, interval: float = 0.05) -> None:
        self.engine = engine
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_try: dict[str, float] = {}
        self._backoff: dict[str, float] = {}

    def recover(self) -> dict[str, int]:
        """Reconcile records, runtime state and snapshots after a (possibly unclean) stop."""
        eng = self.engine
        adopted = exited = collected = 0
        known = set()
        for rec in list(eng.records.all()):
            if "Overlay" not in rec or not eng.records.dir(rec["Id"]).is_dir():
                # A create that never finished its files: nothing of it may run.
                eng._remove_files(rec["Id"])
                collected += 1
                continue
            known.add(rec["Id"])
            before = rec["State"]["Status"]
            rec = eng._refresh(rec)
            if rec["State"]["Running"]:
                adopted += 1
            elif before in ("running", "paused", "restarting"):
                exited += 1
        # A container directory without a record: a create interrupted before its record.
        for entry in os.listdir(eng.records.root):
            if entry not in known and len(entry) == 64:
                eng._remove_files(entry)
                collected += 1
        # Runtime state without a record, or a runtime directory whose state file was never
        # written (a crash inside create): delete it, and its cgroup, by id.
        if eng.runtime.root.is_dir():
            for entry in os.listdir(eng.runtime.root):
                state_ok = (eng.runtime.root / entry / "state.json").exists()
                if entry in known and state_ok and not _half_created(eng, entry):
                    continue
                try:
                    eng.runtime.delete(entry, force=True)
                except (NotFound, RuntimeError_):
                    _destroy_orphan_cgroup(entry)
                    shutil.rmtree(eng.runtime.root / entry, ignore_errors=True)
                collected += 1
        # Network namespaces held for containers that are not running (a crash between
        # making one and starting its container, or an exit not yet recorded).
        netns_dir = eng.run_root / "netns"
        if netns_dir.is_dir():
            running = {r["Id"] for r in eng.records.all() if r["State"]["Running"]}
            for entry in os.listdir(netns_dir):
                if entry not in running:
                    eng._release_netns(entry)
                    collected += 1
        # Bridges and rules: re-created for live containers, dropped for the rest.
        if (eng.root / "network").exists():
            live = [r["Id"] for r in eng.records.all() if r["State"]["Running"]]
            try:
                eng.network().restore(live_containers=live)
            except Exception as e:
                log.warning("network restore: %s", e)
        # Snapshots of containers that no longer exist.
        try:
            for info in eng.images.snapshotter.walk():
                is_container = len(info.key) == 64 and all(c in "0123456789abcdef"
                                                           for c in info.key)
                if info.kind == "active" and is_container and info.key not in known:
                    eng.images.snapshotter.remove(info.key)
                    collected += 1
        except Exception as e:  # never let cleanup keep the daemon from starting
            log.warning("snapshot cleanup: %s", e)
        return {"adopted": adopted, "exited": exited, "collected": collected}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception as e:  # keep supervising whatever one container does
                log.exception("supervisor: %s", e)

    def tick(self) -> None:
        eng = self.engine
        now = time.monotonic()
        for rec in list(eng.records.all()):
            cid = rec["Id"]
            status = rec["State"]["Status"]
            if status in ("running", "paused"):
                rec = eng._refresh(rec)
                if rec["State"]["Running"]:
                    continue
                if rec["HostConfig"].get("AutoRemove"):
                    eng.remove_exited(rec)
                    continue
            if rec["State"]["Status"] not in ("exited", "restarting") or not should_restart(rec):
                continue
            due = self._next_try.get(cid)
            if due is None:
                started = rec["State"].get("StartedAt")
                ran = _ran_seconds(started, rec["State"].get("FinishedAt"))
                delay = self._backoff.get(cid, BACKOFF_MIN / 2) * 2
                if ran >= STABLE_AFTER:
                    delay = BACKOFF_MIN
                delay = min(delay, BACKOFF_MAX)
                self._backoff[cid] = delay
                self._next_try[cid] = now + delay
                rec["State"]["Status"] = "restarting"
                rec["State"]["Restarting"] = True
                eng.records.save(rec)
                continue
            if now < due:
                continue
            del self._next_try[cid]
            rec["RestartCount"] = rec.get("RestartCount", 0) + 1
            try:
                with eng._lock:
                    eng._start(rec)
            except RuntimeError_ as e:
                log.warning("restart of %s failed: %s", cid[:12], e)
                rec["State"].update(Status="exited", Restarting=False,
                                    FinishedAt=now_iso())
                eng.records.save(rec)


def _half_created(eng: Engine, cid: str) -> bool:
    """Runtime state with no pid: the daemon died inside create; nothing of it is usable."""
    from llmos.runtime.state import StateDir

    try:
        return StateDir(eng.runtime.root, cid).load().pid == 0
    except RuntimeError_:
        return True


def _destroy_orphan_cgroup(cid: str) -> None:
    from llmos.cgroups import open_cgroup

    try:
        cg = open_cgroup(f"llmos/{cid}")
        if cg.exists():
            cg.kill_all()
            cg.destroy()
    except Exception as e:
        log.warning("cgroup of %s: %s", cid[:12], e)


def _ran_seconds(started: str | None, finished: str | None) -> float:
    import datetime as dt

    try:
        a = dt.datetime.strptime(started or "", "%Y-%m-%dT%H:%M:%S.%fZ")
        b = dt.datetime.strptime(finished or "", "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return 0.0
    return (b - a).total_seconds()
