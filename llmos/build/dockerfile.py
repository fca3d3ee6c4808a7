"""Dockerfile parser: text in, located instructions out. Pure; nothing is substituted here.

Why substitution waits: which variables exist depends on the stage being built (ENV of the
base image, ARGs given on the command line), so the parser keeps arguments as written and the
builder expands them per instruction. The rules follow Docker's parser
(moby/buildkit `frontend/dockerfile/parser`):

- Parser directives (`# escape=\\``, `# syntax=...`) only at the very top, before any comment,
  blank line or instruction; a repeated directive is an error.
- A line whose first non-blank character is `#` is a comment, also inside a continuation.
- The escape character at the end of a line (trailing blanks allowed) continues the
  instruction on the next line; the continuation keeps its leading blanks; blank lines inside a
  continuation are skipped.
- Arguments that parse as a JSON array of strings are the exec form; anything else is the
  shell form (a single string).
- Heredocs (`RUN <<EOF` ... `EOF`, `<<-` strips leading tabs) are read for RUN, COPY and ADD.
- Errors name the file, the line and the instruction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .errors import DockerfileError
from .shell import split_words

__all__ = ["Dockerfile", "Heredoc", "Instruction", "Stage", "parse", "parse_flags"]

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC = re.compile(r"<<(-?)(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")

# Instruction -> the flags it accepts (None: a boolean flag).
_FLAGS: dict[str, frozenset[str]] = {
    "FROM": frozenset({"platform"}),
    "RUN": frozenset({"network", "mount", "security"}),
    "COPY": frozenset({"chown", "chmod", "from", "link", "parents", "exclude"}),
    "ADD": frozenset({"chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"}),
    "HEALTHCHECK": frozenset({"interval", "timeout", "start-period", "start-interval",
                              "retries"}),
}
_BOOL_FLAGS = frozenset({"link", "parents", "keep-git-dir"})
_KEYWORDS = frozenset({"FROM", "RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "ENV",
                       "ARG", "LABEL", "WORKDIR", "USER", "EXPOSE", "VOLUME", "STOPSIGNAL",
                       "HEALTHCHECK", "MAINTAINER", "ONBUILD"})


@dataclass(frozen=True)
class Heredoc:
    """Inline content: `<<NAME` ... `NAME`. `expand` is False when the name was quoted
    (`<<"EOF"`), which in Docker turns variable expansion off.
    """

    name: str
    content: str
    expand: bool = True
    chomp: bool = False


@dataclass(frozen=True)
class Instruction:
    """One instruction as written.

    keyword   upper-case (`RUN`)
    args      exec/JSON form: the list; shell form of RUN/CMD/ENTRYPOINT/WORKDIR/USER/...:
              one string (the rest of the line); COPY/ADD/EXPOSE/VOLUME/FROM: the words
    json      True for the exec (JSON array) form
    flags     `--name=value` flags (`None` for a boolean flag given bare)
    pairs     ENV, LABEL and ARG: (key, raw value) with the value not yet expanded
              (ARG without default: value None)
    text      the instruction on one line, as Docker prints it in `Step N/M : ...`
    """

    keyword: str
    args: tuple[str, ...]
    line: int
    end_line: int
    text: str
    filename: str = "Dockerfile"
    json: bool = False
    flags: Mapping[str, str | None] = field(default_factory=dict)
    pairs: tuple[tuple[str, str | None], ...] = ()
    heredocs: tuple[Heredoc, ...] = ()

    def error(self, message: str) -> DockerfileError:
        """An error located at this instruction."""
        return DockerfileError(self.filename, self.line, self.keyword, message)

    def flag(self, name: str, default: str | None = None) -> str | None:
        """A flag's value (a bare boolean flag reads as "true")."""
        if name not in self.flags:
            return default
        value = self.flags[name]
        return "true" if value is None else value


