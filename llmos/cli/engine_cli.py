"""Docker's verbs over `llmos.Client`: each verb parses flags and makes one or two calls.

Exit codes as Docker's: 125 when llmos itself fails (bad flag, no daemon, no image), 126/127
when the container's command cannot be run or found, otherwise the container's own code.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from llmos.cli import listing
from llmos.client import Client, RpcError
from llmos.errors import ConfigError

VERBS = ("run", "create", "start", "ps", "logs", "stop", "kill", "rm", "exec", "inspect",
         "wait", "stats", "pause", "unpause", "restart", "import", "images", "info", "version",
         "network", "port", "pull", "push", "tag", "rmi", "load", "save", "image", "events",
         "login")


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse exits 2; Docker exits 125
        raise UsageError(f"{self.prog}: {message}")


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("--rm", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("--name")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-v", "--volume", action="append", default=[])
    p.add_argument("--tmpfs", action="append", default=[])
    p.add_argument("-m", "--memory")
    p.add_argument("--cpus")
    p.add_argument("--pids-limit", type=int)
    p.add_argument("--restart", default="no")
    p.add_argument("-u", "--user")
    p.add_argument("-w", "--workdir")
    p.add_argument("--entrypoint")
    p.add_argument("-h", "--hostname")
    p.add_argument("--read-only", action="store_true")
    p.add_argument("--network", "--net", default="default")
    p.add_argument("--network-alias", "--net-alias", action="append", default=[],
                   help="another name the container answers to on a user network")
    p.add_argument("-p", "--publish", action="append", default=[])
    p.add_argument("-P", "--publish-all", action="store_true")
    p.add_argument("-l", "--label", action="append", default=[])
    p.add_argument("--stop-signal")
    p.add_argument("--stop-timeout", type=int)
    p.add_argument("image")
    p.add_argument("command", nargs=argparse.REMAINDER)


def _options(a: argparse.Namespace) -> dict[str, Any]:
    from llmos.engine.options import (
        RestartPolicy,
        RunOptions,
        parse_cpus,
        parse_env,
        parse_size,
        parse_tmpfs,
        parse_volume,
    )

    labels = dict(item.partition("=")[::2] for item in a.label)
    opts = RunOptions(
        image=a.image,
        command=list(a.command) or None,
        entrypoint=[a.entrypoint] if a.entrypoint is not None else None,
        name=a.name,
        env=parse_env(_expand_env(a.env)),
        workdir=a.workdir,
        user=a.user,
        hostname=a.hostname,
        mounts=[parse_volume(v) for v in a.volume] + [parse_tmpfs(t) for t in a.tmpfs],
        memory=parse_size(a.memory, "--memory") if a.memory else None,
        nano_cpus=parse_cpus(a.cpus) if a.cpus else None,
        pids_limit=a.pids_limit,
        restart=RestartPolicy.parse(a.restart),
        read_only=a.read_only,
        tty=a.tty,
        interactive=a.interactive,
        auto_remove=a.rm,
        network=a.network,
        network_aliases=a.network_alias,
        ports=list(a.publish),
        publish_all=a.publish_all,
        labels=labels,
        stop_signal=a.stop_signal,
        stop_timeout=a.stop_timeout,
    )
    if opts.tty:
        try:
            size = os.get_terminal_size(sys.stdout.fileno())
            opts.tty_size = (size.lines, size.columns)
        except OSError:
            opts.tty_size = None
    d = opts.to_dict()
    return d


def _expand_env(items: list[str]) -> list[str]:
    """`-e NAME` takes NAME's value from this shell, as Docker does."""
    from llmos.cli import session

    env = session.environ()
    out = []
    for item in items:
        if "=" not in item:
            if item in env:
                out.append(f"{item}={env[item]}")
            continue
        out.append(item)
    return out


def _client(a: argparse.Namespace) -> Client:
    from llmos.cli import session

    s = session.current()
    if s is not None:  # served inside llmosd: the engine is right here
        return Client(s.transport)
    from llmos.client.transport import SocketTransport

    return Client(SocketTransport(a.host.removeprefix("unix://") if a.host else None))


