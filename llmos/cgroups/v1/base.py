"""The shape every v1 controller file shares: needed -> apply -> stats on one directory."""

from __future__ import annotations

import os
from typing import ClassVar

from ..fs import CgroupFs
from ..resources import Resources, Stats

__all__ = ["V1Controller"]


class V1Controller:
    """One v1 controller: which hierarchy it lives in and how it writes and reads its files.

    The manager finds the hierarchy directory for ``name`` and calls ``apply`` only when
    ``needed`` says the resources touch this controller, so a host without the controller
    fails only when asked for something it cannot do; ``field`` names the OCI section in that
    error.
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
