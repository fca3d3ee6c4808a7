"""Delegating controllers down the owned chain through cgroup.subtree_control.

A child only gets memory.max and friends once its parent lists ``memory`` in
cgroup.subtree_control. Controllers are enabled one write each: a write naming several fails
as a whole when one is unavailable. Only directories at or below the ``llmos`` parent are ever
written; what the host delegates to ``llmos`` (its parent's subtree_control) is the host's
business and is only read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..errors import CgroupError, UnsupportedResource
from ..fs import CgroupFs

__all__ = ["available", "enable"]


def available(fs: CgroupFs, path: str) -> set[str]:
    """Controllers usable in the cgroup at ``path`` (its cgroup.controllers)."""
    return set(fs.read(os.path.join(path, "cgroup.controllers")).split())


def enable(fs: CgroupFs, path: str, controllers: Iterable[str]) -> dict[str, CgroupError]:
    """Enable each controller for the children of ``path``; return the ones that failed.

    Failures are returned rather than raised because create enables every controller it may
    later need; only a controller that ``apply`` actually needs turns a failure into an error.
    """
    failed: dict[str, CgroupError] = {}
    subtree = os.path.join(path, "cgroup.subtree_control")
    have = available(fs, path)
    enabled = set(fs.read(subtree).split())
    for ctrl in controllers:
        if ctrl in enabled:
            continue
        if ctrl not in have:
            listing = os.path.join(path, "cgroup.controllers")
            failed[ctrl] = UnsupportedResource(
                f"{listing} lacks {ctrl!r}: the host does not delegate it, and llmos does not "
                "reconfigure cgroups it did not create",
                path=listing,
            )
            continue
        try:
            fs.write(subtree, f"+{ctrl}")
        except CgroupError as exc:
            failed[ctrl] = exc
    return failed