def _print_logs(c: Any, follow: bool, tail: str = "all", timestamps: bool = False) -> None:
    for chunk in c.logs(stream=True, follow=follow, tail=tail, timestamps=timestamps,
                        stdout=True, stderr=False):
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()


def cmd_run(cl: Client, a: argparse.Namespace, create_only: bool = False) -> int:
    opts = _options(a)
    cid = cl.transport.call("container.create", {"options": opts})["Id"]
    c = cl.containers.get(cid)
    if create_only:
        print(cid)
        return 0
    try:
        c.start()
    except RpcError as e:
        code = getattr(e, "exit_code", None) or _exit_code_of(str(e))
        sys.stderr.write(f"llmos: {e}\n")
        if opts.get("auto_remove"):
            c.remove(force=True)
        return code
    if a.detach:
        print(cid)
        return 0
    if opts.get("tty"):
        path = cl.transport.call("container.attach_socket", {"id": cid})
        from llmos.cli.attach import attach_terminal

        attach_terminal(path, interactive=bool(opts.get("interactive")),
                        fallback=lambda: _print_logs(c, follow=False))
        code = int(c.wait()["StatusCode"])
        if opts.get("auto_remove"):
            try:
                c.remove(force=True)
            except RpcError:
                pass
        return code
    def forward(signum: int) -> None:
        try:
            c.kill(signum)
        except RpcError:
            pass

    restore = _forward_signals(forward)
    try:
        # stdout and stderr, in order, as they were written.
        for item in cl.transport.stream("container.logs", {"id": cid, "follow": True}):
            out = sys.stdout if item["stream"] == "stdout" else sys.stderr
            out.buffer.write(item["text"].encode())
            out.flush()
        code = int(c.wait()["StatusCode"])
    except BrokenPipeError:
        from llmos.cli import session

        if session.current() is not None and opts.get("auto_remove"):
            # Served in llmosd and the caller went away (`| head`, kill -9): as Docker's
            # daemon does for --rm, remove the container once it has ended.
            c.wait()
            c.remove(force=True)
        raise
    finally:
        restore()
    if opts.get("auto_remove"):
        try:
            c.remove(force=True)
        except RpcError:
            pass  # the daemon removed it already
    return code


def _forward_signals(forward: Callable[[int], None]) -> Callable[[], None]:
    """Ctrl-C and TERM go to the container while `run` waits on it; returns the undo."""
    from llmos.cli import session

    s = session.current()
    if s is not None:  # the front end forwards its signals with a cli.signal call
        s.on_signal = forward
        return lambda: setattr(s, "on_signal", None)
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in old:
        signal.signal(sig, lambda signum, frame: forward(signum))

    def restore() -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)

    return restore


def _exec_start(cl: Client, a: argparse.Namespace) -> dict[str, Any]:
    """`exec -t` and `exec -i`: the daemon starts the command under a shim of its own, held
    until we are attached to its terminal or pipes (so we miss none of its output)."""
    size = None
    if a.tty:
        try:
            ts = os.get_terminal_size(sys.stdout.fileno())
            size = [ts.lines, ts.columns]
        except (OSError, ValueError):
            pass
    r: dict[str, Any] = cl.transport.call("container.exec_start", {
        "id": a.container, "cmd": list(a.command), "env": _expand_env(a.env),
        "user": a.user, "workdir": a.workdir, "tty": bool(a.tty), "tty_size": size,
        "hold": True})
    return r


def _abspath(path: str) -> str:
    from llmos.cli import session

    return session.abspath(path)


def _exit_code_of(message: str) -> int:
    if "executable file not found" in message or "No such file or directory" in message:
        return 127
    if message.startswith("exec ") or "Permission denied" in message:
        return 126
    return 125


def _ps(cl: Client, a: argparse.Namespace) -> int:
    containers = cl.containers.list(all=a.all)
    if a.quiet:
        for c in containers:
            print(c.short_id)
        return 0
    print(listing.format_table(listing.ps_rows(containers)))
    return 0


