"""One exception tree for the cgroup layer, so the runtime catches by meaning.

Every message names what was wrong: the OCI field (``linux.resources.memory.swap``) for bad or
unsupported input, the file, the value and the errno for a kernel refusal.

    CgroupError              base; ``path`` and ``errno`` are set when a file operation failed
     ├── InvalidResources    the OCI linux.resources input is malformed (wrong type, unknown key)
     ├── UnsupportedResource a valid resource this host or driver cannot apply (the runtime spec
     │                       requires an error rather than silently ignoring it)
     └── CgroupBusy          the kernel did not settle in time (EBUSY on rmdir, a freeze that
                             stays FREEZING, processes that survive SIGKILL)
"""

from __future__ import annotations

import errno as _errno
import os

__all__ = ["CgroupBusy", "CgroupError", "InvalidResources", "UnsupportedResource", "os_error"]


class CgroupError(Exception):
    """Base of every error the cgroup layer raises on purpose.

    ``path`` and ``errno`` are kept as attributes because callers branch on them (EBUSY on
    rmdir is retried, ENOENT on a control file means a controller is missing).
    """

    def __init__(self, message: str, *, path: str | None = None, errno: int | None = None):
        super().__init__(message)
        self.path = path
        self.errno = errno


class InvalidResources(CgroupError):
    """The OCI resources input is malformed; retrying the same call cannot succeed."""


class UnsupportedResource(CgroupError):
    """A well-formed resource that cannot be applied here (controller absent, v1-only knob)."""


class CgroupBusy(CgroupError):
    """The kernel did not reach the wanted state within the timeout."""


def os_error(op: str, path: str, exc: OSError, value: str | None = None) -> CgroupError:
    """Turn an OSError into a CgroupError whose message names the file, value and errno."""
    code = exc.errno or 0
    name = _errno.errorcode.get(code, str(code))
    target = f"{value!r} to {path}" if value is not None else path
    cls = CgroupBusy if code == _errno.EBUSY else CgroupError
    return cls(f"{op} {target}: {os.strerror(code)} ({name})", path=path, errno=code)
