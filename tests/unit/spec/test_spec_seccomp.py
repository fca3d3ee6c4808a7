"""The seccomp compiler, checked by running its programs in a BPF interpreter."""

from __future__ import annotations

import itertools
import struct
from typing import Any

import pytest

from llmos.spec import (
    DEFAULT_CAPABILITIES,
    Seccomp,
    SpecError,
    compile_seccomp,
    docker_default_seccomp,
    filter_flags,
    to_bytes,
)
from llmos.spec.syscall_tables import AARCH64, I386, X86_64
from tests.unit.spec.spec_bpf import (
    ALLOW,
    AUDIT_ARCH_AARCH64,
    AUDIT_ARCH_I386,
    AUDIT_ARCH_X86_64,
    ERRNO,
    KILL_PROCESS,
    KILL_THREAD,
    LOG,
    TRACE,
    TRAP,
    check_program,
    verdict,
)

EPERM = 1
ENOSYS = 38
CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000
SIGCHLD = 17
CLONE_THREAD_FLAGS = 0x003D0F00  # what glibc's pthread_create passes
AF_INET = 2
AF_VSOCK = 40


def profile(**kw: Any) -> Seccomp:
    return Seccomp.from_dict({"defaultAction": "SCMP_ACT_ERRNO", **kw}, "linux.seccomp")


@pytest.fixture(scope="module")
def docker_x86() -> list[tuple[int, int, int, int]]:
    prog = compile_seccomp(
        docker_default_seccomp(DEFAULT_CAPABILITIES, machine="x86_64", kernel=(6, 1)),
        "SCMP_ARCH_X86_64",
    )
    check_program(prog)
    return prog


def x86(prog: list[tuple[int, int, int, int]], name: str, *args: int) -> tuple[int, int]:
    return verdict(prog, X86_64[name], AUDIT_ARCH_X86_64, args)


# --- Docker's default profile -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "read",
        "write",
        "openat",
        "close",
        "mmap",
        "execve",
        "exit_group",
        "getpid",
        "futex",
        "rt_sigreturn",
        "arch_prctl",
        "ptrace",
        "chroot",
        "epoll_wait",
        "io_uring_setup",
    ],
)
def test_docker_default_allows_everyday_syscalls(docker_x86: Any, name: str) -> None:
    assert x86(docker_x86, name) == (ALLOW, 0)


@pytest.mark.parametrize(
    "name",
    [
        "kexec_load",
        "kexec_file_load",
        "reboot",
        "unshare",
        "mount",
        "umount2",
        "setns",
        "init_module",
        "bpf",
        "perf_event_open",
        "swapon",
        "pivot_root",
        "open_by_handle_at",
        "settimeofday",
        "acct",
        "keyctl",
        "add_key",
        "iopl",
        "userfaultfd",
    ],
)
def test_docker_default_denies_privileged_syscalls_with_eperm(docker_x86: Any, name: str) -> None:
    assert x86(docker_x86, name) == (ERRNO, EPERM)


def test_docker_clone_may_not_create_namespaces(docker_x86: Any) -> None:
    assert x86(docker_x86, "clone", SIGCHLD) == (ALLOW, 0)
    assert x86(docker_x86, "clone", CLONE_THREAD_FLAGS) == (ALLOW, 0)
    assert x86(docker_x86, "clone", CLONE_NEWUSER | SIGCHLD) == (ERRNO, EPERM)
    assert x86(docker_x86, "clone", CLONE_NEWNS) == (ERRNO, EPERM)
    # The mask covers the low word only; garbage in the high word does not matter.
    assert x86(docker_x86, "clone", (1 << 40) | SIGCHLD) == (ALLOW, 0)


def test_docker_clone3_gets_enosys_so_libc_falls_back(docker_x86: Any) -> None:
    assert x86(docker_x86, "clone3") == (ERRNO, ENOSYS)


def test_docker_socket_refuses_vsock(docker_x86: Any) -> None:
    assert x86(docker_x86, "socket", AF_INET) == (ALLOW, 0)
    assert x86(docker_x86, "socket", AF_VSOCK) == (ERRNO, EPERM)