def _images(cl: Client, verb: str, a: argparse.Namespace) -> int:
    t = cl.transport
    if verb in ("pull", "push"):
        params: dict[str, Any] = {"ref": a.reference, "progress": True}
        _show_progress(verb, t.stream(f"image.{verb}", params))
    elif verb == "tag":
        t.call("image.tag", {"source": a.source, "name": a.target})
    elif verb == "rmi":
        for ref in a.images:
            for d in t.call("image.remove", {"ref": ref, "force": a.force})["Deleted"]:
                print(f"Deleted: {d}")
    elif verb == "load":
        _show_progress(verb, t.stream("image.load", {"path": _abspath(a.input),
                                                     "progress": True}))
    elif verb == "save":
        t.call("image.save", {"refs": a.images, "path": _abspath(a.output),
                              "format": a.format})
    elif verb == "image" and a.action == "prune":
        r = t.call("image.prune", {})
        print(f"Total reclaimed space: {r['SpaceReclaimed']} bytes")
    elif verb == "image" and a.action == "ls":
        return main("images", [], a.host)
    return 0


def _show_progress(verb: str, events: Iterator[dict[str, Any]]) -> None:
    """A pull, push or load as it goes (see llmos.cli.progress_view), then Docker's closing
    lines: the image pulled, the digest pushed, the names loaded."""
    from llmos.cli.progress_view import ProgressView

    closing: list[str] = []  # printed below the live lines, once they are final
    with ProgressView(verb=verb) as view:
        for ev in events:
            action = ev.get("action")
            if action == "pulled":
                closing.append(f"Pulled {ev.get('message') or ''} ({ev['item']})")
            elif action == "pushed":
                closing.append(f"{ev.get('message') or ''}: digest: {ev['item']} "
                               f"size: {ev.get('total') or 0}")
            elif action == "loaded":
                closing.append(f"Loaded image: {ev['item']}")
            else:
                view.event(ev)
    for line in closing:
        print(line)


def _network(cl: Client, a: argparse.Namespace) -> int:
    t = cl.transport
    if a.action == "create":
        doc = t.call("network.create", {"name": a.name, "subnet": a.subnet,
                                        "gateway": a.gateway, "internal": a.internal})
        print(doc["Id"])
    elif a.action == "ls":
        print(f"{'NETWORK ID':<14}{'NAME':<20}{'DRIVER':<10}SUBNET")
        for n in t.call("network.list", {}):
            print(f"{n['Id'][:12]:<14}{n['Name']:<20}{n['Driver']:<10}"
                  f"{n['IPAM']['Config'][0]['Subnet']}")
    elif a.action == "inspect":
        print(json.dumps([t.call("network.inspect", {"name": n}) for n in a.names], indent=4))
    elif a.action == "connect":
        t.call("network.connect", {"name": a.network, "container": a.container,
                                   "aliases": a.alias})
    elif a.action == "disconnect":
        t.call("network.disconnect", {"name": a.network, "container": a.container})
    elif a.action == "rm":
        for n in a.names:
            t.call("network.remove", {"name": n})
            print(n)
    return 0


