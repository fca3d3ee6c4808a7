""".dockerignore: which context paths a build may not see, with Docker's pattern rules.

Why not `fnmatch`: Docker's rules (moby/patternmatcher) differ. Patterns are Go
`filepath.Match` patterns over `/`-separated paths relative to the context (`*` and `?` never
match `/`), cleaned first (a leading `/` and `./` mean the context root); `**` matches any
number of directories, zero included; a pattern also excludes everything below a directory
it matches; `!pattern` re-includes; and the last matching pattern wins.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["IgnorePattern", "Matcher", "parse_dockerignore", "read_dockerignore"]


@dataclass(frozen=True)
class IgnorePattern:
    """One cleaned pattern; `exclusion` is True for a `!` line (it re-includes)."""

    pattern: str
    exclusion: bool
    regex: re.Pattern[str]


def _compile(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(.*/)?")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            i += 1
            if i < n:
                out.append(re.escape(pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 2 if i + 1 < n and pattern[i + 1] in "!^" else i + 1)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return re.compile("".join(out))


def _clean(pattern: str) -> str:
    cleaned = posixpath.normpath(pattern.replace(os.sep, "/"))
    cleaned = cleaned.lstrip("/")
    return "" if cleaned in (".", "") else cleaned


def parse_dockerignore(text: str) -> list[IgnorePattern]:
    """The patterns of a .dockerignore file's text, in order."""
    patterns: list[IgnorePattern] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        pattern = _clean(line)
        if not pattern:
            continue
        patterns.append(IgnorePattern(pattern, exclusion, _compile(pattern)))
    return patterns


def read_dockerignore(context: str | os.PathLike[str]) -> list[IgnorePattern]:
    """The patterns of `<context>/.dockerignore` (none if there is no such file)."""
    path = Path(context) / ".dockerignore"
    try:
        return parse_dockerignore(path.read_text())
    except FileNotFoundError:
        return []


class Matcher:
    """Decides whether a context path is excluded."""

    def __init__(self, patterns: Sequence[IgnorePattern]) -> None:
        self.patterns = list(patterns)
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> Matcher:
        """A matcher from .dockerignore lines."""
        return cls(parse_dockerignore("\n".join(lines)))

    def excluded(self, path: str) -> bool:
        """True if `path` (relative to the context, `/`-separated) is excluded: the last
        pattern matching it or one of its parent directories decides.
        """
        path = _clean(path)
        if not path:
            return False
        parents = path.split("/")[:-1]
        result = False
        for p in self.patterns:
            match = bool(p.regex.match(path))
            if not match:
                for i in range(len(parents)):
                    if p.regex.match("/".join(parents[: i + 1])):
                        match = True
                        break
            if match:
                result = not p.exclusion
        return result

    def may_include_below(self, directory: str) -> bool:
        """Whether an excluded directory can still hold re-included paths (so a walk must
        descend into it): only if some `!` pattern could match below it.
        """
        if not self.has_exclusions:
            return False
        d = _clean(directory)
        for p in self.patterns:
            if p.exclusion:
                prefix = _literal_prefix(p.pattern)
                if not prefix or prefix.startswith(d + "/") or (d + "/").startswith(prefix):
                    return True
        return False


def _literal_prefix(pattern: str) -> str:
    m = re.search(r"[*?\[\\]", pattern)
    return pattern if m is None else pattern[: m.start()]
