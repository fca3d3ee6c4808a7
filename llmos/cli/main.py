"""`llmos` entry point: dispatches to a verb module, importing only what that verb needs."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: llmos [--version] COMMAND [ARGS...]

commands:
  runtime    the low-level OCI runtime (runc's command line): spec, create, start, state,
             kill, delete, run, exec, list, ps, pause, resume
  version    print the version

Run 'llmos COMMAND --help' for a command's options.
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    if args[0] in ("--version", "-v", "version"):
        from llmos import __version__

        print(f"llmos version {__version__}")
        return 0
    if args[0] == "runtime":
        from llmos.cli import runtime_cli

        return runtime_cli.main(args[1:])
    sys.stderr.write(f"llmos: unknown command {args[0]!r}\n\n{USAGE}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
