"""The pure OCI -> cgroup v2 conversions, pinned to crun's and runc's values."""

from __future__ import annotations

import pytest

from llmos.cgroups import (
    convert_blkio_weight_to_io_weight,
    convert_memory_swap_to_v2,
    convert_shares_to_weight,
)
from llmos.cgroups.convert import convert_shares_to_weight_linear


@pytest.mark.parametrize(
    "shares,weight",
    # Boundaries from crun's own unit test; 1024 -> 100 keeps the v1 and v2 defaults aligned.
    [(0, 0), (1, 1), (2, 1), (262144, 10000), (500000, 10000), (1024, 100), (512, 59)],
)
def test_shares_to_weight(shares: int, weight: int) -> None:
    assert convert_shares_to_weight(shares) == weight


def test_shares_to_weight_is_monotonic_and_in_range() -> None:
    weights = [convert_shares_to_weight(s) for s in range(2, 262145, 97)]
    assert weights == sorted(weights)
    assert all(1 <= w <= 10000 for w in weights)


def test_old_linear_formula_for_comparison() -> None:
    assert convert_shares_to_weight_linear(1024) == 39
    assert convert_shares_to_weight_linear(2) == 1
    assert convert_shares_to_weight_linear(262144) == 10000


@pytest.mark.parametrize("weight,io", [(0, 0), (10, 1), (500, 4950), (1000, 10000)])
def test_blkio_weight_to_io_weight(weight: int, io: int) -> None:
    assert convert_blkio_weight_to_io_weight(weight) == io


@pytest.mark.parametrize(
    "swap,limit,expected",
    [
        (None, None, None),
        (None, 100, None),
        (0, 100, None),
        (None, -1, -1),
        (-1, 100, -1),
        (300, 100, 200),
        (100, 100, 0),
    ],
)
def test_swap_is_memory_plus_swap(
    swap: int | None, limit: int | None, expected: int | None
) -> None:
    assert convert_memory_swap_to_v2(swap, limit) == expected


@pytest.mark.parametrize("swap,limit", [(100, None), (100, -1), (50, 100)])
def test_impossible_swap(swap: int, limit: int | None) -> None:
    with pytest.raises(ValueError):
        convert_memory_swap_to_v2(swap, limit)
