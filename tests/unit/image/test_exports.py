"""The public surface: `llmos.image.__all__` lists exactly the public names it exports."""

from __future__ import annotations

import llmos.image as image


def test_all_matches_public_names() -> None:
    # "@py_*": pytest's assertion rewriting of a plugin's distribution (llmos is one).
    public = {n for n in dir(image) if not n.startswith(("_", "@"))}
    modules = {"archive", "content", "digest", "errors", "manifest", "progress", "reference",
               "registry", "snapshot", "sqlitedb", "store", "testing", "transfer", "unpack",
               "annotations"}
    assert set(image.__all__) == public - modules
    assert sorted(image.__all__, key=lambda n: (not n[0].isupper(), n)) == image.__all__


def test_every_error_is_an_image_error() -> None:
    for name in image.__all__:
        obj = getattr(image, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, image.ImageError), name
