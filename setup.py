"""Build glue: the cffi extension (out-of-line API mode) and the small C shim binary.

The shim is a separate executable, not a fork of Python, so that each container's monitor costs
well under a megabyte of memory and outlives whatever Python process created it.
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
SHIM_SOURCES = ["native/shim.c"]


class BuildWithShim(build_ext):
    """Compile the cffi extension, then link native/shim.c into llmos/libexec/llmos-shim."""

    def run(self) -> None:
        super().run()
        self._build_shim()

    def _build_shim(self) -> None:
        if self.inplace:
            out_dir = HERE / "llmos" / "libexec"
        else:
            out_dir = Path(self.build_lib) / "llmos" / "libexec"
        out_dir.mkdir(parents=True, exist_ok=True)
        objects = self.compiler.compile(
            [str(HERE / s) for s in SHIM_SOURCES],
            output_dir=self.build_temp,
            extra_postargs=["-O2", "-Wall", "-Wextra", "-std=gnu11"],
        )
        # Static: no dynamic loader and no shared libc mapped in, so a shim costs a few
        # hundred KiB resident instead of over a megabyte. Fall back to dynamic linking where
        # the static libc is missing.
        try:
            self.compiler.link_executable(
                objects, "llmos-shim", output_dir=str(out_dir), extra_postargs=["-static"]
            )
        except Exception:
            if os.environ.get("LLMOS_REQUIRE_STATIC_SHIM"):
                raise
            self.compiler.link_executable(objects, "llmos-shim", output_dir=str(out_dir))


setup(
    cffi_modules=["native/build_ffi.py:ffibuilder"],
    cmdclass={"build_ext": BuildWithShim},
)
