"""The caller's terminal or pipes wired to a process held by an llmos-shim: `run -it`,
`exec -it` and `exec -i`. These run in the caller's own process (the compiled front end hands
such verbs to the Python command line), since they need its terminal.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from llmos.client import Client, RpcError


def attach_terminal(path: str, *, interactive: bool, fallback: Any,
                    on_attached: Callable[[], None] | None = None) -> None:
    """Wire this terminal to the container's pty, held by its shim at `path`.

    Raw mode on our side (the container's line discipline does the editing), our window size
    sent now and on every SIGWINCH. If the container already ended, its log is printed.
    `on_attached` runs once the shim has us (exec -t lets its process start then).
    """
    import select
    import socket
    import termios
    import tty

    def connect() -> socket.socket:
        # Through the directory's fd: the full path may not fit in sun_path's 108 bytes.
        dfd = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(f"/proc/self/fd/{dfd}/{os.path.basename(path)}")
        except OSError:
            s.close()
            raise
        finally:
            os.close(dfd)
        return s

    try:
        sock = connect()
    except OSError:
        fallback()
        return

    def resize(*_: Any) -> None:
        try:
            size = os.get_terminal_size(sys.stdout.fileno())
            with connect() as s:
                s.sendall(f"resize {size.lines} {size.columns}\n".encode())
        except OSError:
            pass

    sock.sendall(b"attach\n")
    stdin = sys.stdin.fileno()
    is_tty = os.isatty(stdin)
    saved = termios.tcgetattr(stdin) if is_tty and interactive else None
    old_winch = signal.signal(signal.SIGWINCH, resize)
    try:
        if saved is not None:
            tty.setraw(stdin)
        resize()
        if on_attached is not None:
            on_attached()
        watch = [sock] + ([stdin] if interactive else [])
        while True:
            ready, _, _ = select.select(watch, [], [])
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    break
                os.write(sys.stdout.fileno(), data)
            if stdin in ready:
                data = os.read(stdin, 4096)
                if not data:
                    watch.remove(stdin)
                    continue
                sock.sendall(data)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, old_winch)
        sock.close()


def exec_terminal(cl: Client, a: argparse.Namespace, r: dict[str, Any]) -> int:
    """Attach to the exec's pty as `run -it` does to a container's; then its exit code."""
    started = False

    def start() -> None:
        nonlocal started
        if not started:
            started = True
            cl.transport.call("container.exec_resume", {"id": r["Id"]})

    def no_socket() -> None:
        # Its shim is gone (the container stopped meanwhile, say): exec_wait tells how.
        try:
            start()
        except RpcError:
            pass

    attach_terminal(r["AttachSocket"], interactive=a.interactive, fallback=no_socket,
                    on_attached=start)
    return int(cl.transport.call("container.exec_wait", {"id": r["Id"]})["ExitCode"])


def exec_pipes(cl: Client, r: dict[str, Any]) -> int:
    """`exec -i`: our stdin into the exec's stdin FIFO, its stdout and stderr FIFOs to ours,
    until both of those end; then its exit code.

    Opened without blocking: a process gone meanwhile must not hang us. Our stdin is only
    read once what it gave before was taken, so a command that does not read (yet) cannot
    stall its output behind ours.
    """
    import select

    flags = os.O_NONBLOCK | os.O_CLOEXEC
    try:
        to_proc = os.open(r["Stdio"][0], os.O_WRONLY | flags)
    except OSError:
        to_proc = -1  # no reader: it ended already
    outs = {os.open(r["Stdio"][1], os.O_RDONLY | flags): sys.stdout,
            os.open(r["Stdio"][2], os.O_RDONLY | flags): sys.stderr}
    try:
        cl.transport.call("container.exec_resume", {"id": r["Id"]})
        stdin = sys.stdin.fileno()
        pending = b""
        while outs:
            rlist = [*outs, *([stdin] if to_proc >= 0 and not pending else [])]
            ready, writable, _ = select.select(rlist, [to_proc] if pending else [], [])
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if fd == stdin:
                    pending = data
                    if not data:  # our EOF is its EOF
                        os.close(to_proc)
                        to_proc = -1
                elif data:
                    outs[fd].buffer.write(data)
                    outs[fd].flush()
                else:
                    os.close(fd)
                    del outs[fd]
            if writable:
                try:
                    pending = pending[os.write(to_proc, pending):]
                except BrokenPipeError:  # it closed its stdin: the rest of ours is unread
                    pending = b""
                    os.close(to_proc)
                    to_proc = -1
    finally:
        for fd in [*outs, to_proc]:
            if fd >= 0:
                os.close(fd)
    return int(cl.transport.call("container.exec_wait", {"id": r["Id"]})["ExitCode"])
