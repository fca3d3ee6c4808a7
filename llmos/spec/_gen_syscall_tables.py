"""Regenerate ``llmos/spec/syscall_tables.py`` from the kernel's UAPI headers.

The seccomp compiler must turn syscall names into numbers for architectures other than the
one it runs on (an x86_64 host also filters i386 syscalls), so it cannot ask libc. The kernel
headers are the authority; this script reads them once and the result is checked in, so that
neither the runtime nor the tests need headers or a compiler.

Run from the repository root (needs ``gcc`` and the ``linux-libc-dev`` headers)::

    python3 -m llmos.spec._gen_syscall_tables > llmos/spec/syscall_tables.py

x86_64 and i386 come from ``asm/unistd_64.h`` and ``asm/unistd_32.h``. aarch64 has no header
of its own on an x86_64 machine: arm64 uses ``asm-generic/unistd.h`` with the ``__ARCH_WANT_*``
switches that ``arch/arm64/include/uapi/asm/unistd.h`` sets, on a 64-bit ``long``, which is
what the preprocessor run below reproduces.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

_X86_64_HEADER = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
_I386_HEADER = Path("/usr/include/x86_64-linux-gnu/asm/unistd_32.h")
_GENERIC_HEADER = "asm-generic/unistd.h"
_VERSION_HEADER = Path("/usr/include/linux/version.h")

# The switches arm64's uapi asm/unistd.h defines before including asm-generic/unistd.h.
_ARM64_DEFINES = (
    "__ARCH_WANT_RENAMEAT",
    "__ARCH_WANT_NEW_STAT",
    "__ARCH_WANT_SET_GET_RLIMIT",
    "__ARCH_WANT_TIME32_SYSCALLS",
    "__ARCH_WANT_SYS_CLONE3",
    "__ARCH_WANT_MEMFD_SECRET",
)
# Macros in asm-generic/unistd.h that are bookkeeping, not syscalls.
_NOT_SYSCALLS = frozenset({"syscalls", "arch_specific_syscall"})

_DEFINE = re.compile(r"^#define\s+__NR_(\w+)\s+(\S+)\s*$")


def _parse_plain(header: Path) -> dict[str, int]:
    """Read a header whose ``__NR_*`` macros are all plain numbers."""
    table: dict[str, int] = {}
    for line in header.read_text().splitlines():
        m = _DEFINE.match(line.strip())
        if m:
            table[m.group(1)] = int(m.group(2), 0)
    return table


def _parse_generic() -> dict[str, int]:
    """Preprocess asm-generic/unistd.h as arm64 does and resolve the macro chains."""
    cmd = ["gcc", "-E", "-dM", "-D__BITS_PER_LONG=64"]
    cmd += [f"-D{d}" for d in _ARM64_DEFINES]
    cmd += ["-include", _GENERIC_HEADER, "-x", "c", "/dev/null"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    macros: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0] == "#define" and parts[1].startswith("__NR"):
            macros[parts[1]] = parts[2].strip()

    def resolve(value: str, depth: int = 0) -> int | None:
        if depth > 8:
            return None
        if re.fullmatch(r"\d+", value):
            return int(value)
        if value in macros:
            return resolve(macros[value], depth + 1)
        return None

    table: dict[str, int] = {}
    for name, value in macros.items():
        if not name.startswith("__NR_"):
            continue  # __NR3264_* are resolved through the __NR_* names that use them
        short = name[len("__NR_") :]
        number = resolve(value)
        if short in _NOT_SYSCALLS or number is None:
            continue
        table[short] = number
    return table


def _kernel_version() -> str:
    text = _VERSION_HEADER.read_text()
    parts = [
        re.search(rf"LINUX_VERSION_{k}\s+(\d+)", text) for k in ("MAJOR", "PATCHLEVEL", "SUBLEVEL")
    ]
    return ".".join(p.group(1) if p else "?" for p in parts)


def _emit(name: str, table: dict[str, int]) -> list[str]:
    lines = [f"{name}: Final[Mapping[str, int]] = {{"]
    for syscall, number in sorted(table.items(), key=lambda kv: (kv[1], kv[0])):
        lines.append(f'    "{syscall}": {number},')
    lines.append("}")
    return lines


def render() -> str:
    """The full text of syscall_tables.py."""
    head = [
        '"""Syscall name -> number tables for the seccomp compiler (GENERATED, do not edit).',
        "",
        f"Made by `python3 -m llmos.spec._gen_syscall_tables` from the linux-libc-dev "
        f"{_kernel_version()} headers:",
        "x86_64 from asm/unistd_64.h, i386 from asm/unistd_32.h, aarch64 from",
        "asm-generic/unistd.h preprocessed with arm64's __ARCH_WANT_* switches and a 64-bit long.",
        '"""',
        "",
        "from collections.abc import Mapping",
        "from typing import Final",
        "",
    ]
    body: list[str] = []
    body += _emit("X86_64", _parse_plain(_X86_64_HEADER))
    body.append("")
    body += _emit("I386", _parse_plain(_I386_HEADER))
    body.append("")
    body += _emit("AARCH64", _parse_generic())
    return "\n".join(head + body) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
