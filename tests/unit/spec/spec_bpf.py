"""A tiny classic-BPF interpreter for seccomp programs, for the compiler's tests.

It checks a program the way the kernel's loader does (jumps in range and forward, aligned
loads inside struct seccomp_data, a return at the end, at most 4096 instructions) and then runs
it on a synthetic seccomp_data, so tests can ask "what happens to this syscall" without root.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

Insn = tuple[int, int, int, int]

SECCOMP_DATA_SIZE = 64
RET_ACTION_FULL = 0xFFFF0000
RET_DATA = 0x0000FFFF

ALLOW = 0x7FFF0000
ERRNO = 0x00050000
KILL_PROCESS = 0x80000000
KILL_THREAD = 0x00000000
TRAP = 0x00030000
TRACE = 0x7FF00000
LOG = 0x7FFC0000

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xC00000B7

_LD_W_ABS = 0x20
_ALU_AND_K = 0x54
_JA = 0x05
_JEQ = 0x15
_JGT = 0x25
_JGE = 0x35
_JSET = 0x45
_RET_K = 0x06
_JUMPS = {_JEQ, _JGT, _JGE, _JSET}


def seccomp_data(nr: int, arch: int, args: Sequence[int] = (), ip: int = 0) -> bytes:
    """struct seccomp_data as the kernel fills it on a little-endian machine."""
    full = [*args, *([0] * (6 - len(args)))]
    return struct.pack("<IIQ6Q", nr & 0xFFFFFFFF, arch, ip, *full)


def check_program(prog: Sequence[Insn]) -> None:
    """Refuse what the kernel's classic BPF checker and seccomp_check_filter refuse."""
    assert 0 < len(prog) <= 4096, f"program length {len(prog)}"
    for pc, (code, jt, jf, k) in enumerate(prog):
        assert 0 <= jt <= 255 and 0 <= jf <= 255, f"{pc}: jump offsets must fit a byte"
        assert 0 <= k <= 0xFFFFFFFF, f"{pc}: k must fit 32 bits"
        if code == _LD_W_ABS:
            assert k % 4 == 0 and k + 4 <= SECCOMP_DATA_SIZE, f"{pc}: bad load offset {k}"
        elif code in _JUMPS:
            assert pc + 1 + max(jt, jf) < len(prog), f"{pc}: jump past the end"
        elif code == _JA:
            assert pc + 1 + k < len(prog), f"{pc}: ja past the end"
        elif code not in (_ALU_AND_K, _RET_K):
            raise AssertionError(f"{pc}: opcode {code:#x} not expected")
    assert prog[-1][0] == _RET_K, "the last instruction must return"


def run(prog: Sequence[Insn], data: bytes) -> int:
    """The filter's return value for one syscall."""
    a = 0
    pc = 0
    for _ in range(len(prog) + 1):  # forward-only jumps: each instruction runs at most once
        code, jt, jf, k = prog[pc]
        if code == _LD_W_ABS:
            a = struct.unpack_from("<I", data, k)[0]
        elif code == _ALU_AND_K:
            a &= k
        elif code == _JA:
            pc += k
        elif code == _JEQ:
            pc += jt if a == k else jf
        elif code == _JGT:
            pc += jt if a > k else jf
        elif code == _JGE:
            pc += jt if a >= k else jf
        elif code == _JSET:
            pc += jt if a & k else jf
        elif code == _RET_K:
            return k
        else:
            raise AssertionError(f"{pc}: opcode {code:#x}")
        pc += 1
    raise AssertionError("program did not return")


def verdict(
    prog: Sequence[Insn], nr: int, arch: int = AUDIT_ARCH_X86_64, args: Sequence[int] = ()
) -> tuple[int, int]:
    """(action, data) for one syscall: e.g. (ERRNO, 1) for EPERM, (ALLOW, 0)."""
    ret = run(prog, seccomp_data(nr, arch, args))
    return ret & RET_ACTION_FULL, ret & RET_DATA