def parse(verb: str, argv: Sequence[str], host: str | None = None) -> argparse.Namespace:
    """The verb's flags; UsageError names what was wrong."""
    p = _Parser(prog=f"llmos {verb}", add_help=verb not in ("run", "create"))
    p.set_defaults(host=host)
    if verb in ("run", "create"):
        p.add_argument("--help", action="help")
        _run_args(p)
    elif verb in ("start", "pause", "unpause", "wait", "inspect"):
        p.add_argument("containers", nargs="+")
    elif verb in ("stop", "restart"):
        p.add_argument("-t", "--time", type=float)
        p.add_argument("containers", nargs="+")
    elif verb == "kill":
        p.add_argument("-s", "--signal", default="KILL")
        p.add_argument("containers", nargs="+")
    elif verb == "rm":
        p.add_argument("-f", "--force", action="store_true")
        p.add_argument("-v", "--volumes", action="store_true")
        p.add_argument("containers", nargs="+")
    elif verb == "ps":
        p.add_argument("-a", "--all", action="store_true")
        p.add_argument("-q", "--quiet", action="store_true")
    elif verb == "logs":
        p.add_argument("-f", "--follow", action="store_true")
        p.add_argument("-n", "--tail", default="all")
        p.add_argument("-t", "--timestamps", action="store_true")
        p.add_argument("container")
    elif verb == "exec":
        p.add_argument("-i", "--interactive", action="store_true",
                       help="send this stdin to the command")
        p.add_argument("-t", "--tty", action="store_true",
                       help="run the command on a terminal of its own (this one's size)")
        p.add_argument("-e", "--env", action="append", default=[])
        p.add_argument("-u", "--user")
        p.add_argument("-w", "--workdir")
        p.add_argument("container")
        p.add_argument("command", nargs=argparse.REMAINDER)
    elif verb == "stats":
        p.add_argument("--no-stream", action="store_true",
                       help="print one table (default: one a second until interrupted or "
                       "the containers named are gone)")
        p.add_argument("containers", nargs="*")
    elif verb == "import":
        p.add_argument("file")
        p.add_argument("reference")
    elif verb == "port":
        p.add_argument("container")
    elif verb == "events":
        p.add_argument("--since", type=float, help="unix time to start from (default: now)")
        p.add_argument("--until", type=float, help="unix time to stop at")
    elif verb == "login":
        p.add_argument("-u", "--username", required=True)
        p.add_argument("-p", "--password")
        p.add_argument("--password-stdin", action="store_true")
        p.add_argument("server")
    elif verb in ("pull", "push"):
        p.add_argument("reference")
    elif verb == "tag":
        p.add_argument("source")
        p.add_argument("target")
    elif verb == "rmi":
        p.add_argument("-f", "--force", action="store_true")
        p.add_argument("images", nargs="+")
    elif verb == "load":
        p.add_argument("-i", "--input", required=True)
    elif verb == "save":
        p.add_argument("-o", "--output", required=True)
        p.add_argument("--format", default="docker-archive", choices=["docker-archive", "oci"])
        p.add_argument("images", nargs="+")
    elif verb == "image":
        isub = p.add_subparsers(dest="action", required=True)
        isub.add_parser("prune")
        isub.add_parser("ls")
    elif verb == "network":
        sub = p.add_subparsers(dest="action", required=True)
        cp = sub.add_parser("create")
        cp.add_argument("--subnet")
        cp.add_argument("--gateway")
        cp.add_argument("--internal", action="store_true")
        cp.add_argument("-d", "--driver", default="bridge", choices=["bridge"])
        cp.add_argument("name")
        sub.add_parser("ls")
        for action in ("rm", "inspect"):
            sub.add_parser(action).add_argument("names", nargs="+")
        for action in ("connect", "disconnect"):
            ap = sub.add_parser(action)
            if action == "connect":
                ap.add_argument("--alias", action="append", default=[])
            ap.add_argument("network")
            ap.add_argument("container")
    return p.parse_args(list(argv))


def needs_terminal(verb: str, argv: Sequence[str]) -> bool:
    """Whether the verb reads this process's own terminal or stdin (the compiled front end
    then hands it to the Python command line instead of the daemon)."""
    if verb not in ("run", "create", "exec", "login"):
        return False
    try:
        a = parse(verb, argv)
    except (UsageError, SystemExit):
        return False  # the daemon reports it like any other usage error
    return bool(getattr(a, "tty", False) or getattr(a, "interactive", False)
                or getattr(a, "password_stdin", False))


