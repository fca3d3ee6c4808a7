"""A seccomp profile compiled to a classic BPF program, in pure Python.

The C executor only loads the bytes (prctl(PR_SET_SECCOMP) as its last step before execve);
everything about the filter is decided here, where it can be unit-tested by running the
program in an interpreter. No libseccomp is needed.

Shape of the program::

    load arch; one "arch == AUDIT_ARCH_*" test per allowed architecture, else KILL_PROCESS
    per architecture:  load nr
                       (x86_64) nr has __X32_SYSCALL_BIT    -> KILL_PROCESS (x32 is refused)
                       (ERRNO default) nr above every known syscall -> ERRNO(ENOSYS)
                       binary search over the syscall numbers that have rules
                       per syscall: its conditional rules in order, each an AND of argument
                       tests, then its unconditional action, else the default action

Rules follow runc's reading of the OCI profile: unknown syscall names are skipped (and
reported), several conditions on the *same* argument in one rule are ORed (libseccomp cannot
AND them), and the first unconditional action for a syscall wins. Syscalls newer than the
syscall tables get ENOSYS rather than the default errno, as runc does, so that libc falls
back to older calls (fchmodat2 -> fchmodat) instead of failing with EPERM.

The program is assembled backwards (from the last instruction to the first) so every jump
target is already placed when the jump is emitted; a conditional jump further than 255
instructions goes through an inserted ``ja`` (32-bit offset), and return instructions are
re-emitted nearby instead of being reached from afar.
"""

from __future__ import annotations

import platform
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from llmos.spec import syscall_tables
from llmos.spec.errors import SpecError
from llmos.spec.linux import Seccomp, SeccompArg

Insn = tuple[int, int, int, int]
"""One ``struct sock_filter``: (code, jt, jf, k)."""

# Classic BPF opcodes (linux/filter.h, linux/bpf_common.h) used by the compiler.
BPF_LD_W_ABS: Final = 0x20
BPF_ALU_AND_K: Final = 0x54
BPF_JMP_JA: Final = 0x05
BPF_JMP_JEQ_K: Final = 0x15
BPF_JMP_JGT_K: Final = 0x25
BPF_JMP_JGE_K: Final = 0x35
BPF_RET_K: Final = 0x06
BPF_MAXINSNS: Final = 4096
MAX_JUMP: Final = 255

# linux/seccomp.h
SECCOMP_RET_KILL_PROCESS: Final = 0x80000000
SECCOMP_RET_KILL_THREAD: Final = 0x00000000
SECCOMP_RET_TRAP: Final = 0x00030000
SECCOMP_RET_ERRNO: Final = 0x00050000
SECCOMP_RET_USER_NOTIF: Final = 0x7FC00000
SECCOMP_RET_TRACE: Final = 0x7FF00000
SECCOMP_RET_LOG: Final = 0x7FFC0000
SECCOMP_RET_ALLOW: Final = 0x7FFF0000
SECCOMP_RET_DATA: Final = 0x0000FFFF

SECCOMP_FILTER_FLAGS: Final[Mapping[str, int]] = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32,
}
"""``linux.seccomp.flags`` -> the flags argument of seccomp(SECCOMP_SET_MODE_FILTER)."""

# struct seccomp_data offsets
OFF_NR: Final = 0
OFF_ARCH: Final = 4
OFF_ARGS: Final = 16

X32_SYSCALL_BIT: Final = 0x40000000
EPERM: Final = 1
ENOSYS: Final = 38


@dataclass(frozen=True)
class Arch:
    """What the compiler needs to know about one architecture."""

    name: str
    audit: int
    """AUDIT_ARCH_* as seen in seccomp_data.arch."""
    syscalls: Mapping[str, int]
    bits: int
    """Argument width: 32-bit architectures only have the low word of each argument."""
    x32_bit: bool = False
    """Whether syscall numbers with __X32_SYSCALL_BIT (the x32 ABI) arrive as this arch."""


ARCHES: Final[Mapping[str, Arch]] = {
    "SCMP_ARCH_X86_64": Arch("SCMP_ARCH_X86_64", 0xC000003E, syscall_tables.X86_64, 64, True),
    "SCMP_ARCH_X86": Arch("SCMP_ARCH_X86", 0x40000003, syscall_tables.I386, 32),
    "SCMP_ARCH_AARCH64": Arch("SCMP_ARCH_AARCH64", 0xC00000B7, syscall_tables.AARCH64, 64),
}
"""The architectures llmos can filter, by their SCMP_ARCH_* names."""

