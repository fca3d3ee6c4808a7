"""The daemon's socket file, and who is on the other end of a connection to it.

Creating the socket: bound inside a fresh 0700 directory next to its final path, given its
mode and group, put in the listening state, then renamed into place. So the file never exists
at its path with a wider mode (no umask games, which are process-wide and racy in a threaded
daemon), a stale file from a killed daemon is replaced in one step, and clients never meet a
socket that is not yet listening. A live daemon already on the path is detected by connecting
to it; two daemons starting at once are serialised by a lock on the parent directory.

Peers: SO_PEERCRED gives the pid, uid and gid the kernel recorded at connect time.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import socket
import stat
import struct
import tempfile
from dataclasses import dataclass

from llmos.daemon.errors import SocketInUse

__all__ = ["Peer", "groups_of", "listen_unix", "peer_allowed", "peer_of", "unlink_if_same"]

log = logging.getLogger("llmos.daemon.rpc")

_SUN_PATH_MAX = 107  # sockaddr_un.sun_path holds 108 bytes with the terminating NUL


@dataclass(frozen=True)
class Peer:
    """Who is on the other end, as the kernel saw it at connect time (SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int


def peer_of(sock: socket.socket) -> Peer:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", creds)
    return Peer(pid, uid, gid)


def peer_allowed(peer: Peer, gid: int | None) -> bool:
    """Root, the daemon's own user (a daemon run unprivileged in tests), or, when the socket
    has a group, a member of it."""
    if peer.uid in (0, os.geteuid()):
        return True
    if gid is None:
        return False
    return peer.gid == gid or gid in groups_of(peer)


def groups_of(peer: Peer) -> set[int]:
    """The peer's supplementary groups: from /proc (what the kernel used for the socket file's
    mode check), else from the group database for its uid."""
    try:
        with open(f"/proc/{peer.pid}/status") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:]}
    except (OSError, ValueError):
        pass
    try:
        return set(os.getgrouplist(pwd.getpwuid(peer.uid).pw_name, peer.gid))
    except (KeyError, OSError):
        return set()


def listen_unix(
    path: str, mode: int, gid: int | None, backlog: int
) -> tuple[socket.socket, tuple[int, int]]:
    """A listening socket at `path` with `mode` and group `gid`, and the file's (dev, ino).

    Raises SocketInUse if a daemon answers at `path` or `path` is something else than a socket.
    """
    parent = os.path.dirname(path)
    make_dirs(parent)
    dfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # Two daemons starting at once: the second waits here, then finds the first live.
        fcntl.flock(dfd, fcntl.LOCK_EX)
        refuse_live_daemon(path)
        tmpdir = tempfile.mkdtemp(prefix=".llmosd-", dir=parent)  # 0700: nobody else gets in
        try:
            return _bind_in(tmpdir, path, mode, gid, backlog)
        finally:
            os.rmdir(tmpdir)
    finally:
        os.close(dfd)


def _bind_in(
    tmpdir: str, path: str, mode: int, gid: int | None, backlog: int
) -> tuple[socket.socket, tuple[int, int]]:
    tmp = os.path.join(tmpdir, "s")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        tfd = os.open(tmpdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            # bind() takes at most 107 bytes; the fd path is short whatever the directory is.
            sock.bind(f"/proc/self/fd/{tfd}/s" if len(tmp.encode()) > _SUN_PATH_MAX else tmp)
        finally:
            os.close(tfd)
        os.chmod(tmp, mode)
        if gid is not None:
            os.chown(tmp, -1, gid)
        sock.listen(backlog)
        os.rename(tmp, path)  # atomically replaces a stale socket file
        st = os.stat(path)
    except BaseException:
        sock.close()
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return sock, (st.st_dev, st.st_ino)


def refuse_live_daemon(path: str) -> None:
    """Return if `path` is free or a stale socket; raise SocketInUse if a daemon answers."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise SocketInUse(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    probe.settimeout(2.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("rpc: replacing stale socket path=%s", path)
        return
    except OSError as e:
        raise SocketInUse(
            f"{path}: cannot tell whether a daemon listens there: {e.strerror or e}"
        ) from None
    finally:
        probe.close()
    raise SocketInUse(
        f"llmosd is already running at {path} (a connection to it succeeded); "
        "stop it before starting another"
    )


def unlink_if_same(path: str, ident: tuple[int, int] | None) -> None:
    """Remove the socket file unless another daemon has replaced it since we bound."""
    try:
        st = os.stat(path)
        if (st.st_dev, st.st_ino) == ident:
            os.unlink(path)
    except FileNotFoundError:
        pass


def make_dirs(path: str) -> None:
    """Create missing directories 0755 whatever the umask; existing ones are left alone."""
    missing = []
    while path and not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o755)
        except FileExistsError:
            continue
        os.chmod(d, 0o755)
