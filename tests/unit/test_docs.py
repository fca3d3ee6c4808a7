"""docs/cli.md and docs/python-api.md are generated from the code and must match it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _gen() -> object:
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cli_reference_matches_code() -> None:
    gen = _gen()
    assert (REPO / "docs" / "cli.md").read_text() == gen.cli_md() + "\n", (  # type: ignore[attr-defined]
        "docs/cli.md is stale: run python3 scripts/gen_docs.py")


def test_python_api_page_matches_code() -> None:
    gen = _gen()
    assert (REPO / "docs" / "python-api.md").read_text() == gen.api_md(), (  # type: ignore[attr-defined]
        "docs/python-api.md is stale: run python3 scripts/gen_docs.py")