@dataclass(frozen=True)
class Stage:
    """`FROM base [AS name]` and the instructions up to the next FROM."""

    index: int
    name: str | None
    base: str
    platform: str | None
    from_instruction: Instruction
    instructions: tuple[Instruction, ...]


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile: directives, the ARGs before the first FROM, and the stages."""

    filename: str
    escape: str
    directives: Mapping[str, str]
    global_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]

    def stage(self, ref: str) -> Stage:
        """A stage by name (case-insensitive) or index."""
        for s in self.stages:
            if s.name is not None and s.name == ref.lower():
                return s
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        raise DockerfileError(self.filename, 0, "", f"no build stage named {ref!r}")

    @property
    def instruction_count(self) -> int:
        """FROM lines plus stage instructions (what `Step N/M` counts)."""
        return sum(1 + len(s.instructions) for s in self.stages)


# -- lines -----------------------------------------------------------------------------------

def _read_directives(lines: Sequence[str], filename: str) -> tuple[dict[str, str], int]:
    directives: dict[str, str] = {}
    for i, line in enumerate(lines):
        m = _DIRECTIVE.match(line.strip())
        if m is None:
            return directives, i
        key = m.group(1).lower()
        if key in directives:
            raise DockerfileError(filename, i + 1, "", f"only one {key} parser directive "
                                  "can be used")
        directives[key] = m.group(2)
    return directives, len(lines)


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _continues(line: str, escape: str) -> tuple[str, bool]:
    """Strip a trailing escape character; True if the instruction continues."""
    stripped = line.rstrip()
    if stripped.endswith(escape):
        return stripped[: -len(escape)], True
    return line, False


def parse(text: str, filename: str = "Dockerfile") -> Dockerfile:
    """Parse a Dockerfile's text; `filename` is used in error messages."""
    lines = text.replace("\r\n", "\n").split("\n")
    directives, first = _read_directives(lines, filename)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(filename, 1, "", f"invalid escape token {escape!r} does not "
                              "match ` or \\")
    instructions: list[Instruction] = []
    i = first
    while i < len(lines):
        line = lines[i]
        start = i + 1
        i += 1
        if not line.strip() or _is_comment(line):
            continue
        joined, more = _continues(line.lstrip(), escape)
        while more and i < len(lines):
            nxt = lines[i]
            i += 1
            if _is_comment(nxt) or not nxt.strip():
                continue
            part, more = _continues(nxt, escape)
            joined += part
        keyword, _, rest = joined.strip().partition(" ")
        if "\t" in keyword:
            keyword, _, tail = keyword.partition("\t")
            rest = tail + " " + rest
        instr_kw = keyword.upper()
        heredocs: list[Heredoc] = []
        if instr_kw in ("RUN", "COPY", "ADD") and "<<" in rest:
            i = _read_heredocs(rest, lines, i, heredocs, filename, start, instr_kw)
        instructions.append(_instruction(instr_kw, rest.strip(), start, i, filename, escape,
                                         tuple(heredocs)))
    return _stages(instructions, filename, escape, directives)


def _read_heredocs(rest: str, lines: Sequence[str], i: int, out: list[Heredoc],
                   filename: str, start: int, keyword: str) -> int:
    if _looks_like_json(rest.strip()):
        return i
    for m in _HEREDOC.finditer(rest):
        chomp, quote, name = m.group(1) == "-", m.group(2), m.group(3)
        body: list[str] = []
        while True:
            if i >= len(lines):
                raise DockerfileError(filename, start, keyword,
                                      f"unterminated heredoc <<{name}")
            raw = lines[i]
            i += 1
            check = raw.lstrip("\t") if chomp else raw
            if check == name:
                break
            body.append(check if chomp else raw)
        out.append(Heredoc(name, "".join(b + "\n" for b in body), expand=not quote,
                           chomp=chomp))
    return i


def _looks_like_json(text: str) -> bool:
    return text.startswith("[")


