"""v2 ``linux.resources.unified``: raw ``file: value`` writes, applied last so they win.

Keys are file names in the container's cgroup; files that change membership or structure
(cgroup.procs, cgroup.subtree_control, ...) are refused because they are not resources.
"""

from __future__ import annotations

import os

from ..errors import UnsupportedResource
from ..fs import CgroupFs
from ..resources import Resources

__all__ = ["REFUSED", "apply", "controllers_for"]

REFUSED = frozenset(
    {
        "cgroup.procs",
        "cgroup.threads",
        "cgroup.subtree_control",
        "cgroup.kill",
        "cgroup.type",
        "cgroup.freeze",
    }
)


def controllers_for(r: Resources) -> set[str]:
    """The controllers the unified keys belong to (``memory.high`` -> memory)."""
    return {key.split(".", 1)[0] for key in r.unified} - {"cgroup"}


def apply(fs: CgroupFs, path: str, r: Resources) -> None:
    """Write every unified key; a missing file is an error naming the key."""
    for key, value in r.unified.items():
        field = f"linux.resources.unified.{key}"
        if key in REFUSED:
            raise UnsupportedResource(f"{field}: not a resource file (llmos manages it)")
        target = os.path.join(path, key)
        if not fs.exists(target):
            raise UnsupportedResource(f"{field}: {target} does not exist")
        fs.write(target, value)
