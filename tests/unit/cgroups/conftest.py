"""Fake hosts for the cgroup drivers: one per layout, all on a :class:`FakeKernel`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from llmos.cgroups import CgroupManager, open_cgroup

from .fakekernel import FakeKernel

V2_CONTROLLERS = ["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"]
V2_ROOT_ENABLED = ["cpuset", "cpu", "io", "memory", "hugetlb", "pids"]


@dataclass
class Host:
    """A temporary cgroup root laid out like a real host of one mode."""

    mode: str
    root: Path
    kernel: FakeKernel
    v1: dict[str, Path] = field(default_factory=dict)
    unified: Path | None = None
    programs: list[tuple[str, bytes]] = field(default_factory=list)

    def open(self, name: str = "llmos/c1") -> CgroupManager:
        return open_cgroup(
            name,
            str(self.root),
            fs=self.kernel,
            mountinfo=str(self.root / "no-mountinfo"),
            device_loader=lambda path, prog: self.programs.append((path, prog)),
        )

    def cgroup_dir(self, controller: str, name: str = "llmos/c1") -> str:
        """Where ``controller``'s files for ``name`` live in this layout."""
        if self.mode == "v2":
            return str(self.root / name)
        return str(self.v1[controller] / name)

    def file(self, controller: str, filename: str, name: str = "llmos/c1") -> str:
        return os.path.join(self.cgroup_dir(controller, name), filename)

    def read(self, controller: str, filename: str, name: str = "llmos/c1") -> str:
        return Path(self.file(controller, filename, name)).read_text().strip()


def make_v1(tmp_path: Path) -> Host:
    """A v1-only host with a combined cpu,cpuacct mount and aliases, as Debian 10 had."""
    root = tmp_path / "cgroup"
    kernel = FakeKernel(tmp_path)
    host = Host("v1", root, kernel)
    combined = root / "cpu,cpuacct"
    kernel.add_v1(combined, ["cpu", "cpuacct"])
    os.symlink("cpu,cpuacct", root / "cpu")
    os.symlink("cpu,cpuacct", root / "cpuacct")
    host.v1 = {"cpu": combined, "cpuacct": combined}
    for ctrl in ("cpuset", "memory", "pids", "freezer", "devices", "blkio", "hugetlb"):
        kernel.add_v1(root / ctrl, [ctrl])
        host.v1[ctrl] = root / ctrl
    return host


def make_hybrid(tmp_path: Path) -> Host:
    """Like the development machines: v1 controllers, cgroup2 at unified with hugetlb only."""
    root = tmp_path / "cgroup"
    kernel = FakeKernel(tmp_path)
    host = Host("hybrid", root, kernel)
    for ctrl in ("cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "devices", "blkio"):
        kernel.add_v1(root / ctrl, [ctrl])
        host.v1[ctrl] = root / ctrl
    host.unified = root / "unified"
    kernel.add_v2(host.unified, ["hugetlb"], enabled=[])
    return host


def make_v2(tmp_path: Path) -> Host:
    """A pure cgroup v2 host whose root delegates the usual controllers."""
    root = tmp_path / "cgroup"
    kernel = FakeKernel(tmp_path)
    host = Host("v2", root, kernel)
    kernel.add_v2(root, V2_CONTROLLERS, enabled=V2_ROOT_ENABLED)
    host.unified = root
    return host


MAKERS = {"v1": make_v1, "hybrid": make_hybrid, "v2": make_v2}


@pytest.fixture(params=["v1", "hybrid", "v2"])
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Host]:
    """The conformance suite runs once per layout (both drivers, three host kinds)."""
    yield MAKERS[request.param](tmp_path)


@pytest.fixture
def v1_host(tmp_path: Path) -> Host:
    return make_v1(tmp_path)


@pytest.fixture
def hybrid_host(tmp_path: Path) -> Host:
    return make_hybrid(tmp_path)


@pytest.fixture
def v2_host(tmp_path: Path) -> Host:
    return make_v2(tmp_path)