def test_docker_personality_allowlist(docker_x86: Any) -> None:
    for value in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert x86(docker_x86, "personality", value) == (ALLOW, 0)
    assert x86(docker_x86, "personality", 0x0040000) == (ERRNO, EPERM)  # ADDR_NO_RANDOMIZE
    assert x86(docker_x86, "personality", 0xFFFFFFFF_FFFFFFFF) == (ERRNO, EPERM)


def test_wrong_architecture_is_killed(docker_x86: Any) -> None:
    assert verdict(docker_x86, 63, AUDIT_ARCH_AARCH64)[0] == KILL_PROCESS
    assert verdict(docker_x86, 0, 0x12345678)[0] == KILL_PROCESS


def test_x32_syscalls_are_killed(docker_x86: Any) -> None:
    x32_read = 0x40000000 | X86_64["read"]
    assert verdict(docker_x86, x32_read, AUDIT_ARCH_X86_64)[0] == KILL_PROCESS


def test_i386_syscalls_are_filtered_with_the_i386_table(docker_x86: Any) -> None:
    assert verdict(docker_x86, I386["read"], AUDIT_ARCH_I386) == (ALLOW, 0)
    assert verdict(docker_x86, I386["socketcall"], AUDIT_ARCH_I386) == (ALLOW, 0)
    assert verdict(docker_x86, I386["kexec_load"], AUDIT_ARCH_I386) == (ERRNO, EPERM)
    assert verdict(docker_x86, I386["clone"], AUDIT_ARCH_I386, [SIGCHLD]) == (ALLOW, 0)
    assert verdict(docker_x86, I386["clone"], AUDIT_ARCH_I386, [CLONE_NEWUSER]) == (ERRNO, EPERM)


def test_syscalls_newer_than_the_tables_get_enosys(docker_x86: Any) -> None:
    newest = max(X86_64.values())
    assert verdict(docker_x86, newest + 1, AUDIT_ARCH_X86_64) == (ERRNO, ENOSYS)
    assert verdict(docker_x86, 1000, AUDIT_ARCH_X86_64) == (ERRNO, ENOSYS)
    assert verdict(docker_x86, max(I386.values()) + 1, AUDIT_ARCH_I386) == (ERRNO, ENOSYS)


