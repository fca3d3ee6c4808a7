"""The checked-in syscall tables: right numbers, and reproducible from the headers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llmos.spec import _gen_syscall_tables, syscall_tables
from llmos.spec.syscall_tables import AARCH64, I386, X86_64

TABLES = Path(syscall_tables.__file__)


@pytest.mark.parametrize(
    ("name", "x86_64", "i386", "aarch64"),
    [
        ("read", 0, 3, 63),
        ("write", 1, 4, 64),
        ("openat", 257, 295, 56),
        ("execve", 59, 11, 221),
        ("clone", 56, 120, 220),
        ("clone3", 435, 435, 435),
        ("fcntl", 72, 55, 25),
        ("fstat", 5, 108, 80),
        ("newfstatat", 262, None, 79),
        ("kexec_load", 246, 283, 104),
        ("mmap", 9, 90, 222),
        ("unshare", 272, 310, 97),
        ("memfd_secret", 447, 447, 447),
        ("open", 2, 5, None),  # aarch64 only has openat
        ("socketcall", None, 102, None),
        ("_llseek", None, 140, None),
    ],
)
def test_known_numbers(
    name: str, x86_64: int | None, i386: int | None, aarch64: int | None
) -> None:
    assert X86_64.get(name) == x86_64
    assert I386.get(name) == i386
    assert AARCH64.get(name) == aarch64


def test_tables_are_one_to_one() -> None:
    for table in (X86_64, I386, AARCH64):
        assert len(set(table.values())) == len(table)
    assert len(X86_64) > 350 and len(I386) > 430 and len(AARCH64) > 300


def test_aarch64_bookkeeping_macros_are_not_syscalls() -> None:
    assert "syscalls" not in AARCH64 and "arch_specific_syscall" not in AARCH64


@pytest.mark.skipif(
    shutil.which("gcc") is None
    or not Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h").exists(),
    reason="needs gcc and the x86_64 kernel headers",
)
def test_checked_in_tables_match_the_generator() -> None:
    assert _gen_syscall_tables.render() == TABLES.read_text()
