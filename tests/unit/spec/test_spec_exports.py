"""llmos.spec's __all__ and its public names stay in sync (as httpx tests its exports)."""

from __future__ import annotations

import llmos.spec


def test_all_names_exist_and_every_public_name_is_listed() -> None:
    public = {
        name
        for name, value in vars(llmos.spec).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "llmos.spec").startswith("llmos.spec")
        and not isinstance(value, type(llmos.spec))
    }
    assert set(llmos.spec.__all__) == public
    assert len(llmos.spec.__all__) == len(set(llmos.spec.__all__))


def test_public_classes_and_functions_have_docstrings() -> None:
    for name in llmos.spec.__all__:
        value = getattr(llmos.spec, name)
        if callable(value):
            assert value.__doc__, name