def main(verb: str, argv: Sequence[str], host: str | None = None) -> int:
    a = parse(verb, argv, host)
    cl = _client(a)
    if verb == "run":
        return cmd_run(cl, a)
    if verb == "create":
        return cmd_run(cl, a, create_only=True)
    if verb == "ps":
        return _ps(cl, a)
    if verb == "version":
        v = cl.version()
        print(f"Client: llmos {v['Version']}\nServer: llmosd {v['Version']}")
        return 0
    if verb == "info":
        print(json.dumps(cl.info(), indent=2))
        return 0
    if verb == "images":
        print(f"{'REPOSITORY:TAG':<40}{'IMAGE ID':<16}SIZE")
        for img in cl.images.list():
            for tag in img["RepoTags"] or ["<none>"]:
                print(f"{tag:<40}{img['Id'].removeprefix('sha256:')[:12]:<16}{img['Size']}")
        return 0
    if verb == "import":
        r = cl.images.import_rootfs(_abspath(a.file), a.reference)
        print(r["Id"])
        return 0
    if verb in ("pull", "push", "tag", "rmi", "load", "save", "image"):
        return _images(cl, verb, a)
    if verb == "login":
        password = sys.stdin.readline().rstrip("\n") if a.password_stdin else a.password
        if not password:
            raise UsageError("llmos login: give --password or --password-stdin")
        print(cl.transport.call("login", {"registry": a.server, "username": a.username,
                                          "password": password}))
        return 0
    if verb == "events":
        params = {"since": a.since, "until": a.until, "follow": True}
        for ev in cl.transport.stream("events", params):
            attrs = ",".join(f"{k}={v}" for k, v in sorted(ev["Actor"]["Attributes"].items()))
            print(f"{ev['time']:.6f} {ev['Type']} {ev['Action']} {ev['Actor']['ID']} ({attrs})",
                  flush=True)
        return 0
    if verb == "port":
        ports = cl.transport.call("container.port", {"id": a.container})
        for cport, binds in sorted(ports.items()):
            for b in binds:
                print(f"{cport} -> {b['HostIp']}:{b['HostPort']}")
        return 0
    if verb == "network":
        return _network(cl, a)
    if verb == "logs":
        _print_logs(cl.containers.get(a.container), a.follow, a.tail, a.timestamps)
        return 0
    if verb == "exec":
        if not a.command:
            raise UsageError("llmos exec: a command is required")
        if a.tty or a.interactive:
            try:
                r = _exec_start(cl, a)
            except RpcError as e:
                sys.stderr.write(f"llmos: {e}\n")
                return getattr(e, "exit_code", None) or _exit_code_of(str(e))
            from llmos.cli.attach import exec_pipes, exec_terminal

            return exec_terminal(cl, a, r) if a.tty else exec_pipes(cl, r)
        r = cl.transport.call("container.exec", {
            "id": a.container, "cmd": list(a.command), "env": _expand_env(a.env),
            "user": a.user, "workdir": a.workdir})
        sys.stdout.buffer.write(bytes(r["Stdout"]))
        sys.stderr.buffer.write(bytes(r["Stderr"]))
        return int(r["ExitCode"])
    if verb == "stats":
        from llmos.cli.stats import stats

        return stats(cl, a)
    # Verbs over one or more containers, printing each name as Docker does.
    rc = 0
    docs = []
    for ref in a.containers:
        try:
            c = cl.containers.get(ref)
            if verb == "start":
                c.start()
            elif verb == "stop":
                c.stop(a.time)
            elif verb == "restart":
                c.restart(a.time)
            elif verb == "kill":
                c.kill(a.signal)
            elif verb == "rm":
                c.remove(force=a.force)
            elif verb == "pause":
                c.pause()
            elif verb == "unpause":
                c.unpause()
            elif verb == "wait":
                print(c.wait()["StatusCode"])
                continue
            elif verb == "inspect":
                docs.append(c.attrs)
                continue
            print(ref)
        except RpcError as e:
            sys.stderr.write(f"Error: {e}\n")
            rc = 1
    if verb == "inspect":
        print(json.dumps(docs, indent=4))
    return rc


def run_verb(verb: str, argv: Sequence[str], host: str | None = None) -> int:
    try:
        return main(verb, argv, host)
    except (UsageError, ConfigError) as e:
        sys.stderr.write(f"llmos: {e}\nSee 'llmos {verb} --help'.\n")
        return 125
    except RpcError as e:
        sys.stderr.write(f"llmos: {e}\n")
        return 125
    except BrokenPipeError:
        # `llmos logs x | head`: the reader left; that is not an error.
        from llmos.cli import session

        if session.current() is None:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ConnectionError as e:
        sys.stderr.write(f"llmos: {e}\n")
        return 125
