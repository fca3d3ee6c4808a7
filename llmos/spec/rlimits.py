"""Process rlimits: names <-> numbers, and what this host lets llmos set.

Raising a hard limit above the caller's needs CAP_SYS_RESOURCE. On the development machines
root runs without it, so a config asking for ``RLIMIT_NOFILE`` 1048576 would fail deep in the
container's setup with a bare EPERM from setrlimit(2). ``check_rlimits`` finds that up front:
llmos's own defaults are clamped to what the host allows, and a user's explicit request gets
one clear error naming the limit, the two numbers and the missing capability.
"""

from __future__ import annotations

import dataclasses
import resource
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from llmos.spec.errors import SpecError

if TYPE_CHECKING:
    from llmos.spec.model import Rlimit

RLIMITS: Final[Mapping[str, int]] = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}
"""OCI rlimit type -> resource number (asm-generic/resource.h; x86 and arm64 use these)."""

RLIMIT_NAMES: Final[Mapping[int, str]] = {v: k for k, v in RLIMITS.items()}

RLIM_INFINITY: Final = 2**64 - 1
"""Unlimited, as the spec's unsigned 64-bit values spell it (Python's resource says -1)."""

CAP_SYS_RESOURCE: Final = 24


def rlimit_number(name: str, path: str = "") -> int:
    """The resource number of an ``RLIMIT_*`` name."""
    try:
        return RLIMITS[name]
    except KeyError:
        raise SpecError(path, f'unknown rlimit "{name}"') from None


def has_capability(bit: int, status: str | None = None) -> bool:
    """Whether this process has capability ``bit`` in its effective set (CapEff)."""
    if status is None:
        status = Path("/proc/self/status").read_text()
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> bit & 1)
    return False


def _hard_limit(number: int, getrlimit: Callable[[int], tuple[int, int]]) -> int:
    hard = getrlimit(number)[1]
    return RLIM_INFINITY if hard < 0 or hard == resource.RLIM_INFINITY else hard


def _show(value: int) -> str:
    return "unlimited" if value == RLIM_INFINITY else str(value)


def check_rlimits(
    rlimits: Sequence[Rlimit],
    *,
    clamp: bool,
    path: str = "process.rlimits",
    getrlimit: Callable[[int], tuple[int, int]] = resource.getrlimit,
    cap_sys_resource: bool | None = None,
) -> list[Rlimit]:
    """The rlimits as this process can set them.

    A hard limit above this process's own needs CAP_SYS_RESOURCE. Without it, ``clamp=True``
    (for llmos's own defaults) lowers the hard limit, and the soft one with it, to what this
    process has; ``clamp=False`` (for what a user asked for) raises SpecError saying why.
    ``getrlimit`` and ``cap_sys_resource`` are for tests.
    """
    if cap_sys_resource is None:
        cap_sys_resource = has_capability(CAP_SYS_RESOURCE)
    out: list[Rlimit] = []
    for i, rl in enumerate(rlimits):
        number = rlimit_number(rl.type, f"{path}[{i}].type")
        ceiling = _hard_limit(number, getrlimit)
        if cap_sys_resource or rl.hard <= ceiling:
            out.append(rl)
        elif clamp:
            out.append(dataclasses.replace(rl, hard=ceiling, soft=min(rl.soft, ceiling)))
        else:
            raise SpecError(
                f"{path}[{i}].hard",
                f"{rl.type} hard limit {_show(rl.hard)} is above this process's hard limit "
                f"{_show(ceiling)}; raising it needs CAP_SYS_RESOURCE, which llmos does not "
                f"have here (ask for at most {_show(ceiling)})",
            )
    return out
