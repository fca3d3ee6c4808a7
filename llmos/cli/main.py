"""`llmos` entry point: dispatches to a verb module, importing only what that verb needs."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: llmos [--version] [-H unix:///path] COMMAND [ARGS...]

containers (through llmosd, found by -H or LLMOS_HOST like DOCKER_HOST):
  run, create, start, stop, restart, kill, rm, ps, logs, exec, inspect, wait, stats,
  pause, unpause, port
networks:
  network create|ls|inspect|rm|connect|disconnect
images:
  build -t NAME DIR, bootstrap debian:bookworm, import FILE NAME, images
system:
  info, version
low level:
  runtime    the OCI runtime (runc's command line): spec, create, start, state,
             kill, delete, run, exec, list, ps, pause, resume

Run 'llmos COMMAND --help' for a command's options.
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    if args[0] in ("--version", "-v"):
        from llmos import __version__

        print(f"llmos version {__version__}")
        return 0
    host = None
    while args and args[0] in ("-H", "--host"):
        if len(args) < 2:
            sys.stderr.write("llmos: -H needs an address\n")
            return 125
        host, args = args[1], args[2:]
    if not args:
        sys.stdout.write(USAGE)
        return 2
    if args[0] == "runtime":
        from llmos.cli import runtime_cli

        return runtime_cli.main(args[1:])
    if args[0] == "build":
        from llmos.build import cli as build_cli

        return build_cli.build_main(args[1:])
    if args[0] == "bootstrap":
        from llmos.build import cli as build_cli

        return build_cli.bootstrap_main(args[1:])
    from llmos.cli.engine_cli import VERBS, run_verb

    if args[0] in VERBS:
        return run_verb(args[0], args[1:], host)
    sys.stderr.write(f"llmos: unknown command {args[0]!r}\n\n{USAGE}")
    return 125


# Verbs that always run in the caller's process: they use its files, terminal or namespaces.
LOCAL_VERBS = ("runtime", "build", "bootstrap")


def needs_local(argv: Sequence[str]) -> bool:
    """Whether `llmos ARGV` must run in the caller's own process rather than inside llmosd
    (see native/cli.c, the compiled front end that asks)."""
    args = list(argv)
    while len(args) >= 2 and args[0] in ("-H", "--host"):
        args = args[2:]
    if not args:
        return False
    if args[0] in LOCAL_VERBS:
        return True
    from llmos.cli.engine_cli import VERBS, needs_terminal

    return args[0] in VERBS and needs_terminal(args[0], args[1:])


if __name__ == "__main__":
    sys.exit(main())
