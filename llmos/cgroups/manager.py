"""The one cgroup interface both drivers implement, plus the lifecycle logic they share.

A manager owns one cgroup, named by its path below each hierarchy root (``llmos/<id>``). Every
name must start with the ``llmos`` parent: that directory and everything below it is ours, so
the drivers may enable controllers, copy cpuset masks and remove empty directories there, and
never touch a cgroup llmos did not create.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable

from .errors import CgroupBusy, CgroupError
from .fs import CgroupFs
from .resources import Resources, Stats

__all__ = [
    "OWNER",
    "CgroupManager",
    "ancestry",
    "make_chain",
    "remove_cgroup",
    "remove_empty_parents",
    "validate_name",
    "wait_until",
]

OWNER = "llmos"


def validate_name(name: str) -> str:
    """Normalise ``name`` and insist it lives below the ``llmos`` parent.

    A leading slash is accepted (OCI cgroupsPath style) and dropped; ``..`` and empty parts are
    refused so a name can never reach a cgroup llmos does not own.
    """
    parts = name.strip("/").split("/")
    if any(p in ("", ".", "..") for p in parts) or len(parts) < 2 or parts[0] != OWNER:
        raise CgroupError(
            f"cgroup name {name!r}: must be a relative path below '{OWNER}/' like {OWNER}/<id>"
        )
    return "/".join(parts)


def ancestry(name: str) -> list[str]:
    """The owned chain from the ``llmos`` parent down to ``name``: llmos, llmos/a, llmos/a/b."""
    parts = name.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    """Poll ``check`` with a short back-off; True once it holds, False at the deadline.

    Freezing and emptying a cgroup usually complete within a millisecond, so the first polls
    are quick; the back-off caps at 20 ms to stay cheap when the kernel is slow.
    """
    deadline = time.monotonic() + timeout
    delay = 0.0002
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def make_chain(
    fs: CgroupFs,
    base: str,
    name: str,
    prepare: Callable[[str, bool], None] | None = None,
    attempts: int = 5,
) -> None:
    """``mkdir -p base/name`` one level at a time, calling ``prepare(dir, is_leaf)`` after each.

    Another manager's destroy may remove an empty ``llmos`` parent between our mkdir of the
    parent and of the child (ENOENT): the whole chain is then retried.
    """
    for attempt in range(attempts):
        try:
            for rel in ancestry(name):
                path = os.path.join(base, rel)
                fs.mkdir(path)
                if prepare is not None:
                    prepare(path, rel == name)
            return
        except CgroupError as exc:
            if exc.errno != errno.ENOENT or attempt == attempts - 1:
                raise


def remove_cgroup(fs: CgroupFs, path: str, timeout: float) -> None:
    """Remove a cgroup and any child cgroups the container made, retrying EBUSY briefly.

    rmdir answers EBUSY both while tasks are still leaving (a killed process is gone from
    cgroup.procs a moment before the cgroup is released) and while child cgroups exist.
    """
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        try:
            fs.rmdir(path)
            return
        except CgroupError as exc:
            if exc.errno == errno.ENOENT:
                return
            if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                raise
            children = fs.subdirs(path)
            for child in children:
                remove_cgroup(fs, os.path.join(path, child), max(0.0, deadline - time.monotonic()))
            if not children and time.monotonic() >= deadline:
                raise CgroupBusy(
                    f"rmdir {path}: still busy after {timeout:.1f}s (processes left: "
                    f"{_procs_hint(fs, path)})",
                    path=path,
                    errno=exc.errno,
                ) from exc
            if not children:
                time.sleep(delay)
                delay = min(delay * 2, 0.05)


def _procs_hint(fs: CgroupFs, path: str) -> str:
    try:
        pids = fs.read(os.path.join(path, "cgroup.procs")).split()
    except CgroupError:
        return "unknown"
    return ", ".join(pids) or "none"


def remove_empty_parents(fs: CgroupFs, base: str, name: str, include_owner: bool) -> None:
    """Remove the now-empty owned parents of ``name`` below ``llmos`` (and ``llmos`` itself
    when ``include_owner``).

    Best effort: a parent another container still uses answers EBUSY and stays, and so do its
    ancestors. The shared ``llmos`` parent is kept by default, as runc keeps its parents: it
    saves a mkdir per hierarchy on the next create and avoids racing concurrent creates (which
    would retry, see :func:`make_chain`).
    """
    chain = ancestry(name)[:-1]
    if not include_owner:
        chain = chain[1:]
    for rel in reversed(chain):
        try:
            fs.rmdir(os.path.join(base, rel))
        except CgroupError as exc:
            if exc.errno != errno.ENOENT:
                return


class CgroupManager(ABC):
    """One container's cgroup across every hierarchy the host has.

    ``name`` is the path below each hierarchy root (``llmos/<id>``). The runtime calls
    create -> apply -> (the C side writes the pid to :meth:`procs_files`, or clones into
    :meth:`unified_dir`) -> stats/freeze/thaw -> kill_all -> destroy.
    """

    name: str
    root: str
    fs: CgroupFs

    @abstractmethod
    def create(self) -> None:
        """Create the cgroup (and the owned parents) in every hierarchy; idempotent."""

    @abstractmethod
    def apply(self, resources: Resources) -> None:
        """Write the limits in ``resources``; fields left None are not touched."""

    @abstractmethod
    def procs_files(self) -> list[str]:
        """Absolute ``cgroup.procs`` paths a container pid must be written to."""

    @abstractmethod
    def unified_dir(self) -> str | None:
        """The cgroup2 directory for clone3(CLONE_INTO_CGROUP), None without cgroup2."""

    @abstractmethod
    def dirs(self) -> list[str]:
        """Every directory this cgroup has (one per hierarchy); for diagnostics and cleanup."""

    @abstractmethod
    def freeze(self, *, timeout: float = 10.0) -> None:
        """Freeze every process and return once the kernel reports the freeze complete."""

    @abstractmethod
    def thaw(self, *, timeout: float = 10.0) -> None:
        """Thaw and return once the kernel reports the cgroup running."""

    @abstractmethod
    def frozen(self) -> bool:
        """Whether the freeze is complete (a freeze still in progress is not frozen)."""

    @abstractmethod
    def can_freeze(self) -> bool:
        """Whether this host has a freezer for the cgroup (v1 freezer mount or cgroup2)."""

    @abstractmethod
    def stats(self) -> Stats:
        """Usage counters; fields the host cannot report stay 0/None."""

    @abstractmethod
    def oom_kill_count(self) -> int:
        """How many processes the kernel OOM-killed in this cgroup (0 without a counter)."""

    @abstractmethod
    def exists(self) -> bool:
        """Whether any of this cgroup's directories still exists."""

    def add_pid(self, pid: int) -> None:
        """Move ``pid`` into the cgroup in every hierarchy (what the C side does after clone)."""
        for path in self.procs_files():
            self.fs.write(path, str(pid))

    def pids(self) -> list[int]:
        """Every process in the cgroup, merged over hierarchies so none is missed."""
        found: set[int] = set()
        for path in self.procs_files():
            try:
                text = self.fs.read(path)
            except CgroupError as exc:
                if exc.errno == errno.ENOENT:
                    continue
                raise
            found.update(int(tok) for tok in text.split())
        return sorted(found)

    def _fast_kill(self) -> bool:
        """Kill everything in one write when the kernel offers cgroup.kill (v2, 5.14+).

        Returns whether it did; without it, signalling pid by pid does the work.
        """
        return False

    def kill_all(self, sig: int = signal.SIGKILL, *, timeout: float = 10.0) -> None:
        """Send ``sig`` to every process; for SIGKILL, repeat until the cgroup is empty.

        SIGKILL is repeated because a process may fork between reading cgroup.procs and the
        kill. A frozen cgroup is signalled first and then thawed, so the signals are queued and
        the processes die without running another instruction. Other signals are sent once and
        a paused container receives them when resumed.
        """
        if not self.exists():
            return
        if sig != signal.SIGKILL:
            self._signal(sig)
            return
        self._fast_kill()
        self._signal(sig)
        if self._is_frozen():
            self.thaw(timeout=timeout)

        def empty() -> bool:
            if not self.pids():
                return True
            self._signal(sig)
            return False

        if not wait_until(empty, timeout):
            raise CgroupBusy(
                f"cgroup {self.name}: processes {self.pids()} survived SIGKILL for {timeout:.1f}s"
            )

    def _is_frozen(self) -> bool:
        """frozen(), tolerating a half-created cgroup without a freezer directory."""
        try:
            return self.can_freeze() and self.frozen()
        except CgroupError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise

    def _signal(self, sig: int) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue

    @abstractmethod
    def destroy(self, *, timeout: float = 2.0, remove_parents: bool = False) -> None:
        """Remove the cgroup directories and the owned parents below ``llmos`` that became
        empty; fine if already gone. ``remove_parents`` also removes an empty ``llmos``."""
