"""`llmosd`: the daemon. Serves the engine's API on a Unix socket, supervises restarts.

    llmosd [--root /var/lib/llmos] [--run-root /run/llmos] [--socket /run/llmos/llmos.sock]
           [--insecure-registry HOST[:PORT]]...

Killing it (even with SIGKILL) stops no container: each has its own shim. On start it
re-adopts running containers and collects what a crash left half-made.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any


def _handler(api: Any) -> Any:
    from llmos.cli.remote import RemoteCli
    from llmos.daemon.errors import RpcError
    from llmos.engine.api import ApiError

    remote = RemoteCli(api)

    def handle(method: str, params: dict[str, Any]) -> Any:
        if method in ("cli.run", "cli.signal"):
            if not isinstance(params, dict):
                raise RpcError("invalid_argument", "params must be a map")
            return remote.handle(method, params)
        try:
            result = api.handle(method, params)
        except ApiError as e:
            raise RpcError(e.kind, e.message) from None
        if isinstance(result, Iterator):
            return _convert_stream(result)
        return result

    def _convert_stream(it: Iterator[Any]) -> Iterator[Any]:
        try:
            yield from it
        except ApiError as e:
            raise RpcError(e.kind, e.message) from None

    return handle


def _insecure_registry(value: str) -> str:
    from llmos.image.registry import parse_insecure_registry

    try:
        return parse_insecure_registry(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="llmosd", description="the llmos daemon")
    ap.add_argument("--root", default="/var/lib/llmos")
    ap.add_argument("--run-root", default="/run/llmos")
    ap.add_argument("--socket", default=None, help="default: RUN_ROOT/llmos.sock")
    ap.add_argument("--group", default=None, help="group allowed to use the socket (0660)")
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--default-network", default="bridge", choices=["bridge", "none", "host"],
                    help="network of containers run without --network (Docker: bridge)")
    ap.add_argument("--insecure-registry", action="append", default=[],
                    metavar="HOST[:PORT]|CIDR", type=_insecure_registry,
                    help="talk to this registry over HTTPS without checking its certificate, "
                    "or plain HTTP if HTTPS fails (repeatable; loopback registries are "
                    "insecure unless ROOT/certs.d/HOST:PORT/ca.crt gives their CA)")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format='{"time":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s",'
        '"msg":%(message)r}',
    )
    from llmos.daemon.rpc import Server
    from llmos.engine import Engine
    from llmos.engine.api import Api
    from llmos.engine.supervisor import Supervisor

    engine = Engine(args.root, args.run_root, default_network=args.default_network,
                    insecure_registries=args.insecure_registry)
    sup = Supervisor(engine)
    report = sup.recover()
    logging.getLogger("llmosd").info("recovered %s", json.dumps(report))
    socket_path = args.socket or f"{args.run_root}/llmos.sock"
    server = Server(socket_path, _handler(Api(engine)), group=args.group)
    done = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.start()
    sup.start()
    logging.getLogger("llmosd").info("listening on %s", socket_path)
    done.wait()
    sup.close()
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
