"""examples/python runs as our users would run it: pytest with the llmos plugin, no daemon."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_python_examples_pass(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         "--llmos-embedded", str(tmp_path / "llmos"), str(REPO / "examples" / "python")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "3 passed" in r.stdout
