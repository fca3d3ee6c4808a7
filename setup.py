"""Build glue: the cffi extension (out-of-line API mode) and the small C shim binary.

The shim is a separate executable, not a fork of Python, so that each container's monitor costs
well under a megabyte of memory and outlives whatever Python process created it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
SHIM_SOURCES = ["native/shim.c"]
# build_scripts copies this into the environment's bin directory as `llmos`.
CLI_SCRIPT = HERE / "build" / "llmos-cli" / "llmos"


class BuildWithShim(build_ext):
    """Compile the cffi extension, then link native/shim.c into llmos/libexec/llmos-shim."""

    def run(self) -> None:
        super().run()
        self._build_shim()
        self._build_cli()

    def _build_cli(self) -> None:
        """native/cli.c, told which interpreter runs the Python command line it falls back to
        (the one building this: the one whose environment llmos is installed into)."""
        objects = self.compiler.compile(
            [str(HERE / "native" / "cli.c")],
            output_dir=self.build_temp,
            macros=[("LLMOS_PYTHON", '"' + sys.executable.replace('"', "") + '"')],
            extra_postargs=["-O2", "-Wall", "-Wextra", "-std=gnu11"],
        )
        CLI_SCRIPT.parent.mkdir(parents=True, exist_ok=True)
        self.compiler.link_executable(objects, "llmos", output_dir=str(CLI_SCRIPT.parent))

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


def _copy_binary_scripts() -> type:
    # setuptools has no public build_scripts; this `distutils` is setuptools' own copy, which
    # it installs when imported (so it must come after the setuptools imports above).
    from distutils.command.build_scripts import build_scripts

    class CopyBinaryScripts(build_scripts):  # type: ignore[misc]
        """The one script is an ELF binary: copied as it is (the stock command reads a
        script's first line as text to rewrite its #! line)."""

        def copy_scripts(self) -> tuple[list[str], list[str]]:
            out_dir = Path(self.build_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            outfiles = []
            for script in self.scripts:
                dest = out_dir / Path(script).name
                shutil.copy2(script, dest)
                dest.chmod(0o755)
                outfiles.append(str(dest))
            return outfiles, outfiles

    return CopyBinaryScripts


setup(
    cffi_modules=["native/build_ffi.py:ffibuilder"],
    cmdclass={"build_ext": BuildWithShim, "build_scripts": _copy_binary_scripts()},
    # The `llmos` command is the compiled front end (native/cli.c), made by build_ext above.
    scripts=[str(CLI_SCRIPT.relative_to(HERE))],
)
