"""cgroup v2 driver: one file per controller, :class:`V2Manager` ties them together."""

from __future__ import annotations

from .manager import DEFAULT_CONTROLLERS, V2Manager

__all__ = ["DEFAULT_CONTROLLERS", "V2Manager"]
