"""The v2 device filter: v1 rule semantics, and the compiled eBPF program agreeing with them.

The program is run here by a small interpreter of the few instructions it uses, over a grid of
devices and access modes, so a wrong jump offset or bit test fails without root; the real
kernel check is in the integration tests.
"""

from __future__ import annotations

import itertools
import struct

import pytest

from llmos.cgroups import DeviceRule
from llmos.cgroups.v2.devices import (
    Exception_,
    Policy,
    compile_program,
    effective_rules,
    evaluate,
)

TYPES = {"b": 1, "c": 2}
ACCESS = {"m": 1, "r": 2, "w": 4}


def run(program: bytes, dev_type: str, major: int, minor: int, access: str) -> int:
    """Interpret the cgroup-device program on one request (returns r0)."""
    bits = sum(ACCESS[c] for c in access)
    ctx = [(bits << 16) | TYPES[dev_type], major, minor]
    regs = [0] * 11
    insns = [struct.unpack("<BBhi", program[i : i + 8]) for i in range(0, len(program), 8)]
    pc = 0
    for _ in range(10_000):
        code, regbyte, off, imm = insns[pc]
        dst, src = regbyte & 0xF, regbyte >> 4
        pc += 1
        if code == 0x61:  # ldxw dst, [src + off]  (src is the ctx pointer, r1)
            assert src == 1 and off % 4 == 0
            regs[dst] = ctx[off // 4]
        elif code == 0x57:
            regs[dst] &= imm & 0xFFFFFFFF
        elif code == 0x77:
            regs[dst] >>= imm
        elif code == 0xB7:
            regs[dst] = imm
        elif code == 0xBF:
            regs[dst] = regs[src]
        elif code == 0x15:
            if regs[dst] == imm:
                pc += off
        elif code == 0x55:
            if regs[dst] != imm:
                pc += off
        elif code == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("program did not exit")


DOCKER_DEFAULT = [
    DeviceRule(False),
    DeviceRule(True, "c", None, None, "m"),
    DeviceRule(True, "b", None, None, "m"),
    DeviceRule(True, "c", 1, 3, "rwm"),
    DeviceRule(True, "c", 1, 5, "rwm"),
    DeviceRule(True, "c", 1, 7, "rwm"),
    DeviceRule(True, "c", 1, 8, "rwm"),
    DeviceRule(True, "c", 1, 9, "rwm"),
    DeviceRule(True, "c", 5, 0, "rwm"),
    DeviceRule(True, "c", 5, 1, "rwm"),
    DeviceRule(True, "c", 5, 2, "rwm"),
    DeviceRule(True, "c", 136, None, "rwm"),
    DeviceRule(True, "c", 10, 200, "rwm"),
]

CASES = {
    "docker default": DOCKER_DEFAULT,
    "allow all": [DeviceRule(True)],
    "nothing asked (a fresh cgroup allows all)": [],
    "deny list": [DeviceRule(True), DeviceRule(False, "c", 1, 3, "w"), DeviceRule(False, "b")],
    "allow then narrow": [
        DeviceRule(False),
        DeviceRule(True, "c", 1, 3, "rwm"),
        DeviceRule(False, "c", 1, 3, "w"),
    ],
    "reset in the middle": [DeviceRule(False), DeviceRule(True, "c", 1, 3), DeviceRule(False)],
}

REQUESTS = list(
    itertools.product(
        ["b", "c"],
        [1, 5, 8, 136, 10],
        [0, 3, 5, 200, 7],
        ["r", "w", "m", "rw", "rwm"],
    )
)


@pytest.mark.parametrize("rules", CASES.values(), ids=CASES.keys())
def test_program_answers_like_the_policy(rules: list[DeviceRule]) -> None:
    policy = effective_rules(rules)
    program = compile_program(policy)
    for dev_type, major, minor, access in REQUESTS:
        expected = evaluate(policy, dev_type, major, minor, access)
        got = run(program, dev_type, major, minor, access)
        assert got == int(expected), (dev_type, major, minor, access)


def test_docker_default_policy() -> None:
    policy = effective_rules(DOCKER_DEFAULT)
    assert not policy.default_allow
    assert evaluate(policy, "c", 1, 3, "rw")  # /dev/null
    assert evaluate(policy, "c", 136, 4, "rw")  # a pty
    assert evaluate(policy, "b", 8, 0, "m")  # mknod is allowed for any device...
    assert not evaluate(policy, "b", 8, 0, "r")  # ...but not reading a disk
    assert not evaluate(policy, "c", 1, 1, "r")  # /dev/mem


def test_rules_fold_like_v1() -> None:
    assert effective_rules([DeviceRule(True)]) == Policy(True, ())
    narrowed = effective_rules(CASES["allow then narrow"])
    assert narrowed == Policy(False, (Exception_("c", 1, 3, 1 | 2),))
    assert effective_rules(CASES["reset in the middle"]) == Policy(False, ())


def test_program_shape() -> None:
    program = compile_program(effective_rules([DeviceRule(False)]))
    assert len(program) % 8 == 0
    # prologue (6) + default verdict (mov r0, 0; exit)
    assert len(program) // 8 == 8
    assert program[-16:] == struct.pack("<BBhi", 0xB7, 0, 0, 0) + struct.pack(
        "<BBhi", 0x95, 0, 0, 0
    )
