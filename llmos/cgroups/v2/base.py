"""The shape every v2 controller file shares: needed -> apply -> stats on one directory."""

from __future__ import annotations

import os
from typing import ClassVar

from ..fs import CgroupFs
from ..resources import Resources, Stats

__all__ = ["V2Controller"]


class V2Controller:
    """One cgroup2 controller; ``name`` is what cgroup.controllers lists.

    ``field`` names the OCI section, so an error about a missing controller says which part of
    the config needed it.
    """

    name: ClassVar[str]
    field: ClassVar[str]

    def needed(self, r: Resources) -> bool:
        """Whether ``r`` asks for anything this controller enforces."""
        return False

    def apply(self, fs: CgroupFs, path: str, r: Resources) -> None:
        """Write the knobs ``r`` sets into the cgroup directory ``path``."""

    def stats(self, fs: CgroupFs, path: str, out: Stats) -> None:
        """Fill the fields of ``out`` this controller reports."""

    @staticmethod
    def file(path: str, name: str) -> str:
        """A control file inside a cgroup directory."""
        return os.path.join(path, name)
