"""v2 device access: the OCI rule list compiled to an eBPF cgroup device program.

The rules are first reduced the way the v1 devices controller would (:func:`effective_rules`):
``a`` rules reset to allow-all or deny-all, later specific rules add or remove exceptions. The
result is compiled (:func:`compile_program`, pure and unit-tested) to a straight list of checks:
the first exception that matches decides, otherwise the default. Containers therefore see the
same devices on v1 and v2 hosts.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from ..resources import DeviceRule, Resources
from . import bpf

__all__ = [
    "DeviceLoader",
    "Exception_",
    "Policy",
    "compile_program",
    "effective_rules",
    "evaluate",
    "load_and_attach",
]

ACC_MKNOD = 1
ACC_READ = 2
ACC_WRITE = 4
DEV_BLOCK = 1
DEV_CHAR = 2

_ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
_TYPE = {"b": DEV_BLOCK, "c": DEV_CHAR}


@dataclass(frozen=True)
class Exception_:
    """A device the default does not apply to: ``type`` b/c/a, None = any number."""

    type: str
    major: int | None
    minor: int | None
    access: int  # ACC_* bits


@dataclass(frozen=True)
class Policy:
    """What v1 would end up with: a default and the exceptions to it, in match order."""

    default_allow: bool
    exceptions: tuple[Exception_, ...]


def _bits(access: str) -> int:
    return sum(_ACCESS_BITS[c] for c in set(access))


def _num(value: int | None) -> int | None:
    return None if value is None or value < 0 else value


def effective_rules(rules: list[DeviceRule], default_allow: bool = True) -> Policy:
    """Fold the rule list as the v1 devices controller does.

    A fresh cgroup allows everything; ``a`` (all devices) switches the default and drops the
    exceptions; a rule that agrees with the default removes access from an identical
    exception; one that disagrees adds (or widens) an exception.
    """
    allow_default = default_allow
    exceptions: dict[tuple[str, int | None, int | None], int] = {}
    for rule in rules:
        if rule.type == "a":
            allow_default = rule.allow
            exceptions = {}
            continue
        key = (rule.type, _num(rule.major), _num(rule.minor))
        bits = _bits(rule.access)
        if rule.allow == allow_default:
            left = exceptions.get(key, 0) & ~bits
            if left:
                exceptions[key] = left
            else:
                exceptions.pop(key, None)
        else:
            exceptions[key] = exceptions.get(key, 0) | bits
    return Policy(
        allow_default,
        tuple(Exception_(t, ma, mi, acc) for (t, ma, mi), acc in exceptions.items()),
    )


def evaluate(policy: Policy, dev_type: str, major: int, minor: int, access: str) -> bool:
    """What the compiled program answers; the reference the unit tests compare it with."""
    want = _bits(access)
    for exc in policy.exceptions:
        if exc.type != "a" and exc.type != dev_type:
            continue
        if exc.major is not None and exc.major != major:
            continue
        if exc.minor is not None and exc.minor != minor:
            continue
        if policy.default_allow:
            if want & exc.access:  # a deny exception hits any requested bit it covers
                return False
        elif not want & ~exc.access:  # an allow exception must cover every requested bit
            return True
    return policy.default_allow


# -- eBPF encoding ---------------------------------------------------------------------------

_LDXW = 0x61  # BPF_LDX | BPF_MEM | BPF_W
_AND64_K = 0x57
_RSH64_K = 0x77
_MOV64_K = 0xB7
_MOV64_X = 0xBF
_JEQ_K = 0x15
_JNE_K = 0x55
_EXIT = 0x95

# Registers after the prologue: r2 device type, r3 access bits, r4 major, r5 minor; r1 scratch.
R0, R1, R2, R3, R4, R5 = range(6)


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _exit_with(value: int) -> list[bytes]:
    return [_insn(_MOV64_K, R0, imm=value), _insn(_EXIT)]


def compile_program(policy: Policy) -> bytes:
    """Encode ``policy`` as BPF_PROG_TYPE_CGROUP_DEVICE instructions (8 bytes each).

    The context is ``struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor}`` with
    ``access_type = access << 16 | type``; the program returns 1 to allow, 0 to deny.
    """
    out = [
        _insn(_LDXW, R2, R1, 0),
        _insn(_AND64_K, R2, imm=0xFFFF),
        _insn(_LDXW, R3, R1, 0),
        _insn(_RSH64_K, R3, imm=16),
        _insn(_LDXW, R4, R1, 4),
        _insn(_LDXW, R5, R1, 8),
    ]
    verdict = 0 if policy.default_allow else 1
    for exc in policy.exceptions:
        # Each check is a list of instructions whose last one jumps past the block on mismatch.
        checks: list[list[tuple[int, int, int, int, int]]] = []
        if exc.type in _TYPE:
            checks.append([(_JNE_K, R2, 0, 0, _TYPE[exc.type])])
        if policy.default_allow:
            # deny exception: skip unless a requested bit is covered
            checks.append(
                [(_MOV64_X, R1, R3, 0, 0), (_AND64_K, R1, 0, 0, exc.access), (_JEQ_K, R1, 0, 0, 0)]
            )
        else:
            # allow exception: skip if a requested bit is not covered
            checks.append(
                [
                    (_MOV64_X, R1, R3, 0, 0),
                    (_AND64_K, R1, 0, 0, ~exc.access & 0xFFFF),
                    (_JNE_K, R1, 0, 0, 0),
                ]
            )
        if exc.major is not None:
            checks.append([(_JNE_K, R4, 0, 0, exc.major)])
        if exc.minor is not None:
            checks.append([(_JNE_K, R5, 0, 0, exc.minor)])
        flat = [ins for check in checks for ins in check]
        block: list[bytes] = []
        for index, (code, dst, src, _, imm) in enumerate(flat):
            is_jump = code in (_JEQ_K, _JNE_K)
            # Jump over the rest of the checks and the 2-instruction verdict.
            off = (len(flat) - index - 1) + 2 if is_jump else 0
            block.append(_insn(code, dst, src, off, imm))
        out.extend(block)
        out.extend(_exit_with(verdict))
    out.extend(_exit_with(1 if policy.default_allow else 0))
    return b"".join(out)


DeviceLoader = Callable[[str, bytes], None]


def load_and_attach(cgroup_dir: str, program: bytes) -> None:
    """Load ``program`` and make it the device filter of ``cgroup_dir`` (the real loader)."""
    fd = bpf.load_device_program(program)
    try:
        bpf.attach_device_program(cgroup_dir, fd)
    finally:
        os.close(fd)


def needed(r: Resources) -> bool:
    """Whether a device filter is asked for."""
    return bool(r.devices)


def apply(cgroup_dir: str, r: Resources, loader: DeviceLoader) -> None:
    """Compile the rules and hand the program to ``loader`` (tests pass a recorder)."""
    loader(cgroup_dir, compile_program(effective_rules(r.devices)))