COMPANION_ARCHES: Final[Mapping[str, tuple[str, ...]]] = {
    "SCMP_ARCH_X86_64": ("SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "SCMP_ARCH_AARCH64": ("SCMP_ARCH_ARM",),
    "SCMP_ARCH_X86": (),
}
"""Architectures whose binaries a host of the key architecture can run."""

MACHINE_ARCHES: Final[Mapping[str, str]] = {
    "x86_64": "SCMP_ARCH_X86_64",
    "aarch64": "SCMP_ARCH_AARCH64",
    "i386": "SCMP_ARCH_X86",
    "i686": "SCMP_ARCH_X86",
}


def host_arch() -> str:
    """This machine's SCMP_ARCH_* name."""
    machine = platform.machine()
    try:
        return MACHINE_ARCHES[machine]
    except KeyError:
        raise SpecError("linux.seccomp", f"no seccomp support for architecture {machine}") from None


class SeccompProgram(list[Insn]):
    """The compiled instructions, plus what was skipped on the way (``warnings``)."""

    def __init__(self, insns: Sequence[Insn], warnings: Sequence[str]) -> None:
        super().__init__(insns)
        self.warnings: list[str] = list(warnings)


def to_bytes(prog: Sequence[Insn]) -> bytes:
    """The program as an array of ``struct sock_filter`` for ``struct sock_fprog``."""
    return b"".join(struct.pack("=HBBI", *insn) for insn in prog)


def filter_flags(seccomp: Seccomp) -> int:
    """The seccomp(2) flags a profile asks for."""
    flags = 0
    for name in seccomp.flags:
        flags |= SECCOMP_FILTER_FLAGS[name]
    return flags


def action_value(action: str, errno_ret: int | None, path: str) -> int:
    """The SECCOMP_RET_* value of an OCI action (errno defaults to EPERM, as in runc)."""
    errno = EPERM if errno_ret is None else errno_ret
    if errno > SECCOMP_RET_DATA:
        raise SpecError(path, f"errno {errno} does not fit the 16 bits seccomp returns")
    if action == "SCMP_ACT_ALLOW":
        return SECCOMP_RET_ALLOW
    if action == "SCMP_ACT_ERRNO":
        return SECCOMP_RET_ERRNO | errno
    if action in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return SECCOMP_RET_KILL_THREAD  # libseccomp's SCMP_ACT_KILL kills the thread
    if action == "SCMP_ACT_KILL_PROCESS":
        return SECCOMP_RET_KILL_PROCESS
    if action == "SCMP_ACT_TRAP":
        return SECCOMP_RET_TRAP
    if action == "SCMP_ACT_TRACE":
        return SECCOMP_RET_TRACE | errno
    if action == "SCMP_ACT_LOG":
        return SECCOMP_RET_LOG
    if action == "SCMP_ACT_NOTIFY":
        raise SpecError(path, "SCMP_ACT_NOTIFY is not supported by llmos (no seccomp agent)")
    raise SpecError(path, f'unknown seccomp action "{action}"')


@dataclass(frozen=True)
class _Ret:
    """A jump target that is "return k": placed wherever it is in reach."""

    k: int


_Target = int | _Ret


class _Assembler:
    """Builds the program backwards; a label is an index into the reversed program."""

    def __init__(self) -> None:
        self.rev: list[Insn] = []
        self._rets: dict[int, int] = {}

    def _emit(self, code: int, jt: int, jf: int, k: int) -> int:
        self.rev.append((code, jt, jf, k))
        return len(self.rev) - 1

    def _distance(self, label: int) -> int:
        # Instructions skipped by a jump placed next, at position len(rev), to `label`.
        return len(self.rev) - label - 1

    def label(self, target: _Target) -> int:
        """The label of a target, emitting a return instruction when none is in reach."""
        if isinstance(target, int):
            return target
        label = self._rets.get(target.k)
        if label is None or self._distance(label) > MAX_JUMP:
            label = self._emit(BPF_RET_K, 0, 0, target.k)
            self._rets[target.k] = label
        return label

    def _ja(self, label: int) -> int:
        return self._emit(BPF_JMP_JA, 0, 0, self._distance(label))

    def jump(self, code: int, k: int, jt: _Target, jf: _Target) -> int:
        """A conditional jump; far targets get a ``ja`` trampoline right after it."""
        while True:
            jt_label, jf_label = self.label(jt), self.label(jf)
            if self._distance(jt_label) > MAX_JUMP:
                jt = self._ja(jt_label) if isinstance(jt, int) else jt
                continue
            if self._distance(jf_label) > MAX_JUMP:
                jf = self._ja(jf_label) if isinstance(jf, int) else jf
                continue
            return self._emit(code, self._distance(jt_label), self._distance(jf_label), k)

    def stmt(self, code: int, k: int, then: _Target) -> int:
        """A load or ALU instruction that falls through to ``then``."""
        label = self.label(then)
        if label != len(self.rev) - 1:
            self._ja(label)
        return self._emit(code, 0, 0, k)

    def program(self) -> list[Insn]:
        """The instructions in execution order."""
        return list(reversed(self.rev))


def _compare(asm: _Assembler, arch: Arch, arg: SeccompArg, match: _Target, nomatch: _Target) -> int:
    """Instructions testing one 64-bit argument, split into its 32-bit halves."""
    op = arg.op
    if op == "SCMP_CMP_NE":
        op, match, nomatch = "SCMP_CMP_EQ", nomatch, match
    elif op == "SCMP_CMP_LT":
        op, match, nomatch = "SCMP_CMP_GE", nomatch, match
    elif op == "SCMP_CMP_LE":
        op, match, nomatch = "SCMP_CMP_GT", nomatch, match
    if op == "SCMP_CMP_MASKED_EQ":
        mask, value = arg.value, arg.value_two or 0
    else:
        mask, value = 0, arg.value
    lo_off = OFF_ARGS + 8 * arg.index  # little-endian: the low word comes first
    hi_off = lo_off + 4
    v_lo, v_hi = value & 0xFFFFFFFF, value >> 32

    # Low word, tested last.
    if op == "SCMP_CMP_EQ":
        lo = asm.jump(BPF_JMP_JEQ_K, v_lo, match, nomatch)
    elif op == "SCMP_CMP_MASKED_EQ":
        lo = asm.jump(BPF_JMP_JEQ_K, v_lo, match, nomatch)
        lo = asm.stmt(BPF_ALU_AND_K, mask & 0xFFFFFFFF, lo)
    elif op == "SCMP_CMP_GT":
        lo = asm.jump(BPF_JMP_JGT_K, v_lo, match, nomatch)
    elif op == "SCMP_CMP_GE":
        lo = asm.jump(BPF_JMP_JGE_K, v_lo, match, nomatch)
    else:
        raise SpecError("linux.seccomp", f'unknown operator "{arg.op}"')
    lo = asm.stmt(BPF_LD_W_ABS, lo_off, lo)
    if arch.bits == 32:
        return lo  # the kernel gives 32-bit tasks only a low word

    # High word: decides alone unless equal to the value's high word.
    if op == "SCMP_CMP_EQ":
        hi = asm.jump(BPF_JMP_JEQ_K, v_hi, lo, nomatch)
    elif op == "SCMP_CMP_MASKED_EQ":
        hi = asm.jump(BPF_JMP_JEQ_K, v_hi, lo, nomatch)
        hi = asm.stmt(BPF_ALU_AND_K, mask >> 32, hi)
    else:  # GT, GE: a bigger high word matches, an equal one defers to the low word
        hi = asm.jump(BPF_JMP_JEQ_K, v_hi, lo, nomatch)
        hi = asm.jump(BPF_JMP_JGT_K, v_hi, match, hi)
    return asm.stmt(BPF_LD_W_ABS, hi_off, hi)


@dataclass
class _SyscallRules:
    conditional: list[tuple[list[SeccompArg], int]]
    unconditional: int | None = None


def _collect(seccomp: Seccomp, arch: Arch, warnings: list[str] | None) -> dict[int, _SyscallRules]:
    """The rules of each syscall number; conflicts go to ``warnings`` when it is given."""
    rules: dict[int, _SyscallRules] = {}
    for i, rule in enumerate(seccomp.syscalls):
        path = f"linux.seccomp.syscalls[{i}]"
        action = action_value(rule.action, rule.errno_ret, f"{path}.action")
        indexes = [a.index for a in rule.args]
        # Conditions on one argument are ORed (separate rules), as runc does; otherwise ANDed.
        if len(set(indexes)) < len(indexes):
            alternatives = [[a] for a in rule.args]
        else:
            alternatives = [list(rule.args)]
        for name in rule.names:
            nr = arch.syscalls.get(name)
            if nr is None:
                continue
            entry = rules.setdefault(nr, _SyscallRules([]))
            if rule.args:
                entry.conditional.extend((alt, action) for alt in alternatives)
            elif entry.unconditional is None:
                entry.unconditional = action
            elif entry.unconditional != action and warnings is not None:
                warnings.append(
                    f'{path}: "{name}" already has another action; the first one is kept'
                )
    return rules


def _section(
    asm: _Assembler, arch: Arch, rules: dict[int, _SyscallRules], default: int, enosys: bool
) -> int:
    kill = SECCOMP_RET_KILL_PROCESS
    targets: list[tuple[int, _Target]] = []
    for nr in sorted(rules, reverse=True):
        entry = rules[nr]
        fallback = entry.unconditional if entry.unconditional is not None else default
        actions = {fallback, *(a for _, a in entry.conditional)}
        if actions == {default}:
            continue  # every path ends in the default action anyway
        target: _Target = _Ret(fallback)
        for conds, action in reversed(entry.conditional):
            match: _Target = _Ret(action)
            for cond in reversed(conds):
                match = _compare(asm, arch, cond, match, target)
            target = match
        targets.append((nr, target))
    targets.reverse()

    def dispatch(items: list[tuple[int, _Target]]) -> _Target:
        # Binary search on the syscall number held in the accumulator.
        if len(items) <= 3:
            label: _Target = _Ret(default)
            for nr, target in reversed(items):
                label = asm.jump(BPF_JMP_JEQ_K, nr, target, label)
            return label
        mid = len(items) // 2
        high = dispatch(items[mid:])
        low = dispatch(items[:mid])
        return asm.jump(BPF_JMP_JGE_K, items[mid][0], high, low)

    entry_label = dispatch(targets)
    if enosys:
        newest = max(arch.syscalls.values())
        entry_label = asm.jump(BPF_JMP_JGT_K, newest, _Ret(SECCOMP_RET_ERRNO | ENOSYS), entry_label)
    if arch.x32_bit:
        entry_label = asm.jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, _Ret(kill), entry_label)
    return asm.stmt(BPF_LD_W_ABS, OFF_NR, entry_label)


