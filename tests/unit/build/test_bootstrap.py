"""Reading the host's apt sources for mmdebstrap (pure parts of bootstrap)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos.build import BootstrapError, bootstrap
from llmos.build.bootstrap import mirror_lines, parse_sources
from llmos.image import ImageStore

DEB822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main contrib

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main

Types: deb
URIs: https://example.org/disabled
Suites: bookworm
Components: main
Enabled: no
"""


def test_deb822_and_one_line_sources() -> None:
    one = "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian trixie main\n" \
          "# deb http://commented/ bookworm main\ndeb-src http://x/ bookworm main\n"
    got = parse_sources(one, [DEB822])
    assert ("http://mirror.example/debian", "trixie", ["main"]) in got
    assert ("http://deb.debian.org/debian", "bookworm", ["main"]) in got
    assert ("http://deb.debian.org/debian-security", "bookworm-security",
            ["main", "contrib"]) in got
    assert not any("commented" in u or "disabled" in u or u == "http://x/" for u, _, _ in got)


def test_mirror_lines_pick_the_suite_family_suite_first() -> None:
    lines = mirror_lines(parse_sources("", [DEB822]), "bookworm")
    assert lines == ["deb http://deb.debian.org/debian bookworm main",
                     "deb http://deb.debian.org/debian bookworm-updates main",
                     "deb http://deb.debian.org/debian-security bookworm-security main contrib"]
    assert mirror_lines(parse_sources("", [DEB822]), "trixie") == []


def test_missing_mmdebstrap_is_a_clear_error(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    with pytest.raises(BootstrapError, match="mmdebstrap is not installed"):
        bootstrap(store, "debian:bookworm", mmdebstrap="no-such-mmdebstrap-binary")


def test_only_debian_images(tmp_path: Path) -> None:
    with pytest.raises(BootstrapError, match="only debian"):
        bootstrap(ImageStore(tmp_path / "store"), "alpine:3")