def test_docker_profile_with_cap_sys_admin() -> None:
    caps = [*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"]
    prog = compile_seccomp(docker_default_seccomp(caps, machine="x86_64"), "x86_64")
    check_program(prog)
    assert x86(prog, "mount") == (ALLOW, 0)
    assert x86(prog, "unshare") == (ALLOW, 0)
    assert x86(prog, "clone", CLONE_NEWUSER) == (ALLOW, 0)
    assert x86(prog, "clone3") == (ALLOW, 0)
    assert x86(prog, "reboot") == (ERRNO, EPERM)


def test_docker_profile_without_chroot_capability() -> None:
    caps = [c for c in DEFAULT_CAPABILITIES if c != "CAP_SYS_CHROOT"]
    prog = compile_seccomp(docker_default_seccomp(caps, machine="x86_64"), "x86_64")
    assert x86(prog, "chroot") == (ERRNO, EPERM)


def test_docker_profile_on_an_old_kernel_drops_ptrace() -> None:
    prog = compile_seccomp(
        docker_default_seccomp(DEFAULT_CAPABILITIES, machine="x86_64", kernel=(4, 4)), "x86_64"
    )
    assert x86(prog, "ptrace") == (ERRNO, EPERM)


def test_docker_profile_on_aarch64() -> None:
    sec = docker_default_seccomp(DEFAULT_CAPABILITIES, machine="aarch64", kernel=(6, 1))
    assert sec.architectures == ["SCMP_ARCH_AARCH64"]
    prog = compile_seccomp(sec, "aarch64")
    check_program(prog)
    assert verdict(prog, AARCH64["read"], AUDIT_ARCH_AARCH64) == (ALLOW, 0)
    assert verdict(prog, AARCH64["openat"], AUDIT_ARCH_AARCH64) == (ALLOW, 0)
    assert verdict(prog, AARCH64["kexec_load"], AUDIT_ARCH_AARCH64) == (ERRNO, EPERM)
    assert verdict(prog, AARCH64["clone"], AUDIT_ARCH_AARCH64, [CLONE_NEWUSER]) == (ERRNO, EPERM)
    assert verdict(prog, AARCH64["clone"], AUDIT_ARCH_AARCH64, [SIGCHLD]) == (ALLOW, 0)
    assert verdict(prog, X86_64["read"], AUDIT_ARCH_X86_64)[0] == KILL_PROCESS


def test_docker_profile_warnings_name_unknown_syscalls() -> None:
    prog = compile_seccomp(docker_default_seccomp(DEFAULT_CAPABILITIES, machine="x86_64"), "x86_64")
    # "recv" and "send" exist on other architectures only.
    assert prog.warnings == [
        'unknown syscall "recv" on SCMP_ARCH_X86_64, SCMP_ARCH_X86: skipped',
        'unknown syscall "send" on SCMP_ARCH_X86_64, SCMP_ARCH_X86: skipped',
    ]


def test_every_x86_64_syscall_gets_the_expected_verdict(docker_x86: Any) -> None:
    sec = docker_default_seccomp(DEFAULT_CAPABILITIES, machine="x86_64", kernel=(6, 1))
    plain = {
        n
        for rule in sec.syscalls
        if rule.action == "SCMP_ACT_ALLOW" and not rule.args
        for n in rule.names
    }
    special = {"clone", "clone3", "socket", "personality"}
    for name, nr in X86_64.items():
        if name in special:
            continue
        want = (ALLOW, 0) if name in plain else (ERRNO, EPERM)
        assert verdict(docker_x86, nr) == want, name


# --- the compiler on synthetic profiles ----------------------------------------------------

EDGES = [
    0,
    1,
    2,
    0x7FFFFFFF,
    0xFFFFFFFE,
    0xFFFFFFFF,
    1 << 32,
    (1 << 32) + 1,
    5 << 32,
    (5 << 32) + 7,
    0xFFFFFFFF_00000000,
    2**64 - 2,
    2**64 - 1,
]
REFERENCE = {
    "SCMP_CMP_NE": lambda a, v, v2: a != v,
    "SCMP_CMP_LT": lambda a, v, v2: a < v,
    "SCMP_CMP_LE": lambda a, v, v2: a <= v,
    "SCMP_CMP_EQ": lambda a, v, v2: a == v,
    "SCMP_CMP_GE": lambda a, v, v2: a >= v,
    "SCMP_CMP_GT": lambda a, v, v2: a > v,
    "SCMP_CMP_MASKED_EQ": lambda a, v, v2: a & v == v2,
}


@pytest.mark.parametrize("op", list(REFERENCE))
def test_64_bit_comparisons_match_python(op: str) -> None:
    for value in EDGES:
        value_two = value & 0x0000000F_0000000F
        sec = profile(
            syscalls=[
                {
                    "names": ["getuid"],
                    "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 2, "value": value, "valueTwo": value_two, "op": op}],
                }
            ]
        )
        prog = compile_seccomp(sec, "x86_64")
        check_program(prog)
        for arg in EDGES:
            want = REFERENCE[op](arg, value, value_two)
            got = x86(prog, "getuid", 0, 0, arg)
            assert got == ((ALLOW, 0) if want else (ERRNO, EPERM)), (op, hex(value), hex(arg))


@pytest.mark.parametrize("op", list(REFERENCE))
def test_32_bit_architectures_compare_the_low_word(op: str) -> None:
    small = [v for v in EDGES if v <= 0xFFFFFFFF]
    for value in small:
        sec = profile(
            architectures=["SCMP_ARCH_X86"],
            syscalls=[
                {
                    "names": ["getuid"],
                    "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": value, "valueTwo": value & 3, "op": op}],
                }
            ],
        )
        prog = compile_seccomp(sec, "x86_64")
        for arg in small:
            want = REFERENCE[op](arg, value, value & 3)
            got = verdict(prog, I386["getuid"], AUDIT_ARCH_I386, [arg])
            assert got == ((ALLOW, 0) if want else (ERRNO, EPERM)), (op, value, arg)


