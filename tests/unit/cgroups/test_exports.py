"""The public surface: __all__ and the package namespace stay in sync (httpx's habit)."""

from __future__ import annotations

import llmos.cgroups as cgroups


def test_all_names_exist_and_public_names_are_exported() -> None:
    assert sorted(cgroups.__all__) == sorted(set(cgroups.__all__))
    for name in cgroups.__all__:
        assert hasattr(cgroups, name), name
    public = {
        n
        for n, v in vars(cgroups).items()
        if not n.startswith("_") and getattr(v, "__module__", "").startswith("llmos.cgroups")
    }
    assert public <= set(cgroups.__all__)


def test_the_interface_the_runtime_codes_against() -> None:
    for method in (
        "create",
        "apply",
        "procs_files",
        "unified_dir",
        "add_pid",
        "pids",
        "freeze",
        "thaw",
        "frozen",
        "stats",
        "oom_kill_count",
        "kill_all",
        "destroy",
        "exists",
    ):
        assert callable(getattr(cgroups.CgroupManager, method)), method
    assert callable(cgroups.Resources.from_oci)
