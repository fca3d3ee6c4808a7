"""The public surface: `llmos.build.__all__` lists exactly the public names it exports."""

from __future__ import annotations

import types

import llmos.build as build


def test_all_matches_public_names() -> None:
    public = {n for n in dir(build) if not n.startswith(("_", "@"))
              and not isinstance(getattr(build, n), types.ModuleType)}
    assert set(build.__all__) == public - {"annotations"}


def test_every_error_is_a_build_error() -> None:
    for name in build.__all__:
        obj = getattr(build, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, build.BuildError), name
