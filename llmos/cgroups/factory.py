"""The one entry point: probe the host (or a test root) and return the matching driver."""

from __future__ import annotations

from typing import get_args

from .errors import CgroupError
from .fs import CgroupFs
from .manager import CgroupManager
from .mounts import Mode, discover
from .v1 import V1Manager
from .v2 import V2Manager
from .v2.devices import DeviceLoader

__all__ = ["open_cgroup"]


def open_cgroup(
    name: str,
    root: str = "/sys/fs/cgroup",
    mode: str | None = None,
    *,
    fs: CgroupFs | None = None,
    mountinfo: str = "/proc/self/mountinfo",
    device_loader: DeviceLoader | None = None,
) -> CgroupManager:
    """Return the manager for cgroup ``name`` (``llmos/<id>``) under ``root``.

    ``mode`` overrides the probe (``v1`` ignores a cgroup2 mount on a hybrid host). Nothing is
    created until :meth:`CgroupManager.create`; tests point ``root`` (and ``mountinfo``) at a
    temporary directory and pass a recording ``fs``.
    """
    layout = discover(root, mountinfo)
    chosen = mode or layout.mode
    if chosen not in get_args(Mode):
        raise CgroupError(f"cgroup mode {chosen!r}: must be one of v2, hybrid, v1")
    if chosen == "v2":
        if layout.unified is None:
            raise CgroupError(f"cgroup mode v2: no cgroup2 hierarchy under {layout.root}")
        return V2Manager(name, layout.unified, fs, device_loader=device_loader)
    if not layout.v1:
        raise CgroupError(f"cgroup mode {chosen}: no cgroup v1 hierarchy under {layout.root}")
    return V1Manager(name, layout, fs, use_unified=chosen == "hybrid")
