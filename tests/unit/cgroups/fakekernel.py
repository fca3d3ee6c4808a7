"""A fake cgroup kernel in a temporary directory, for the drivers' unit tests.

It is a :class:`CgroupFs` whose files are real files under ``tmp_path`` but whose behaviour
follows cgroupfs where the drivers depend on it:

- mkdir of a cgroup makes its control files (v1: the hierarchy's set; v2: the core files plus
  those of the controllers the parent enabled in cgroup.subtree_control);
- writes to a missing file fail with ENOENT (nothing is created by a write);
- ``cgroup.subtree_control`` takes ``+ctrl`` tokens, refuses a controller missing from
  cgroup.controllers (the whole write fails), and updates children;
- v1 memory refuses a limit above memory+swap and memory+swap below the limit (EINVAL);
- cpu.shares is clamped to 2..262144; cgroup.freeze updates cgroup.events;
- cgroup.kill SIGKILLs the listed pids; cgroup.procs lists only live, non-zombie pids;
- rmdir refuses a cgroup with children or processes (EBUSY) and removes its files otherwise.

Every write is recorded as (path relative to the tmp root, value).
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
from collections.abc import Iterable, Mapping
from pathlib import Path

from llmos.cgroups.errors import os_error
from llmos.cgroups.fs import CgroupFs

UNLIMITED_V1 = "9223372036854771712"

V1_COMMON = {
    "cgroup.procs": "",
    "tasks": "",
    "cgroup.clone_children": "0",
    "notify_on_release": "0",
}

V1_FILES: dict[str, dict[str, str]] = {
    "memory": {
        "memory.limit_in_bytes": UNLIMITED_V1,
        "memory.memsw.limit_in_bytes": UNLIMITED_V1,
        "memory.soft_limit_in_bytes": UNLIMITED_V1,
        "memory.swappiness": "60",
        "memory.usage_in_bytes": "0",
        "memory.max_usage_in_bytes": "0",
        "memory.memsw.usage_in_bytes": "0",
        "memory.failcnt": "0",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        "memory.stat": "cache 0\nrss 0\ntotal_cache 0\ntotal_rss 0\n",
        "memory.kmem.limit_in_bytes": UNLIMITED_V1,
        "memory.kmem.tcp.limit_in_bytes": UNLIMITED_V1,
        "memory.use_hierarchy": "1",
    },
    "cpu": {
        "cpu.shares": "1024",
        "cpu.cfs_period_us": "100000",
        "cpu.cfs_quota_us": "-1",
        "cpu.cfs_burst_us": "0",
        "cpu.rt_period_us": "1000000",
        "cpu.rt_runtime_us": "0",
        "cpu.idle": "0",
        "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
    },
    "cpuacct": {
        "cpuacct.usage": "0",
        "cpuacct.usage_user": "0",
        "cpuacct.usage_sys": "0",
        "cpuacct.stat": "user 0\nsystem 0\n",
    },
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": "", "cpuset.cpu_exclusive": "0"},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "freezer": {"freezer.state": "THAWED"},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
    "blkio": {
        "blkio.throttle.read_bps_device": "",
        "blkio.throttle.write_bps_device": "",
        "blkio.throttle.read_iops_device": "",
        "blkio.throttle.write_iops_device": "",
    },
    "hugetlb": {
        "hugetlb.2MB.limit_in_bytes": UNLIMITED_V1,
        "hugetlb.1GB.limit_in_bytes": UNLIMITED_V1,
    },
    "net_cls": {"net_cls.classid": "0"},
    "net_prio": {"net_prio.ifpriomap": ""},
}

V1_ROOT_VALUES = {"cpuset.cpus": "0-1", "cpuset.mems": "0"}

V2_CORE = {
    "cgroup.procs": "",
    "cgroup.threads": "",
    "cgroup.controllers": "",
    "cgroup.subtree_control": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0",
    "cgroup.kill": "",
    "cgroup.type": "domain",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
}

V2_FILES: dict[str, dict[str, str]] = {
    "memory": {
        "memory.max": "max",
        "memory.low": "0",
        "memory.high": "max",
        "memory.swap.max": "max",
        "memory.current": "0",
        "memory.peak": "0",
        "memory.swap.current": "0",
        "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
        "memory.stat": "anon 0\nfile 0\n",
    },
    "cpu": {"cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": "", "cpuset.cpus.effective": "0-1"},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "io": {"io.weight": "default 100", "io.max": "", "io.stat": ""},
    "hugetlb": {"hugetlb.2MB.max": "max", "hugetlb.2MB.rsvd.max": "max", "hugetlb.1GB.max": "max"},
    "rdma": {"rdma.max": ""},
    "misc": {"misc.max": ""},
}
V2_CPU_STAT_EXTRA = "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n"


def _alive(pid: int) -> bool:
    """Live and not a zombie: what the kernel lists in cgroup.procs."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class FakeKernel(CgroupFs):
    """cgroupfs semantics over a temporary directory; see the module docstring."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.writes: list[tuple[str, str]] = []
        self.v1_roots: dict[str, list[str]] = {}
        self.v2_roots: set[str] = set()
        self.killed: list[int] = []

    # -- building layouts ----------------------------------------------------------------

    def add_v1(
        self,
        mount: Path,
        controllers: Iterable[str],
        extra: Mapping[str, str] = {},
        drop: Iterable[str] = (),
    ) -> None:
        """A v1 hierarchy at ``mount`` (``extra`` adds files, ``drop`` removes some)."""
        ctrls = list(controllers)
        mount.mkdir(parents=True, exist_ok=True)
        self.v1_roots[str(mount)] = ctrls
        self._v1_extra = getattr(self, "_v1_extra", {})
        self._v1_drop = getattr(self, "_v1_drop", {})
        self._v1_extra[str(mount)] = dict(extra)
        self._v1_drop[str(mount)] = set(drop)
        for name, value in self._v1_files(str(mount)).items():
            (mount / name).write_text(V1_ROOT_VALUES.get(name, value))

    def add_v2(
        self,
        mount: Path,
        controllers: Iterable[str],
        enabled: Iterable[str] = (),
        drop: Iterable[str] = (),
    ) -> None:
        """A cgroup2 root offering ``controllers`` and delegating ``enabled`` to children."""
        mount.mkdir(parents=True, exist_ok=True)
        self.v2_roots.add(str(mount))
        self._v2_drop = set(drop)
        for name, value in V2_CORE.items():
            (mount / name).write_text(value)
        (mount / "cgroup.controllers").write_text(" ".join(controllers))
        (mount / "cgroup.subtree_control").write_text(" ".join(enabled))

    def _v1_files(self, mount: str) -> dict[str, str]:
        files = dict(V1_COMMON)
        for ctrl in self.v1_roots[mount]:
            files.update(V1_FILES.get(ctrl, {}))
        files.update(self._v1_extra.get(mount, {}))
        for name in self._v1_drop.get(mount, set()):
            files.pop(name, None)
        return files

    def _v2_files_for(self, ctrl: str) -> dict[str, str]:
        return {k: v for k, v in V2_FILES.get(ctrl, {}).items() if k not in self._v2_drop}

    # -- helpers -------------------------------------------------------------------------

    def rel(self, path: str) -> str:
        return os.path.relpath(path, self.base)

    def _root_of(self, path: str) -> tuple[str, str] | None:
        for root in sorted(list(self.v1_roots) + list(self.v2_roots), key=len, reverse=True):
            if path == root or path.startswith(root + "/"):
                return root, ("v2" if root in self.v2_roots else "v1")
        return None

    def value(self, path: str) -> str:
        return Path(path).read_text()

    def set(self, path: str, value: str) -> None:
        """Set a counter the way the kernel would (tests use it for stats)."""
        Path(path).write_text(value)

    def writes_under(self, prefix: str) -> list[tuple[str, str]]:
        return [(p, v) for p, v in self.writes if p.startswith(prefix)]

    def _fail(self, op: str, path: str, code: int, value: str | None = None) -> None:
        raise os_error(op, path, OSError(code, os.strerror(code)), value)

    # -- CgroupFs ------------------------------------------------------------------------

    def read(self, path: str) -> str:
        text = super().read(path)
        if os.path.basename(path) in ("cgroup.procs", "tasks", "cgroup.threads"):
            pids = [int(t) for t in text.split()]
            live = [p for p in pids if _alive(p)]
            if live != pids:
                Path(path).write_text("".join(f"{p}\n" for p in live))
            return "".join(f"{p}\n" for p in live)
        return text

    def write(self, path: str, value: str) -> None:
        if not os.path.isfile(path):
            self._fail("write", path, errno.ENOENT, value)
        self.writes.append((self.rel(path), value))
        name = os.path.basename(path)
        directory = os.path.dirname(path)
        handler = {
            "cgroup.subtree_control": self._subtree,
            "cgroup.freeze": self._freeze,
            "cgroup.kill": self._kill,
            "cgroup.procs": self._procs,
            "memory.limit_in_bytes": self._v1_limit,
            "memory.memsw.limit_in_bytes": self._v1_memsw,
            "cpu.shares": self._shares,
        }.get(name)
        if handler is not None:
            handler(path, directory, value)
        else:
            Path(path).write_text(value)

    def mkdir(self, path: str) -> bool:
        if os.path.isdir(path):
            return False
        if not os.path.isdir(os.path.dirname(path)):
            self._fail("mkdir", path, errno.ENOENT)
        found = self._root_of(path)
        os.mkdir(path)
        if found is None:
            return True
        root, kind = found
        if kind == "v1":
            for name, value in self._v1_files(root).items():
                Path(path, name).write_text(value)
        else:
            for name, value in V2_CORE.items():
                Path(path, name).write_text(value)
            enabled = Path(os.path.dirname(path), "cgroup.subtree_control").read_text().split()
            Path(path, "cgroup.controllers").write_text(" ".join(enabled))
            for ctrl in enabled:
                self._add_v2_files(path, ctrl)
        return True

    def rmdir(self, path: str) -> None:
        if not os.path.isdir(path):
            self._fail("rmdir", path, errno.ENOENT)
        if any(e.is_dir() for e in os.scandir(path)):
            self._fail("rmdir", path, errno.EBUSY)
        procs = Path(path, "cgroup.procs")
        if procs.exists() and self.read(str(procs)).split():
            self._fail("rmdir", path, errno.EBUSY)
        shutil.rmtree(path)

    # -- kernel behaviour ----------------------------------------------------------------

    def _add_v2_files(self, path: str, ctrl: str) -> None:
        for name, value in self._v2_files_for(ctrl).items():
            target = Path(path, name)
            if not target.exists():
                target.write_text(value)
        if ctrl == "cpu":
            stat = Path(path, "cpu.stat")
            if "nr_periods" not in stat.read_text():
                stat.write_text(stat.read_text() + V2_CPU_STAT_EXTRA)

    def _subtree(self, path: str, directory: str, value: str) -> None:
        available = Path(directory, "cgroup.controllers").read_text().split()
        enabled = Path(path).read_text().split()
        tokens = value.split()
        for tok in tokens:  # all or nothing, like the kernel
            if tok[0] not in "+-" or (tok[0] == "+" and tok[1:] not in available):
                self._fail("write", path, errno.ENOENT, value)
        for tok in tokens:
            ctrl = tok[1:]
            if tok[0] == "+" and ctrl not in enabled:
                enabled.append(ctrl)
            elif tok[0] == "-" and ctrl in enabled:
                enabled.remove(ctrl)
        Path(path).write_text(" ".join(enabled))
        for child in os.scandir(directory):
            if child.is_dir():
                Path(child.path, "cgroup.controllers").write_text(" ".join(enabled))
                for ctrl in enabled:
                    self._add_v2_files(child.path, ctrl)

    def _freeze(self, path: str, directory: str, value: str) -> None:
        Path(path).write_text(value)
        events = Path(directory, "cgroup.events")
        populated = "1" if self.read(os.path.join(directory, "cgroup.procs")).split() else "0"
        events.write_text(f"populated {populated}\nfrozen {value.strip()}\n")

    def _kill(self, path: str, directory: str, value: str) -> None:
        for dirpath, _, _ in os.walk(directory):
            for pid in self.read(os.path.join(dirpath, "cgroup.procs")).split():
                self.killed.append(int(pid))
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _procs(self, path: str, directory: str, value: str) -> None:
        pid = int(value)
        found = self._root_of(path)
        if found is not None:  # a process is in one cgroup per hierarchy: leave the old one
            for dirpath, _, files in os.walk(found[0]):
                if "cgroup.procs" in files and dirpath != directory:
                    other = Path(dirpath, "cgroup.procs")
                    pids = [p for p in other.read_text().split() if int(p) != pid]
                    other.write_text("".join(f"{p}\n" for p in pids))
        current = Path(path).read_text().split()
        if str(pid) not in current:
            current.append(str(pid))
        Path(path).write_text("".join(f"{p}\n" for p in current))

    @staticmethod
    def _num(text: str) -> int:
        n = int(text.strip())
        return 1 << 63 if n == -1 else n

    def _v1_limit(self, path: str, directory: str, value: str) -> None:
        memsw = Path(directory, "memory.memsw.limit_in_bytes")
        if memsw.exists() and self._num(value) > self._num(memsw.read_text()):
            self._fail("write", path, errno.EINVAL, value)
        Path(path).write_text(value)

    def _v1_memsw(self, path: str, directory: str, value: str) -> None:
        limit = Path(directory, "memory.limit_in_bytes")
        if self._num(value) < self._num(limit.read_text()):
            self._fail("write", path, errno.EINVAL, value)
        Path(path).write_text(value)

    def _shares(self, path: str, directory: str, value: str) -> None:
        Path(path).write_text(str(min(max(int(value), 2), 262144)))
