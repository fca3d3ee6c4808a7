"""The cgroup v1 driver, for v1-only and hybrid hosts.

One directory per mounted hierarchy (a combined ``cpu,cpuacct`` mount is one directory). On a
hybrid host the same path is also made in the cgroup2 hierarchy, as runc does, so the process
is placed there too (systemd and tools reading /proc/<pid>/cgroup's ``0::`` line see it) and
clone3(CLONE_INTO_CGROUP) has a target; controllers the host delegates on cgroup2 but does not
mount as v1 (hugetlb here) are used from there.
"""

from __future__ import annotations

import os

from ..errors import CgroupError, UnsupportedResource
from ..fs import CgroupFs
from ..manager import (
    CgroupManager,
    ancestry,
    make_chain,
    remove_cgroup,
    remove_empty_parents,
    validate_name,
)
from ..mounts import Layout, discover
from ..resources import Resources, Stats
from ..v2 import subtree
from ..v2.hugetlb import Hugetlb as UnifiedHugetlb
from .base import V1Controller
from .blkio import Blkio
from .cpu import Cpu, CpuAcct
from .cpuset import Cpuset
from .devices import Devices
from .freezer import Freezer
from .hugetlb import Hugetlb
from .memory import Memory, oom_kill_count
from .net import NetCls, NetPrio
from .pids import Pids
from .rdma import Rdma

__all__ = ["MANAGED", "V1Manager"]

# Apply order: pids first so a fork bomb is bounded before anything else changes; devices
# before the first process runs anyway.
_CONTROLLERS: tuple[V1Controller, ...] = (
    Pids(),
    Memory(),
    Cpu(),
    Cpuset(),
    Blkio(),
    Hugetlb(),
    Devices(),
    NetCls(),
    NetPrio(),
    Rdma(),
)
_CPUSET = Cpuset()
_FREEZER = Freezer()
_STATS: tuple[V1Controller, ...] = (Memory(), Cpu(), CpuAcct(), Pids())

# The hierarchies a container's cgroup is made in (named ones such as name=systemd are not).
MANAGED = frozenset(
    {
        "blkio",
        "cpu",
        "cpuacct",
        "cpuset",
        "devices",
        "freezer",
        "hugetlb",
        "memory",
        "net_cls",
        "net_prio",
        "pids",
        "rdma",
    }
)


