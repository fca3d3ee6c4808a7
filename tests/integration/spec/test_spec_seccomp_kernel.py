"""The compiled Docker default profile, loaded into the real kernel in a forked child.

The unit tests run the compiler's programs in an interpreter; this checks that the kernel
accepts the bytes and agrees on the verdicts: a denied syscall fails with EPERM while
ordinary ones keep working.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
from collections.abc import Callable
from typing import Any

import pytest

from llmos.spec import DEFAULT_CAPABILITIES, compile_seccomp, docker_default_seccomp, to_bytes
from llmos.spec.syscall_tables import AARCH64, X86_64

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(
        platform.machine() not in ("x86_64", "aarch64"), reason="no syscall table for this host"
    ),
]

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
CLONE_NEWUTS = 0x04000000
ADDR_NO_RANDOMIZE = 0x0040000
SYSCALLS = X86_64 if platform.machine() == "x86_64" else AARCH64


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


Call = Callable[..., int]


def _in_filtered_child(
    code: bytes, count: int, probe: Callable[[Call], dict[str, Any]]
) -> dict[str, Any]:
    """Fork, load the filter in the child, run ``probe`` there, return what it found.

    ``probe`` gets ``call(nr, *args) -> errno`` (0 on success) for raw syscalls.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only async-signal-safe-ish work, then _exit
        status = 1
        try:
            os.close(r)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            buf = ctypes.create_string_buffer(code, len(code))
            fprog = SockFprog(count, ctypes.cast(buf, ctypes.c_void_p))
            if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
            if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")

            def call(nr: int, *args: int) -> int:
                ctypes.set_errno(0)
                ret = libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) for a in args))
                return 0 if ret >= 0 else ctypes.get_errno()

            result = probe(call)
            os.write(w, json.dumps(result).encode())
            status = 0
        except BaseException as e:  # report instead of dying silently
            os.write(w, json.dumps({"error": repr(e)}).encode())
        finally:
            os._exit(status)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, wait_status = os.waitpid(pid, 0)
    out: dict[str, Any] = json.loads(b"".join(chunks) or b"{}")
    out["exit"] = os.waitstatus_to_exitcode(wait_status)
    return out


def _standard_probe(call: Call) -> dict[str, Any]:
    with open("/proc/self/status") as f:
        status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
    return {
        "Seccomp": status["Seccomp"].strip(),
        "NoNewPrivs": status["NoNewPrivs"].strip(),
        "getpid": os.getpid(),
        "unshare": call(SYSCALLS["unshare"], CLONE_NEWUTS),
        "personality_query": call(SYSCALLS["personality"], 0xFFFFFFFF),
        "personality_set": call(SYSCALLS["personality"], ADDR_NO_RANDOMIZE),
        "clone3": call(SYSCALLS["clone3"], 0, 0),
        "newer_than_tables": call(max(SYSCALLS.values()) + 100),
        "pipe_works": os.pipe() is not None,
    }


def test_docker_default_profile_in_the_kernel() -> None:
    prog = compile_seccomp(docker_default_seccomp(DEFAULT_CAPABILITIES))
    result = _in_filtered_child(to_bytes(prog), len(prog), _standard_probe)
    assert "error" not in result, result["error"]
    assert result["exit"] == 0
    assert result["Seccomp"] == "2" and result["NoNewPrivs"] == "1"
    assert result["getpid"] > 0 and result["pipe_works"]
    assert result["unshare"] == errno.EPERM  # outside the allowlist
    assert result["personality_query"] == 0  # allowed by an argument rule
    assert result["personality_set"] == errno.EPERM  # refused by the same rules
    assert result["clone3"] == errno.ENOSYS  # so that libc falls back to clone
    assert result["newer_than_tables"] == errno.ENOSYS


def test_without_the_filter_the_same_calls_behave_differently() -> None:
    # The control: an allow-everything filter, so the EPERMs above come from the profile.
    from llmos.spec import Seccomp

    prog = compile_seccomp(Seccomp(default_action="SCMP_ACT_ALLOW"))
    result = _in_filtered_child(to_bytes(prog), len(prog), _standard_probe)
    assert "error" not in result, result["error"]
    assert result["unshare"] == 0  # root may unshare a UTS namespace
    assert result["newer_than_tables"] == errno.ENOSYS  # the kernel's own answer
    assert result["clone3"] != errno.ENOSYS  # clone3 exists here (EINVAL/EFAULT on NULL args)


def test_a_large_program_with_long_jumps_loads_and_agrees() -> None:
    # 200 syscalls with three-condition rules: far more than 255 instructions between the
    # dispatch and the rules, so the kernel must accept the ja trampolines.
    names = sorted(SYSCALLS, key=SYSCALLS.__getitem__)[:200]
    assert "getppid" in names
    magic = 0xDEAD0000
    rules = [
        {
            "names": [name],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 100 + i,
            "args": [
                {"index": 0, "value": magic + i, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 1 << 33, "op": "SCMP_CMP_GE"},
                {"index": 2, "value": 0xFF, "valueTwo": 0x0F, "op": "SCMP_CMP_MASKED_EQ"},
            ],
        }
        for i, name in enumerate(names)
    ]
    from llmos.spec import Seccomp

    prog = compile_seccomp(
        Seccomp.from_dict({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules})
    )
    assert any(op == 0x05 and k > 255 for op, _, _, k in prog)
    i = names.index("getppid")
    nr = SYSCALLS["getppid"]

    def probe(call: Call) -> dict[str, Any]:
        return {
            "match": call(nr, magic + i, 1 << 33, 0x10F),
            "hi_word_smaller": call(nr, magic + i, 1 << 32, 0x0F),
            "other_value": call(nr, magic + i + 1, 1 << 33, 0x0F),
            "plain": call(nr),
        }

    result = _in_filtered_child(to_bytes(prog), len(prog), probe)
    assert "error" not in result, result["error"]
    assert result == {
        "match": 100 + i,
        "hi_word_smaller": 0,
        "other_value": 0,
        "plain": 0,
        "exit": 0,
    }
