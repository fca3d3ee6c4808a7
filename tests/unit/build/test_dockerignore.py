""".dockerignore with Docker's rules (moby/patternmatcher)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos.build import Matcher, parse_dockerignore
from llmos.build.dockerignore import read_dockerignore


def matcher(*lines: str) -> Matcher:
    return Matcher.from_lines(lines)


@pytest.mark.parametrize(("patterns", "path", "excluded"), [
    (["*.md"], "a.md", True),
    (["*.md"], "sub/a.md", False),  # * never crosses /
    (["**/*.md"], "sub/deep/a.md", True),
    (["**/*.md"], "a.md", True),  # ** matches zero directories
    (["docs"], "docs/x/y", True),  # a matched directory excludes what is below
    (["/docs"], "docs/a", True),  # a leading / is the context root
    (["./docs/"], "docs/a", True),
    (["a/**"], "a/b/c", True),
    (["a/**"], "ab", False),
    (["a?c"], "abc", True),
    (["a?c"], "a/c", False),
    (["[a-c].txt"], "b.txt", True),
    (["[!a-c].txt"], "b.txt", False),
    (["[!a-c].txt"], "d.txt", True),
    (["\\*x"], "*x", True),
    (["\\*x"], "ax", False),
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    (["!README.md", "*.md"], "README.md", True),  # the last match wins
    (["docs", "!docs/keep"], "docs/keep/file", False),
    (["# a comment", "", "  tmp  "], "tmp/x", True),
    (["x/../y"], "y", True),
])
def test_rules(patterns: list[str], path: str, excluded: bool) -> None:
    assert matcher(*patterns).excluded(path) is excluded


def test_may_include_below_only_with_matching_exceptions() -> None:
    m = matcher("docs", "!docs/keep/**")
    assert m.may_include_below("docs")
    assert not matcher("docs").may_include_below("docs")
    assert not matcher("docs", "!other").may_include_below("docs")


def test_parse_marks_exclusions() -> None:
    pats = parse_dockerignore("a\n!b\n#c\n")
    assert [(p.pattern, p.exclusion) for p in pats] == [("a", False), ("b", True)]


def test_read_missing_file(tmp_path: Path) -> None:
    assert read_dockerignore(tmp_path) == []
    (tmp_path / ".dockerignore").write_text("x\n")
    assert [p.pattern for p in read_dockerignore(tmp_path)] == ["x"]
