"""Runs inside the VM only (see tests/vm/conftest.py): the host there is pure cgroup v2."""

from __future__ import annotations

import os
import sys
from pathlib import Path

CGROOT = Path("/sys/fs/cgroup")


def test_pure_cgroup2_hierarchy() -> None:
    assert (CGROOT / "cgroup.controllers").is_file()
    assert not (CGROOT / "memory").exists(), "a v1 memory hierarchy is mounted"
    mounts = [line.split() for line in Path("/proc/self/mounts").read_text().splitlines()]
    assert [m[2] for m in mounts if m[1].startswith(str(CGROOT))] == ["cgroup2"]


def test_controllers_enabled_for_children() -> None:
    enabled = (CGROOT / "cgroup.subtree_control").read_text().split()
    assert {"cpu", "memory", "pids", "io"} <= set(enabled)


def test_same_interpreter_and_repo_as_host() -> None:
    assert os.environ.get("LLMOS_IN_VM") == "1"
    assert Path(sys.executable).parent.as_posix() in os.environ["PATH"].split(":")
    assert (Path.cwd() / "tests" / "vm" / "vmharness.py").is_file()
