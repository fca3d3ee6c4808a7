"""A read-only merged view of an image's layer directories, without mounting anything.

Why: COPY, WORKDIR and USER need to look into the image being built (does `/app` exist, where
does `/bin` really point on a merged-/usr Debian, which uid is `www-data`), and the builder
must not mount overlays on the host for that. This resolves paths the way overlayfs merges
layers: the topmost layer with an entry decides; a 0/0 character device hides lower entries
(whiteout); a `trusted.overlay.opaque=y` directory hides the lower directory's contents; a
non-directory hides everything below it. Symlinks are resolved inside the view (absolute
targets from its root, `..` stopping there), like openat2's RESOLVE_IN_ROOT.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ExecUser", "LowerView", "parse_group", "parse_passwd", "resolve_user"]

_OPAQUE = "trusted.overlay.opaque"
_MAX_LINKS = 40


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, _OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


class LowerView:
    """The merged view of `layers` (directories, topmost first)."""

    def __init__(self, layers: Sequence[str | os.PathLike[str]]) -> None:
        self.layers = [Path(p) for p in layers]

    def _lookup(self, comps: Sequence[str]) -> list[Path]:
        """The layer paths that make up `comps` (no symlinks before the last component),
        topmost first: several only for a merged directory; [] if the path does not exist.
        Only lstat is used: a symlink in a layer must never be followed on the host.
        """
        current = list(self.layers)
        for i, name in enumerate(comps):
            found: list[Path] = []
            for base in current:
                p = base / name
                try:
                    st = p.lstat()
                except OSError:
                    continue
                if _is_whiteout(st):
                    break
                if not stat.S_ISDIR(st.st_mode):
                    if not found:
                        found.append(p)
                    break
                found.append(p)
                if _is_opaque(p):
                    break
            if not found:
                return []
            if not stat.S_ISDIR(found[0].lstat().st_mode):
                return found[:1] if i == len(comps) - 1 else []
            current = found
        return current

    def resolve(self, path: str, *, follow: bool = True) -> str:
        """The path with every symlink resolved inside the view (the last component only if
        `follow`); the result need not exist.
        """
        todo = [c for c in path.split("/") if c not in ("", ".")]
        done: list[str] = []
        links = 0
        while todo:
            name = todo.pop(0)
            if name == "..":
                if done:
                    done.pop()
                continue
            parts = self._lookup([*done, name])
            if parts and stat.S_ISLNK(parts[0].lstat().st_mode) and (todo or follow):
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(f"too many levels of symbolic links resolving {path}")
                target = os.readlink(parts[0])
                if target.startswith("/"):
                    done = []
                todo = [c for c in target.split("/") if c not in ("", ".")] + todo
                continue
            done.append(name)
        return "/" + "/".join(done)

    def find(self, path: str, *, follow: bool = True) -> Path | None:
        """The layer file that is `path` in the view (topmost for a directory), or None."""
        parts = self._lookup([c for c in self.resolve(path, follow=follow).split("/") if c])
        return parts[0] if parts else None

    def lstat(self, path: str) -> os.stat_result | None:
        """Metadata of `path` without following a final symlink (None: absent)."""
        p = self.find(path, follow=False)
        return None if p is None else p.lstat()

    def stat(self, path: str) -> os.stat_result | None:
        """Metadata of `path`, following symlinks inside the view (None: absent)."""
        p = self.find(path)
        return None if p is None else p.lstat()

    def exists(self, path: str) -> bool:
        """True if `path` (symlinks followed) exists in the view."""
        return self.stat(path) is not None

    def is_dir(self, path: str) -> bool:
        """True if `path` (symlinks followed) is a directory in the view."""
        st = self.stat(path)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def read_bytes(self, path: str, limit: int = 16 << 20) -> bytes | None:
        """A regular file's content (None if absent or not a regular file)."""
        p = self.find(path)
        if p is None or not stat.S_ISREG(p.lstat().st_mode):
            return None
        with open(p, "rb") as f:
            return f.read(limit)

    def listdir(self, path: str) -> list[str]:
        """Names in a directory of the view (merged, whiteouts applied), sorted."""
        if not self.layers:
            return []
        parts = self._lookup([c for c in self.resolve(path).split("/") if c])
        names: dict[str, bool] = {}
        for d in parts:
            if not stat.S_ISDIR(d.lstat().st_mode):
                continue
            for entry in os.scandir(d):
                if entry.name in names:
                    continue
                st = entry.stat(follow_symlinks=False)
                names[entry.name] = not _is_whiteout(st)
        return sorted(n for n, visible in names.items() if visible)


# -- users ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExecUser:
    """The identity a process runs as."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()


def parse_passwd(text: str) -> list[tuple[str, int, int]]:
    """`/etc/passwd` -> (name, uid, gid) for each well-formed line."""
    out = []
    for line in text.splitlines():
        f = line.split(":")
        if len(f) >= 4 and f[2].isdigit() and f[3].isdigit():
            out.append((f[0], int(f[2]), int(f[3])))
    return out


def parse_group(text: str) -> list[tuple[str, int, list[str]]]:
    """`/etc/group` -> (name, gid, members) for each well-formed line."""
    out = []
    for line in text.splitlines():
        f = line.split(":")
        if len(f) >= 3 and f[2].isdigit():
            members = [m for m in (f[3].split(",") if len(f) > 3 else []) if m]
            out.append((f[0], int(f[2]), members))
    return out


def resolve_user(spec: str, passwd: str | None, group: str | None) -> ExecUser:
    """USER `name|uid[:group|gid]` -> ids, the way runc/Docker resolve it: a name must be in
    passwd; a bare uid not in passwd gets gid 0; without a group the user's primary group is
    used, plus the groups that list the user (supplementary groups).
    """
    user, _, grp = (spec or "0").partition(":")
    users = parse_passwd(passwd or "")
    groups = parse_group(group or "")
    name: str | None = None
    if user.isdigit():
        uid, gid = int(user), 0
        for n, u, g in users:
            if u == uid:
                name, gid = n, g
                break
    else:
        for n, u, g in users:
            if n == user:
                name, uid, gid = n, u, g
                break
        else:
            raise LookupError(f"unable to find user {user}: no matching entries in passwd file")
    extra: tuple[int, ...] = ()
    if grp:
        if grp.isdigit():
            gid = int(grp)
        else:
            for n, g, _members in groups:
                if n == grp:
                    gid = g
                    break
            else:
                raise LookupError(f"unable to find group {grp}: no matching entries in group "
                                  "file")
    elif name is not None:
        extra = tuple(sorted({g for _n, g, members in groups if name in members} - {gid}))
    return ExecUser(uid, gid, extra)