def test_conditions_on_different_arguments_are_anded() -> None:
    sec = profile(
        syscalls=[
            {
                "names": ["kill"],
                "action": "SCMP_ACT_ALLOW",
                "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                    {"index": 1, "value": 9, "op": "SCMP_CMP_NE"},
                ],
            }
        ]
    )
    prog = compile_seccomp(sec, "x86_64")
    assert x86(prog, "kill", 1, 15) == (ALLOW, 0)
    assert x86(prog, "kill", 1, 9) == (ERRNO, EPERM)
    assert x86(prog, "kill", 2, 15) == (ERRNO, EPERM)


def test_conditions_on_the_same_argument_are_ored_like_runc() -> None:
    sec = profile(
        syscalls=[
            {
                "names": ["kill"],
                "action": "SCMP_ACT_ALLOW",
                "args": [
                    {"index": 1, "value": 15, "op": "SCMP_CMP_EQ"},
                    {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"},
                ],
            }
        ]
    )
    prog = compile_seccomp(sec, "x86_64")
    assert x86(prog, "kill", 0, 15) == (ALLOW, 0)
    assert x86(prog, "kill", 0, 2) == (ALLOW, 0)
    assert x86(prog, "kill", 0, 9) == (ERRNO, EPERM)


def test_several_rules_for_one_syscall() -> None:
    sec = profile(
        syscalls=[
            {"names": ["openat"], "action": "SCMP_ACT_ALLOW"},
            {
                "names": ["openat"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 13,
                "args": [
                    {"index": 2, "value": 0o100, "valueTwo": 0o100, "op": "SCMP_CMP_MASKED_EQ"}
                ],
            },
            {
                "names": ["openat"],
                "action": "SCMP_ACT_LOG",
                "args": [{"index": 0, "value": 7, "op": "SCMP_CMP_EQ"}],
            },
        ]
    )
    prog = compile_seccomp(sec, "x86_64")
    check_program(prog)
    assert x86(prog, "openat", 3, 0, 0) == (ALLOW, 0)  # unconditional fallback
    assert x86(prog, "openat", 3, 0, 0o101) == (ERRNO, 13)  # O_CREAT: first matching rule
    assert x86(prog, "openat", 7, 0, 0) == (LOG, 0)
    assert x86(prog, "openat", 7, 0, 0o100) == (ERRNO, 13)  # rules keep their order


def test_conflicting_unconditional_actions_keep_the_first() -> None:
    sec = profile(
        syscalls=[
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getpid"], "action": "SCMP_ACT_KILL"},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
        ]
    )
    prog = compile_seccomp(sec, "x86_64")
    assert x86(prog, "getpid") == (ALLOW, 0)
    assert prog.warnings == [
        'linux.seccomp.syscalls[1]: "getpid" already has another action; the first one is kept'
    ]


@pytest.mark.parametrize(
    ("action", "errno", "want"),
    [
        ("SCMP_ACT_ALLOW", None, (ALLOW, 0)),
        ("SCMP_ACT_ERRNO", None, (ERRNO, EPERM)),
        ("SCMP_ACT_ERRNO", 22, (ERRNO, 22)),
        ("SCMP_ACT_KILL", None, (KILL_THREAD, 0)),
        ("SCMP_ACT_KILL_THREAD", None, (KILL_THREAD, 0)),
        ("SCMP_ACT_KILL_PROCESS", None, (KILL_PROCESS, 0)),
        ("SCMP_ACT_TRAP", None, (TRAP, 0)),
        ("SCMP_ACT_TRACE", None, (TRACE, EPERM)),
        ("SCMP_ACT_TRACE", 7, (TRACE, 7)),
        ("SCMP_ACT_LOG", None, (LOG, 0)),
    ],
)
def test_actions(action: str, errno: int | None, want: tuple[int, int]) -> None:
    rule: dict[str, Any] = {"names": ["uname"], "action": action}
    if errno is not None:
        rule["errnoRet"] = errno
    prog = compile_seccomp(profile(defaultAction="SCMP_ACT_ALLOW", syscalls=[rule]), "x86_64")
    assert x86(prog, "uname") == want
    assert x86(prog, "getpid") == (ALLOW, 0)


@pytest.mark.parametrize(
    ("default", "errno", "want"),
    [
        ("SCMP_ACT_ERRNO", None, (ERRNO, EPERM)),
        ("SCMP_ACT_ERRNO", 38, (ERRNO, 38)),
        ("SCMP_ACT_KILL_PROCESS", None, (KILL_PROCESS, 0)),
        ("SCMP_ACT_TRAP", None, (TRAP, 0)),
        ("SCMP_ACT_LOG", None, (LOG, 0)),
        ("SCMP_ACT_ALLOW", None, (ALLOW, 0)),
    ],
)
def test_default_action(default: str, errno: int | None, want: tuple[int, int]) -> None:
    sec = profile(defaultAction=default, syscalls=[{"names": ["read"], "action": "SCMP_ACT_LOG"}])
    if errno is not None:
        sec.default_errno_ret = errno
    prog = compile_seccomp(sec, "x86_64")
    assert x86(prog, "write") == want
    assert x86(prog, "read") == (LOG, 0)


def test_enosys_for_newer_syscalls_only_with_an_errno_default() -> None:
    prog = compile_seccomp(profile(defaultAction="SCMP_ACT_KILL_PROCESS"), "x86_64")
    assert verdict(prog, 999, AUDIT_ARCH_X86_64)[0] == KILL_PROCESS
    prog = compile_seccomp(profile(), "x86_64", enosys_for_newer=False)
    assert verdict(prog, 999, AUDIT_ARCH_X86_64) == (ERRNO, EPERM)


def test_notify_is_refused() -> None:
    sec = profile(syscalls=[{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}])
    with pytest.raises(SpecError, match=r"^linux\.seccomp\.syscalls\[0\]\.action: SCMP_ACT_NOTIFY"):
        compile_seccomp(sec, "x86_64")
    with pytest.raises(SpecError, match=r"^linux\.seccomp\.defaultAction: SCMP_ACT_NOTIFY"):
        compile_seccomp(profile(defaultAction="SCMP_ACT_NOTIFY"), "x86_64")


def test_errno_must_fit_sixteen_bits() -> None:
    sec = profile(syscalls=[{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}])
    with pytest.raises(SpecError, match="does not fit the 16 bits"):
        compile_seccomp(sec, "x86_64")


def test_unknown_names_are_skipped_and_reported() -> None:
    sec = profile(
        syscalls=[{"names": ["read", "no_such_call", "_llseek"], "action": "SCMP_ACT_ALLOW"}]
    )
    prog = compile_seccomp(sec, "x86_64")
    assert x86(prog, "read") == (ALLOW, 0)
    # _llseek exists on i386 only: not reported when i386 is filtered too, reported otherwise.
    assert prog.warnings == [
        'unknown syscall "no_such_call" on SCMP_ARCH_X86_64: skipped',
        'unknown syscall "_llseek" on SCMP_ARCH_X86_64: skipped',
    ]
    sec.architectures = ["SCMP_ARCH_X86"]
    prog = compile_seccomp(sec, "x86_64")
    assert prog.warnings == [
        'unknown syscall "no_such_call" on SCMP_ARCH_X86_64, SCMP_ARCH_X86: skipped'
    ]
    assert verdict(prog, I386["_llseek"], AUDIT_ARCH_I386) == (ALLOW, 0)


def test_architectures_that_cannot_be_filtered_are_reported() -> None:
    sec = profile(
        architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_S390X"]
    )
    prog = compile_seccomp(sec, "x86_64")
    assert prog.warnings == ["SCMP_ARCH_X32: the x32 ABI is not supported; its syscalls are killed"]
    sec = profile(architectures=["SCMP_ARCH_ARM"])
    prog = compile_seccomp(sec, "aarch64")
    assert prog.warnings == ["SCMP_ARCH_ARM: no syscall table in llmos; its syscalls are killed"]
    assert verdict(prog, 3, 0x40000028)[0] == KILL_PROCESS  # AUDIT_ARCH_ARM


def test_native_architecture_is_always_filtered() -> None:
    prog = compile_seccomp(profile(architectures=["SCMP_ARCH_X86"]), "SCMP_ARCH_X86_64")
    assert x86(prog, "read") == (ERRNO, EPERM)
    with pytest.raises(SpecError, match="no seccomp support for architecture SCMP_ARCH_S390X"):
        compile_seccomp(profile(), "SCMP_ARCH_S390X")


def test_large_programs_use_long_jumps() -> None:
    # Every syscall with a rule of three conditions: thousands of instructions, so targets
    # lie far beyond the 255 a conditional jump can reach.
    names = sorted(X86_64, key=X86_64.__getitem__)[:200]
    rules = [
        {
            "names": [name],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": i + 1,
            "args": [
                {"index": 0, "value": i, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 1 << 33, "op": "SCMP_CMP_GE"},
                {"index": 2, "value": 0xFF, "valueTwo": 0x0F, "op": "SCMP_CMP_MASKED_EQ"},
            ],
        }
        for i, name in enumerate(names)
    ]
    sec = profile(defaultAction="SCMP_ACT_ALLOW", syscalls=rules)
    prog = compile_seccomp(sec, "x86_64")
    check_program(prog)
    assert len(prog) > 2000
    assert any(insn[0] == 0x05 and insn[3] > 255 for insn in prog), "no long jump was needed?"
    for i, name in itertools.islice(enumerate(names), 0, None, 7):
        assert x86(prog, name, i, 1 << 33, 0x10F) == (ERRNO, i + 1)
        assert x86(prog, name, i, (1 << 33) + 5, 0x0F) == (ERRNO, i + 1)
        assert x86(prog, name, i, 1 << 32, 0x0F) == (ALLOW, 0)
        assert x86(prog, name, i + 1, 1 << 33, 0x0F) == (ALLOW, 0)
        assert x86(prog, name, i, 1 << 33, 0x1F) == (ALLOW, 0)


def test_programs_over_the_kernel_limit_are_refused() -> None:
    rules = [
        {
            "names": [name],
            "action": "SCMP_ACT_ERRNO",
            "args": [{"index": j, "value": j, "op": "SCMP_CMP_GT"} for j in range(6)],
        }
        for name in X86_64
    ]
    with pytest.raises(SpecError, match=r"^linux\.seccomp: compiles to \d+ BPF instructions"):
        compile_seccomp(profile(defaultAction="SCMP_ACT_ALLOW", syscalls=rules), "x86_64")


def test_to_bytes_packs_struct_sock_filter() -> None:
    prog = [(0x20, 0, 0, 4), (0x15, 1, 0, AUDIT_ARCH_X86_64), (0x06, 0, 0, ALLOW)]
    data = to_bytes(prog)
    assert len(data) == 8 * len(prog)
    assert struct.unpack("=HBBI", data[8:16]) == (0x15, 1, 0, AUDIT_ARCH_X86_64)
    assert data[:8] == struct.pack("=HBBI", 0x20, 0, 0, 4)


def test_filter_flags() -> None:
    sec = profile(flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"])
    assert filter_flags(sec) == 1 | 4
    assert filter_flags(profile()) == 0


def test_compilation_is_deterministic() -> None:
    sec = docker_default_seccomp(DEFAULT_CAPABILITIES, machine="x86_64", kernel=(6, 1))
    assert to_bytes(compile_seccomp(sec, "x86_64")) == to_bytes(compile_seccomp(sec, "x86_64"))
