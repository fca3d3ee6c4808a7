"""The one seam between the drivers and the kernel's cgroup filesystems.

Drivers never call ``open`` or ``os.mkdir`` themselves: they go through a :class:`CgroupFs`.
The real one talks to cgroupfs; the unit tests pass a subclass that emulates the kernel in a
temporary directory (control files appear on mkdir, ``cgroup.subtree_control`` accumulates,
rmdir refuses populated cgroups) and records every write, so the exact write sequence of each
driver is checked without root. Every failure becomes a :class:`CgroupError` naming the file,
the value and the errno.
"""

from __future__ import annotations

import os

from .errors import CgroupError, os_error

__all__ = ["CgroupFs", "parse_flat_keyed", "parse_int", "read_int", "read_keyed"]


class CgroupFs:
    """Real cgroupfs access: each write is one ``write(2)`` on an existing control file."""

    def read(self, path: str) -> str:
        """Read a whole control file."""
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                return f.read()
        except OSError as exc:
            raise os_error("read", path, exc) from exc

    def write(self, path: str, value: str) -> None:
        """Write ``value`` in a single syscall, as the kernel parses each write on its own.

        No O_CREAT: a missing control file means a missing controller or knob and must fail
        (ENOENT) instead of leaving a stray regular file behind.
        """
        data = value.encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        except OSError as exc:
            raise os_error("write", path, exc, value) from exc
        try:
            os.write(fd, data)
        except OSError as exc:
            raise os_error("write", path, exc, value) from exc
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        """Whether a control file or cgroup directory exists (used to probe optional knobs)."""
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        """Whether ``path`` is a cgroup directory (child cgroups are directories)."""
        return os.path.isdir(path)

    def mkdir(self, path: str) -> bool:
        """Create one cgroup; return False when it already existed (create is idempotent)."""
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            return False
        except OSError as exc:
            raise os_error("mkdir", path, exc) from exc
        return True

    def rmdir(self, path: str) -> None:
        """Remove one empty cgroup (cgroupfs removes its control files with it)."""
        try:
            os.rmdir(path)
        except OSError as exc:
            raise os_error("rmdir", path, exc) from exc

    def subdirs(self, path: str) -> list[str]:
        """Names of child cgroups, from directory entry types (no stat per control file)."""
        try:
            with os.scandir(path) as it:
                return sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise os_error("list", path, exc) from exc

    def listdir(self, path: str) -> list[str]:
        """Names in a cgroup directory; child cgroups are the directories among them."""
        try:
            return sorted(os.listdir(path))
        except OSError as exc:
            raise os_error("list", path, exc) from exc


def parse_int(text: str, path: str) -> int | None:
    """Parse a single-value file; ``max`` (v2 unlimited) becomes None."""
    value = text.strip()
    if value == "max":
        return None
    try:
        return int(value)
    except ValueError:
        raise CgroupError(f"read {path}: expected an integer, got {value!r}", path=path) from None


def read_int(fs: CgroupFs, path: str) -> int | None:
    """Read a single-integer control file (``max`` -> None)."""
    return parse_int(fs.read(path), path)


def parse_flat_keyed(text: str) -> dict[str, int]:
    """Parse ``key value`` lines (memory.stat, cpu.stat, memory.events, memory.oom_control)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def read_keyed(fs: CgroupFs, path: str) -> dict[str, int]:
    """Read a flat-keyed control file."""
    return parse_flat_keyed(fs.read(path))
