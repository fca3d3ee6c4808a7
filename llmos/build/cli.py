"""`llmos build` and `llmos bootstrap` command lines (argument parsing only; the work is in
`builder.build` and `bootstrap.bootstrap`). `llmos.cli.main` dispatches here:

    if args[0] == "build": from llmos.build import cli; return cli.build_main(args[1:])
    if args[0] == "bootstrap": from llmos.build import cli; return cli.bootstrap_main(args[1:])
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = ["DEFAULT_STORE_ROOT", "bootstrap_main", "build_main"]

# The engine's image store (llmosd --root /var/lib/llmos keeps images in ROOT/image).
DEFAULT_STORE_ROOT = os.environ.get(
    "LLMOS_IMAGE_ROOT", os.path.join(os.environ.get("LLMOS_ROOT", "/var/lib/llmos"), "image")
)


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmos build", description="Build an image from a "
                                "Dockerfile and a context directory.")
    p.add_argument("context", help="the build context directory")
    p.add_argument("-t", "--tag", help="name the image (e.g. nginx or nginx:1)")
    p.add_argument("-f", "--file", default="Dockerfile",
                   help="the Dockerfile (default: CONTEXT/Dockerfile)")
    p.add_argument("--build-arg", action="append", default=[], metavar="NAME=VALUE",
                   help="set a build-time variable (repeatable); NAME alone takes it from "
                   "the environment")
    p.add_argument("--target", help="stop after this build stage")
    p.add_argument("--no-cache", action="store_true", help="run every step")
    p.add_argument("--network", default="default", choices=["default", "host", "none"],
                   help="network for RUN: default (its own namespace on the default bridge, "
                   "out through NAT, as Docker), host or none")
    p.add_argument("--root", default=DEFAULT_STORE_ROOT, help="the image store directory")
    return p


def build_main(argv: Sequence[str]) -> int:
    """`llmos build [-t TAG] [-f FILE] [--build-arg N=V] [--target S] [--no-cache] DIR`."""
    from llmos.cli.progress_view import ProgressView
    from llmos.image import ImageStore

    from .builder import build
    from .errors import BuildError

    a = _build_parser().parse_args(list(argv))
    args: dict[str, str] = {}
    for item in a.build_arg:
        name, eq, value = item.partition("=")
        if eq:
            args[name] = value
        elif name in os.environ:
            args[name] = os.environ[name]
    dockerfile = a.file if os.path.isabs(a.file) or a.file == "Dockerfile" \
        else os.path.abspath(a.file)
    # On a terminal each new layer gets a live line while it is compressed and stored (the
    # slow part of a big COPY or RUN), retired into the log once stored; elsewhere the
    # output stays the Docker builder's plain lines.
    with ProgressView(verb="build", keep_done=False) as view:
        try:
            build(ImageStore(a.root), a.context, dockerfile=dockerfile, tag=a.tag,
                  build_args=args, target=a.target, no_cache=a.no_cache, network=a.network,
                  progress=view.log, layer_progress=view if view.tty else None)
        except BuildError as e:
            view.close()
            print(f"llmos build: {e}", file=sys.stderr)
            return 1
    return 0


def bootstrap_main(argv: Sequence[str]) -> int:
    """`llmos bootstrap debian:SUITE [--variant V] [--include PKGS] [--name NAME]`."""
    from llmos.image import ImageStore

    from .bootstrap import bootstrap
    from .errors import BuildError

    p = argparse.ArgumentParser(prog="llmos bootstrap", description="Make a Debian base "
                                "image from the Debian archive with mmdebstrap.")
    p.add_argument("image", nargs="?", default="debian:bookworm")
    p.add_argument("--variant", default="minbase")
    p.add_argument("--include", action="append", default=[],
                   help="extra packages (comma-separated, repeatable)")
    p.add_argument("--name", help="store the image under this name (default: IMAGE)")
    p.add_argument("--root", default=DEFAULT_STORE_ROOT, help="the image store directory")
    a = p.parse_args(list(argv))
    include = [pkg for item in a.include for pkg in item.split(",") if pkg]
    try:
        bootstrap(ImageStore(a.root), a.image, variant=a.variant, include=include,
                  name=a.name, progress=lambda line: print(line, flush=True))
    except BuildError as e:
        print(f"llmos bootstrap: {e}", file=sys.stderr)
        return 1
    return 0
