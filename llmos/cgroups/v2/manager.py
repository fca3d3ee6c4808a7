"""The cgroup v2 (unified hierarchy) driver."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import CgroupError, UnsupportedResource
from ..fs import CgroupFs, read_keyed
from ..manager import (
    CgroupManager,
    ancestry,
    make_chain,
    remove_cgroup,
    remove_empty_parents,
    validate_name,
)
from ..resources import Resources, Stats
from . import devices, freezer, subtree, unified
from .base import V2Controller
from .cpu import Cpu, cpu_stats
from .cpuset import Cpuset
from .hugetlb import Hugetlb
from .io import Io
from .memory import Memory
from .pids import Pids
from .rdma import Rdma

__all__ = ["DEFAULT_CONTROLLERS", "V2Manager"]

# Enabled down the owned chain at create (those the host delegates), so apply and stats find
# their files; a missing one only matters when apply needs it.
DEFAULT_CONTROLLERS = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")

_CONTROLLERS: tuple[V2Controller, ...] = (
    Memory(),
    Cpu(),
    Cpuset(),
    Pids(),
    Io(),
    Hugetlb(),
    Rdma(),
)


class V2Manager(CgroupManager):
    """One cgroup at ``root/name`` on a cgroup2 mount.

    ``device_loader`` receives the compiled device program; the default loads it with bpf(2)
    (tests pass a recorder, since a temporary directory cannot carry a BPF program).
    """

    def __init__(
        self,
        name: str,
        root: str = "/sys/fs/cgroup",
        fs: CgroupFs | None = None,
        *,
        controllers: Sequence[str] = DEFAULT_CONTROLLERS,
        device_loader: devices.DeviceLoader | None = None,
    ) -> None:
        self.name = validate_name(name)
        self.root = os.path.normpath(root)
        self.fs = fs or CgroupFs()
        self.path = os.path.join(self.root, self.name)
        self._controllers = tuple(controllers)
        self._device_loader = device_loader or devices.load_and_attach

    def __repr__(self) -> str:
        return f"V2Manager({self.name!r}, root={self.root!r})"

    # -- lifecycle -------------------------------------------------------------------------

    def create(self) -> None:
        """mkdir the owned chain, enabling the default controllers in every owned ancestor."""

        def prepare(path: str, is_leaf: bool) -> None:
            if not is_leaf:
                subtree.enable(self.fs, path, self._controllers)

        make_chain(self.fs, self.root, self.name, prepare)

    def _ancestors(self) -> list[str]:
        return [os.path.join(self.root, rel) for rel in ancestry(self.name)[:-1]]

    def _ensure(self, wanted: dict[str, str]) -> None:
        """Make sure every controller in ``wanted`` (controller -> OCI field) reaches the leaf.

        Enabling is retried here (create may predate a delegation), one controller per write
        and only in the owned chain; what still fails is an error naming the field.
        """
        missing = set(wanted) - subtree.available(self.fs, self.path)
        if not missing:
            return
        failures: dict[str, CgroupError] = {}
        for ancestor in self._ancestors():
            for ctrl, exc in subtree.enable(self.fs, ancestor, sorted(missing)).items():
                failures.setdefault(ctrl, exc)
        missing = set(wanted) - subtree.available(self.fs, self.path)
        if missing:
            ctrl = sorted(missing)[0]
            cause = failures.get(ctrl)
            raise UnsupportedResource(
                f"{wanted[ctrl]}: the cgroup v2 {ctrl!r} controller is not available for "
                f"{self.path}" + (f" ({cause})" if cause else ""),
                path=cause.path if cause else None,
                errno=cause.errno if cause else None,
            )

    def apply(self, resources: Resources) -> None:
        """Write every knob ``resources`` sets; unified keys last so they override."""
        active = [c for c in _CONTROLLERS if c.needed(resources)]
        wanted = {c.name: c.field for c in active}
        for ctrl in sorted(unified.controllers_for(resources)):
            wanted.setdefault(ctrl, f"linux.resources.unified.{ctrl}.*")
        if resources.network_class_id is not None or resources.network_priorities:
            raise UnsupportedResource(
                "linux.resources.network: cgroup v2 has no net_cls/net_prio controllers"
            )
        self._ensure(wanted)
        for controller in active:
            controller.apply(self.fs, self.path, resources)
        if devices.needed(resources):
            devices.apply(self.path, resources, self._device_loader)
        unified.apply(self.fs, self.path, resources)

    def procs_files(self) -> list[str]:
        return [os.path.join(self.path, "cgroup.procs")]

    def unified_dir(self) -> str | None:
        return self.path

    def dirs(self) -> list[str]:
        return [self.path]

    def exists(self) -> bool:
        return self.fs.isdir(self.path)

    def destroy(self, *, timeout: float = 2.0, remove_parents: bool = False) -> None:
        """Remove the cgroup (children first), then the owned parents that became empty."""
        remove_cgroup(self.fs, self.path, timeout)
        remove_empty_parents(self.fs, self.root, self.name, remove_parents)

    # -- freezer and kill ------------------------------------------------------------------

    def can_freeze(self) -> bool:
        return freezer.can_freeze(self.fs, self.path)

    def freeze(self, *, timeout: float = 10.0) -> None:
        freezer.freeze(self.fs, self.path, timeout)

    def thaw(self, *, timeout: float = 10.0) -> None:
        freezer.thaw(self.fs, self.path, timeout)

    def frozen(self) -> bool:
        return freezer.is_frozen(self.fs, self.path)

    def _fast_kill(self) -> bool:
        kill = os.path.join(self.path, "cgroup.kill")
        if not self.fs.exists(kill):
            return False
        self.fs.write(kill, "1")
        return True

    # -- accounting ------------------------------------------------------------------------

    def stats(self) -> Stats:
        out = Stats()
        cpu_stats(self.fs, self.path, out)
        for controller in _CONTROLLERS:
            controller.stats(self.fs, self.path, out)
        return out

    def oom_kill_count(self) -> int:
        events = os.path.join(self.path, "memory.events")
        if not self.fs.exists(events):
            return 0
        return read_keyed(self.fs, events).get("oom_kill", 0)