class V1Manager(CgroupManager):
    """One cgroup ``name`` in every managed v1 hierarchy (plus cgroup2 on hybrid hosts)."""

    def __init__(
        self,
        name: str,
        layout: Layout | None = None,
        fs: CgroupFs | None = None,
        *,
        root: str = "/sys/fs/cgroup",
        use_unified: bool = True,
    ) -> None:
        self.name = validate_name(name)
        layout = layout or discover(root)
        self.root = layout.root
        self.fs = fs or CgroupFs()
        self._mounts = {c: m for c, m in layout.v1.items() if c in MANAGED}
        self._unified_root = layout.unified if use_unified else None

    def __repr__(self) -> str:
        return f"V1Manager({self.name!r}, root={self.root!r})"

    def _dir(self, controller: str) -> str | None:
        mount = self._mounts.get(controller)
        return os.path.join(mount, self.name) if mount else None

    def _hierarchies(self) -> list[str]:
        return sorted(set(self._mounts.values()))

    def paths(self) -> dict[str, str]:
        """Controller -> directory, like runc's GetPaths (combined mounts share one)."""
        return {c: os.path.join(m, self.name) for c, m in sorted(self._mounts.items())}

    def dirs(self) -> list[str]:
        out = [os.path.join(m, self.name) for m in self._hierarchies()]
        unified = self.unified_dir()
        if unified:
            out.append(unified)
        return out

    # -- lifecycle -------------------------------------------------------------------------

    def create(self) -> None:
        """mkdir in every hierarchy; in cpuset, copy masks into each new level first."""
        cpuset_mount = self._mounts.get("cpuset")
        for mount in self._hierarchies():
            if mount == cpuset_mount:
                make_chain(
                    self.fs, mount, self.name, lambda path, _leaf: _CPUSET.inherit(self.fs, path)
                )
            else:
                make_chain(self.fs, mount, self.name)
        if self._unified_root:
            make_chain(self.fs, self._unified_root, self.name)

    def apply(self, resources: Resources) -> None:
        """Write every knob ``resources`` sets, hierarchy by hierarchy."""
        if resources.unified:
            raise UnsupportedResource(
                "linux.resources.unified: needs cgroup v2, and this host's controllers are "
                "on cgroup v1"
            )
        for controller in _CONTROLLERS:
            if not controller.needed(resources):
                continue
            path = self._dir(controller.name)
            if path is None and controller.name == "hugetlb" and self._unified_root:
                self._unified_hugetlb(resources)
                continue
            if path is None:
                raise UnsupportedResource(
                    f"{controller.field}: the {controller.name} controller is not mounted "
                    f"under {self.root} (no cgroup v1 '{controller.name}' hierarchy)"
                )
            controller.apply(self.fs, path, resources)

    def _unified_hugetlb(self, resources: Resources) -> None:
        """Hybrid hosts may offer hugetlb only on cgroup2: use it if delegated to ``llmos``."""
        assert self._unified_root is not None
        leaf = os.path.join(self._unified_root, self.name)
        failures: dict[str, CgroupError] = {}
        for rel in ancestry(self.name)[:-1]:
            ancestor = os.path.join(self._unified_root, rel)
            failures.update(subtree.enable(self.fs, ancestor, ["hugetlb"]))
        if "hugetlb" not in subtree.available(self.fs, leaf):
            cause = failures.get("hugetlb")
            raise UnsupportedResource(
                "linux.resources.hugepageLimits: hugetlb is not mounted as cgroup v1 and not "
                f"delegated on cgroup2 under {self._unified_root}"
                + (f" ({cause})" if cause else ""),
                path=cause.path if cause else None,
            )
        UnifiedHugetlb().apply(self.fs, leaf, resources)

    def procs_files(self) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in self.dirs()]

    def unified_dir(self) -> str | None:
        """The cgroup2 twin on hybrid hosts: clone3 can land there; v1 still needs writes."""
        if self._unified_root is None:
            return None
        return os.path.join(self._unified_root, self.name)

    def exists(self) -> bool:
        return any(self.fs.isdir(d) for d in self.dirs())

    def destroy(self, *, timeout: float = 2.0, remove_parents: bool = False) -> None:
        """Remove the cgroup from every hierarchy, then the owned parents that became empty."""
        bases = self._hierarchies() + ([self._unified_root] if self._unified_root else [])
        for base in bases:
            remove_cgroup(self.fs, os.path.join(base, self.name), timeout)
        for base in bases:
            remove_empty_parents(self.fs, base, self.name, remove_parents)

    # -- freezer and kill ------------------------------------------------------------------

    def _freezer_dir(self) -> str:
        path = self._dir("freezer")
        if path is None:
            raise UnsupportedResource(f"freezer: no cgroup v1 freezer hierarchy under {self.root}")
        return path

    def can_freeze(self) -> bool:
        return "freezer" in self._mounts

    def freeze(self, *, timeout: float = 10.0) -> None:
        _FREEZER.freeze(self.fs, self._freezer_dir(), timeout)

    def thaw(self, *, timeout: float = 10.0) -> None:
        _FREEZER.thaw(self.fs, self._freezer_dir(), timeout)

    def frozen(self) -> bool:
        return _FREEZER.state(self.fs, self._freezer_dir()) == "FROZEN"

    def _fast_kill(self) -> bool:
        """On hybrid hosts cgroup2's cgroup.kill reaches every process placed there too."""
        unified = self.unified_dir()
        if not unified:
            return False
        kill = os.path.join(unified, "cgroup.kill")
        if not self.fs.exists(kill):
            return False
        self.fs.write(kill, "1")
        return True

    # -- accounting ------------------------------------------------------------------------

    def stats(self) -> Stats:
        out = Stats()
        for controller in _STATS:
            path = self._dir(controller.name)
            if path is not None:
                controller.stats(self.fs, path, out)
        if "pids" not in self._mounts:
            out.pids_current = len(self.pids())
        return out

    def oom_kill_count(self) -> int:
        path = self._dir("memory")
        return oom_kill_count(self.fs, path) if path else 0
