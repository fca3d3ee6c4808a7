"""cgroup v1 driver: one file per controller, :class:`V1Manager` ties them together."""

from __future__ import annotations

from .manager import MANAGED, V1Manager

__all__ = ["MANAGED", "V1Manager"]