def _json_args(text: str) -> list[str] | None:
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def parse_flags(rest: str, keyword: str, filename: str, line: int
                ) -> tuple[dict[str, str | None], str]:
    """Leading `--name[=value]` words -> (flags, the rest), checked against what the
    instruction accepts.
    """
    flags: dict[str, str | None] = {}
    allowed = _FLAGS.get(keyword, frozenset())
    while rest.startswith("--"):
        word, _, tail = rest.partition(" ")
        if "\t" in word:
            word, _, t2 = word.partition("\t")
            tail = t2 + " " + tail
        rest = tail.lstrip()
        if word == "--":
            break
        name, eq, value = word[2:].partition("=")
        if name not in allowed:
            raise DockerfileError(filename, line, keyword, f"unknown flag: --{name}")
        if name in flags:
            raise DockerfileError(filename, line, keyword, f"duplicate flag specified: --{name}")
        if not eq and name not in _BOOL_FLAGS:
            raise DockerfileError(filename, line, keyword, f"missing a value on flag: --{name}")
        flags[name] = _unquote(value) if eq else None
    return flags, rest


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _instruction(keyword: str, rest: str, line: int, end: int, filename: str, escape: str,
                 heredocs: tuple[Heredoc, ...]) -> Instruction:
    def fail(message: str) -> DockerfileError:
        return DockerfileError(filename, line, keyword, message)

    if keyword not in _KEYWORDS:
        raise fail("unknown instruction")
    text = f"{keyword} {rest}".strip()
    if keyword == "ONBUILD":
        raise fail("ONBUILD is not supported by llmos build; put the instructions in the "
                   "Dockerfiles that use this image")
    flags, rest = parse_flags(rest, keyword, filename, line) if keyword in _FLAGS \
        else ({}, rest)

    def make(args: Sequence[str], *, is_json: bool = False,
             pairs: tuple[tuple[str, str | None], ...] = ()) -> Instruction:
        return Instruction(keyword, tuple(args), line, end, text, filename, is_json, flags,
                           pairs, heredocs)

    if keyword in ("RUN", "CMD", "ENTRYPOINT", "SHELL", "VOLUME"):
        js = _json_args(rest)
        if js is not None:
            if keyword == "SHELL" and not js:
                raise fail("requires at least one argument")
            if keyword == "VOLUME" and not js:
                raise fail("requires at least one argument")
            return make(js, is_json=True)
        if keyword == "SHELL":
            raise fail("requires the arguments to be in JSON form")
        if not rest and keyword in ("RUN", "VOLUME"):
            raise fail("requires at least one argument")
        if keyword == "VOLUME":
            return make(rest.split())
        return make([rest] if rest else [])
    if keyword in ("COPY", "ADD"):
        js = _json_args(rest)
        args = js if js is not None else rest.split()
        if len(args) < 2:
            raise fail("requires at least two arguments, but only one was provided. "
                       "Destination could not be determined" if len(args) == 1
                       else "requires at least two arguments")
        return make(args, is_json=js is not None)
    if keyword in ("ENV", "LABEL"):
        return make([], pairs=_name_values(rest, keyword, escape, fail))
    if keyword == "ARG":
        words = split_words(rest, escape=escape)
        if not words:
            raise fail("requires at least one argument")
        pairs: list[tuple[str, str | None]] = []
        for w in words:
            name, eq, value = w.partition("=")
            if not name:
                raise fail(f"invalid argument {w!r}")
            pairs.append((name, value if eq else None))
        return make([], pairs=tuple(pairs))
    if keyword == "FROM":
        words = rest.split()
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise fail("requires either one or three arguments (FROM image [AS name])")
        return make(words)
    if keyword in ("WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER"):
        if not rest:
            raise fail("requires exactly one argument")
        if keyword in ("USER", "STOPSIGNAL") and len(rest.split()) != 1:
            raise fail("requires exactly one argument")
        return make([rest])
    if keyword == "EXPOSE":
        if not rest:
            raise fail("requires at least one argument")
        return make([rest])
    if keyword == "HEALTHCHECK":
        word, _, cmd = rest.partition(" ")
        if word.upper() == "NONE":
            if cmd.strip() or flags:
                raise fail("HEALTHCHECK NONE takes no other arguments")
            return make(["NONE"])
        if word.upper() != "CMD":
            raise fail("requires NONE or CMD <command>")
        cmd = cmd.strip()
        js = _json_args(cmd)
        if js is not None:
            if not js:
                raise fail("CMD requires a command")
            return make(["CMD", *js], is_json=True)
        if not cmd:
            raise fail("CMD requires a command")
        return make(["CMD-SHELL", cmd])
    raise fail("unknown instruction")  # pragma: no cover (every keyword is handled above)


def _name_values(rest: str, keyword: str, escape: str,
                 fail: Callable[[str], DockerfileError]) -> tuple[tuple[str, str | None], ...]:
    words = split_words(rest, escape=escape)
    if not words:
        raise fail("requires at least one argument")
    if "=" not in words[0]:
        # legacy form: `ENV KEY value with spaces`
        key, _, value = rest.strip().partition(" ")
        if not value.strip():
            raise fail("requires two arguments (KEY value) or KEY=value pairs")
        return ((key, value.strip()),)
    pairs: list[tuple[str, str | None]] = []
    for w in words:
        key, eq, value = w.partition("=")
        if not eq or not key:
            raise fail(f"syntax error - can't find = in {w!r}. Must be of the form: "
                       "name=value")
        pairs.append((key, value))
    return tuple(pairs)


def _stages(instructions: Sequence[Instruction], filename: str, escape: str,
            directives: Mapping[str, str]) -> Dockerfile:
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    current: list[Instruction] | None = None
    head: Instruction | None = None
    names: set[str] = set()

    def close() -> None:
        if head is not None and current is not None:
            words = head.args
            name = words[2].lower() if len(words) == 3 else None
            stages.append(Stage(len(stages), name, words[0], head.flag("platform"), head,
                                tuple(current)))

    for ins in instructions:
        if ins.keyword == "FROM":
            close()
            head, current = ins, []
            if len(ins.args) == 3:
                name = ins.args[2].lower()
                if not re.match(r"^[a-z][a-z0-9._-]*$", name):
                    raise ins.error(f"invalid name for build stage: {ins.args[2]!r}, "
                                    "name can't start with a number or contain symbols")
                if name in names:
                    raise ins.error(f"duplicate name {name!r}")
                names.add(name)
        elif current is None:
            if ins.keyword != "ARG":
                raise ins.error("no FROM before it: a Dockerfile must begin with FROM "
                                "(only ARG may come first)")
            global_args.append(ins)
        else:
            current.append(ins)
    close()
    if not stages:
        raise DockerfileError(filename, 1, "", "no FROM instruction: nothing to build")
    return Dockerfile(filename, escape, dict(directives), tuple(global_args), tuple(stages))
