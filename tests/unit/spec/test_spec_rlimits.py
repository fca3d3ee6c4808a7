"""Rlimits against the host's hard limits and CAP_SYS_RESOURCE."""

from __future__ import annotations

import resource

import pytest

from llmos.spec import RLIM_INFINITY, RLIMIT_NAMES, RLIMITS, Rlimit, SpecError, check_rlimits
from llmos.spec.rlimits import has_capability, rlimit_number

HARD = {resource.RLIMIT_NOFILE: 20000, resource.RLIMIT_CORE: -1, resource.RLIMIT_NPROC: 100}


def fake_getrlimit(number: int) -> tuple[int, int]:
    return (0, HARD.get(number, -1))


def test_table_matches_pythons_resource_module() -> None:
    for name, number in RLIMITS.items():
        if hasattr(resource, name):
            assert getattr(resource, name) == number, name
    assert len(RLIMITS) == 16 and RLIMIT_NAMES[7] == "RLIMIT_NOFILE"
    assert rlimit_number("RLIMIT_AS") == 9
    with pytest.raises(SpecError, match=r'^p: unknown rlimit "RLIMIT_X"'):
        rlimit_number("RLIMIT_X", "p")


def test_limits_within_the_hard_limit_pass_unchanged() -> None:
    asked = [Rlimit(type="RLIMIT_NOFILE", soft=1024, hard=20000)]
    for clamp in (True, False):
        got = check_rlimits(asked, clamp=clamp, getrlimit=fake_getrlimit, cap_sys_resource=False)
        assert got == asked


def test_unlimited_host_limit_allows_anything() -> None:
    asked = [Rlimit(type="RLIMIT_CORE", soft=RLIM_INFINITY, hard=RLIM_INFINITY)]
    got = check_rlimits(asked, clamp=False, getrlimit=fake_getrlimit, cap_sys_resource=False)
    assert got == asked


def test_clamp_lowers_our_own_defaults() -> None:
    asked = [
        Rlimit(type="RLIMIT_NOFILE", soft=1048576, hard=1048576),
        Rlimit(type="RLIMIT_NPROC", soft=50, hard=RLIM_INFINITY),
    ]
    got = check_rlimits(asked, clamp=True, getrlimit=fake_getrlimit, cap_sys_resource=False)
    assert [(r.type, r.soft, r.hard) for r in got] == [
        ("RLIMIT_NOFILE", 20000, 20000),
        ("RLIMIT_NPROC", 50, 100),
    ]
    assert asked[0].hard == 1048576  # the input is not modified


def test_explicit_requests_get_a_clear_error() -> None:
    asked = [
        Rlimit(type="RLIMIT_CORE", soft=0, hard=0),
        Rlimit(type="RLIMIT_NOFILE", soft=1048576, hard=1048576),
    ]
    with pytest.raises(SpecError) as err:
        check_rlimits(asked, clamp=False, getrlimit=fake_getrlimit, cap_sys_resource=False)
    assert str(err.value) == (
        "process.rlimits[1].hard: RLIMIT_NOFILE hard limit 1048576 is above this process's "
        "hard limit 20000; raising it needs CAP_SYS_RESOURCE, which llmos does not have here "
        "(ask for at most 20000)"
    )
    assert err.value.path == "process.rlimits[1].hard"


def test_cap_sys_resource_allows_raising() -> None:
    asked = [Rlimit(type="RLIMIT_NOFILE", soft=1048576, hard=1048576)]
    got = check_rlimits(asked, clamp=False, getrlimit=fake_getrlimit, cap_sys_resource=True)
    assert got == asked


def test_on_this_host() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limit = RLIM_INFINITY if hard == resource.RLIM_INFINITY else hard
    asked = [Rlimit(type="RLIMIT_NOFILE", soft=16, hard=limit)]
    assert check_rlimits(asked, clamp=False) == asked
    if limit != RLIM_INFINITY and not has_capability(24):
        with pytest.raises(SpecError, match="CAP_SYS_RESOURCE"):
            check_rlimits([Rlimit(type="RLIMIT_NOFILE", soft=1, hard=limit + 1)], clamp=False)


def test_has_capability_reads_capeff() -> None:
    status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n"
    assert has_capability(21, status)  # CAP_SYS_ADMIN
    assert not has_capability(24, status)  # CAP_SYS_RESOURCE: bit 24 clear
    assert has_capability(40, status)
    assert not has_capability(0, "Name:\tx\n")
