"""Pure conversions between OCI (cgroup v1) units and cgroup v2 values, each unit-tested.

The OCI runtime spec speaks cgroup v1 (cpu shares 2..262144, blkio weight 10..1000, swap as
memory+swap). The v2 driver converts here, in one place, so both drivers and their tests agree
on exactly one formula.
"""

from __future__ import annotations

import math

__all__ = [
    "convert_blkio_weight_to_io_weight",
    "convert_memory_swap_to_v2",
    "convert_shares_to_weight",
    "convert_shares_to_weight_linear",
    "format_v1_limit",
    "format_v2_limit",
]

_SHARES_MIN = 2
_SHARES_MAX = 262144  # kernel MAX_SHARES (1 << 18)
_WEIGHT_MIN = 1
_WEIGHT_MAX = 10000


def convert_shares_to_weight(shares: int) -> int:
    """Map cpu.shares [2, 262144] to cpu.weight [1, 10000] as crun (>= 1.23) and runc do.

    The log-quadratic curve keeps the defaults aligned (1024 shares -> weight 100), which the
    older linear formula did not (1024 -> 39, starving containers next to default v2 peers).
    0 means "unset" and stays 0, so callers can skip the write.
    """
    if shares == 0:
        return 0
    if shares <= _SHARES_MIN:
        return _WEIGHT_MIN
    if shares >= _SHARES_MAX:
        return _WEIGHT_MAX
    log = math.log2(shares)
    exponent = (log * log + 125 * log) / 612.0 - 7.0 / 34.0
    return min(_WEIGHT_MAX, max(_WEIGHT_MIN, math.ceil(10**exponent)))


def convert_shares_to_weight_linear(shares: int) -> int:
    """The pre-2025 linear crun/runc mapping, kept to compare with older peers (crun 1.8)."""
    if shares == 0:
        return 0
    shares = min(max(shares, _SHARES_MIN), _SHARES_MAX)
    return 1 + ((shares - 2) * 9999) // 262142


def convert_blkio_weight_to_io_weight(weight: int) -> int:
    """Map blkio.weight [10, 1000] linearly to io.weight [1, 10000], as crun and runc do."""
    if weight == 0:
        return 0
    weight = min(max(weight, 10), 1000)
    return 1 + (weight - 10) * 9999 // 990


def convert_memory_swap_to_v2(swap: int | None, limit: int | None) -> int | None:
    """OCI ``swap`` is memory+swap; cgroup v2 ``memory.swap.max`` is swap alone.

    Returns the swap.max value (-1 = "max") or None for "leave unchanged". Follows runc:
    an unlimited memory limit with no swap given means unlimited swap too; 0 means unset;
    a finite swap needs a finite limit no larger than it.
    """
    if limit == -1 and swap in (None, 0):
        return -1
    if swap is None or swap == 0:
        return None
    if swap == -1:
        return -1
    if limit is None or limit == -1:
        raise ValueError("a swap limit needs a memory limit (OCI swap is memory+swap)")
    if swap < limit:
        raise ValueError(f"memory+swap {swap} is below the memory limit {limit}")
    return swap - limit


def format_v1_limit(value: int) -> str:
    """v1 knobs take -1 for unlimited."""
    return "-1" if value < 0 else str(value)


def format_v2_limit(value: int) -> str:
    """v2 knobs take the word ``max`` for unlimited."""
    return "max" if value < 0 else str(value)
