"""cffi builder for llmos._native (out-of-line API mode), used by setup.py's cffi_modules.

The cdef is read from llmos.h itself, so the Python side and the C side can never disagree
about a struct layout.
"""

from __future__ import annotations

import re
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
SOURCES = ["common.c", "process.c", "rootfs.c", "spawn.c", "exec.c", "netns.c"]


def _cdef_text() -> str:
    text = (HERE / "llmos.h").read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return text


ffibuilder = FFI()
ffibuilder.cdef(_cdef_text())
ffibuilder.set_source(
    "llmos._native",
    '#include "llmos.h"',
    sources=[str(Path("native") / s) for s in SOURCES],
    include_dirs=["native"],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-std=gnu11", "-Wno-unused-parameter"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