def _filter_arches(seccomp: Seccomp, native: str, warnings: list[str]) -> list[Arch]:
    companions = COMPANION_ARCHES.get(native, ())
    names = [native]
    for name in seccomp.architectures:
        if name == native or name in names:
            continue
        if name not in companions:
            continue  # cannot run on this host: nothing to filter
        if name == "SCMP_ARCH_X32":
            warnings.append("SCMP_ARCH_X32: the x32 ABI is not supported; its syscalls are killed")
        elif name not in ARCHES:
            warnings.append(f"{name}: no syscall table in llmos; its syscalls are killed")
        else:
            names.append(name)
    return [ARCHES[n] for n in names]


def compile_seccomp(
    seccomp: Seccomp, arch: str | None = None, *, enosys_for_newer: bool = True
) -> SeccompProgram:
    """Compile a profile for a host of architecture ``arch`` (SCMP_ARCH_* or uname -m).

    Returns the instructions (a list of (code, jt, jf, k)) with ``.warnings`` listing syscall
    names no allowed architecture knows (skipped, as runc does) and architectures left out.
    Raises SpecError for what cannot be compiled (SCMP_ACT_NOTIFY, an errno above 16 bits,
    a program over the kernel's 4096 instructions).
    """
    native = MACHINE_ARCHES.get(arch, arch) if arch else host_arch()
    if native not in ARCHES:
        raise SpecError("linux.seccomp", f"no seccomp support for architecture {native}")
    warnings: list[str] = []
    arches = _filter_arches(seccomp, native, warnings)
    default = action_value(
        seccomp.default_action, seccomp.default_errno_ret, "linux.seccomp.defaultAction"
    )
    enosys = enosys_for_newer and (default & ~SECCOMP_RET_DATA) == SECCOMP_RET_ERRNO

    asm = _Assembler()
    sections: list[int] = []
    for a in reversed(arches):
        # Conflicts are the same on every architecture: report them from the native pass.
        rules = _collect(seccomp, a, warnings if a is arches[0] else None)
        sections.append(_section(asm, a, rules, default, enosys))
    sections.reverse()

    # Architecture check at the top: anything not listed is killed.
    label: _Target = _Ret(SECCOMP_RET_KILL_PROCESS)
    for a, section in reversed(list(zip(arches, sections, strict=True))):
        label = asm.jump(BPF_JMP_JEQ_K, a.audit, section, label)
    asm.stmt(BPF_LD_W_ABS, OFF_ARCH, label)

    arch_names = ", ".join(a.name for a in arches)
    known = set().union(*(a.syscalls for a in arches))
    unknown = dict.fromkeys(n for rule in seccomp.syscalls for n in rule.names if n not in known)
    warnings.extend(f'unknown syscall "{n}" on {arch_names}: skipped' for n in unknown)
    prog = asm.program()
    if len(prog) > BPF_MAXINSNS:
        raise SpecError(
            "linux.seccomp",
            f"compiles to {len(prog)} BPF instructions, above the kernel's {BPF_MAXINSNS}",
        )
    return SeccompProgram(prog, warnings)
