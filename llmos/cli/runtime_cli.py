"""`llmos runtime`: runc's command line over llmos.runtime.Runtime.

Errors print one line, `llmos: <message>`, and exit 1, as runc does; `run` exits with the
container's own status.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from llmos.runtime import Runtime, RuntimeError_

DEFAULT_ROOT = "/run/llmos/runtime"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmos runtime", description="OCI runtime (runc-compatible)")
    p.add_argument("--root", default=DEFAULT_ROOT, help="state directory")
    p.add_argument("--log", help="log file (accepted for runc compatibility)")
    p.add_argument("--log-format", default="text", help="accepted for runc compatibility")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true", help="not supported")
    sub = p.add_subparsers(dest="verb", required=True)

    s = sub.add_parser("spec", help="write a default config.json")
    s.add_argument("-b", "--bundle", default=".")
    s.add_argument("--rootless", action="store_true")

    for name in ("create", "run"):
        c = sub.add_parser(name)
        c.add_argument("-b", "--bundle", default=".")
        c.add_argument("--pid-file")
        c.add_argument("--console-socket")
        c.add_argument("--preserve-fds", type=int, default=0)
        c.add_argument("--no-pivot", action="store_true")
        c.add_argument("--no-new-keyring", action="store_true")
        if name == "run":
            c.add_argument("-d", "--detach", action="store_true")
        c.add_argument("id")

    for name in ("start", "state", "pause", "resume", "ps"):
        c = sub.add_parser(name)
        c.add_argument("id")
        if name == "ps":
            c.add_argument("--format", "-f", default="table", choices=["table", "json"])

    k = sub.add_parser("kill")
    k.add_argument("-a", "--all", action="store_true")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="TERM")

    d = sub.add_parser("delete")
    d.add_argument("-f", "--force", action="store_true")
    d.add_argument("id")

    ls = sub.add_parser("list")
    ls.add_argument("-q", "--quiet", action="store_true")
    ls.add_argument("-f", "--format", default="table", choices=["table", "json"])

    e = sub.add_parser("exec")
    e.add_argument("-p", "--process", help="OCI process.json")
    e.add_argument("-d", "--detach", action="store_true")
    e.add_argument("--pid-file")
    e.add_argument("-t", "--tty", action="store_true")
    e.add_argument("--cwd")
    e.add_argument("-e", "--env", action="append", default=[])
    e.add_argument("-u", "--user")
    e.add_argument("id")
    e.add_argument("command", nargs=argparse.REMAINDER)
    return p


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    try:
        return _dispatch(args)
    except RuntimeError_ as e:
        sys.stderr.write(f"llmos: {e}\n")
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    if args.systemd_cgroup:
        raise RuntimeError_("--systemd-cgroup: llmos drives cgroupfs directly")
    if args.verb == "spec":
        from llmos.spec import default_spec

        path = os.path.join(args.bundle, "config.json")
        if os.path.exists(path):
            raise RuntimeError_(f"{path} already exists; remove it first")
        spec = default_spec(["sh"], terminal=True, rootless=args.rootless)
        with open(path, "w") as f:
            json.dump(spec.to_dict(), f, indent=2)
        return 0
    rt = Runtime(args.root)
    verb = args.verb
    if verb == "create":
        rt.create(
            args.id,
            args.bundle,
            pid_file=args.pid_file,
            console_socket=args.console_socket,
            preserve_fds=args.preserve_fds,
        )
    elif verb == "run":
        return rt.run(
            args.id,
            args.bundle,
            detach=args.detach,
            pid_file=args.pid_file,
            console_socket=args.console_socket,
            preserve_fds=args.preserve_fds,
        )
    elif verb == "start":
        rt.start(args.id)
    elif verb == "state":
        print(json.dumps(rt.state(args.id).oci(), indent=2))
    elif verb == "kill":
        rt.kill(args.id, args.signal, all=args.all)
    elif verb == "delete":
        rt.delete(args.id, force=args.force)
    elif verb == "pause":
        rt.pause(args.id)
    elif verb == "resume":
        rt.resume(args.id)
    elif verb == "ps":
        return _ps(rt, args)
    elif verb == "list":
        return _list(rt, args)
    elif verb == "exec":
        return _exec(rt, args)
    return 0


def _ps(rt: Runtime, args: argparse.Namespace) -> int:
    from llmos.cgroups import open_cgroup
    from llmos.runtime.state import StateDir

    state = StateDir(rt.root, args.id).load()
    pids = open_cgroup(state.cgroup, root=state.cgroup_root).pids()
    if args.format == "json":
        print(json.dumps(pids))
    else:
        for pid in pids:
            print(pid)
    return 0


def _list(rt: Runtime, args: argparse.Namespace) -> int:
    states = rt.list()
    if args.quiet:
        for s in states:
            print(s.id)
    elif args.format == "json":
        print(json.dumps([s.oci() for s in states]))
    else:
        print(f"{'ID':<24}{'PID':<10}{'STATUS':<10}BUNDLE")
        for s in states:
            print(f"{s.id:<24}{s.pid:<10}{s.status.value:<10}{s.bundle}")
    return 0


def _exec(rt: Runtime, args: argparse.Namespace) -> int:
    process: dict[str, Any] = {}
    if args.process:
        with open(args.process) as f:
            process = json.load(f)
    else:
        if not args.command:
            raise RuntimeError_("exec: give a command or --process")
        process["args"] = list(args.command)
    if args.env:
        process["env"] = list(args.env)
    if args.cwd:
        process["cwd"] = args.cwd
    if args.user:
        uid, _, gid = args.user.partition(":")
        process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if args.tty:
        raise RuntimeError_("exec --tty: not supported yet; use the engine's `llmos exec -it`")
    result = rt.exec(args.id, process, detach=args.detach)
    if args.detach and args.pid_file:
        with open(args.pid_file, "w") as f:
            f.write(str(result))
        return 0
    return 0 if args.detach else result
