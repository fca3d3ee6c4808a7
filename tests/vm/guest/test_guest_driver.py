"""Runs inside the VM only: llmos's cgroup factory picks the v2 driver on a pure v2 host."""

from __future__ import annotations


def test_factory_picks_v2() -> None:
    from llmos.cgroups import V2Manager, detect_mode, open_cgroup

    assert detect_mode() == "v2"
    assert isinstance(open_cgroup("llmos/probe"), V2Manager)
