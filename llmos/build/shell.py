"""Variable substitution and word splitting in Dockerfile arguments, as Docker's shell lexer
does them (moby/buildkit `frontend/dockerfile/shell/lex.go`).

Why a lexer of our own rather than `shlex`: Docker's rules are not POSIX sh. Only `$VAR`,
`${VAR}`, `${VAR:-word}`, `${VAR:+word}`, `${VAR:?msg}` (and the colon-less forms) are
expanded; single quotes suppress expansion; inside double quotes the escape character only
escapes `"`, `$` and itself; the escape character is `\\` or, by parser directive, a
backtick; and unset variables expand to the empty string. Which instructions substitute at all
is the builder's decision (ENV, ARG, LABEL, COPY, ADD, WORKDIR, USER, EXPOSE, VOLUME,
STOPSIGNAL, FROM; never RUN, CMD or ENTRYPOINT, whose shell does it).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["SubstitutionError", "expand", "expand_words", "split_words"]


class SubstitutionError(ValueError):
    """A malformed `${...}` or a `${VAR:?message}` whose variable is unset."""


class _Words:
    """Accumulates words: quoted text never splits, expanded variables split on blanks."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.current = ""
        self.in_word = False

    def raw(self, text: str) -> None:
        self.current += text
        self.in_word = True

    def char(self, ch: str) -> None:
        if ch.isspace():
            self.end()
        else:
            self.raw(ch)

    def expanded(self, text: str) -> None:
        for ch in text:
            self.char(ch)

    def end(self) -> None:
        if self.in_word:
            self.words.append(self.current)
        self.current = ""
        self.in_word = False

    def result(self) -> list[str]:
        self.end()
        return self.words


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch

    def process(self, stop: str = "") -> tuple[str, list[str]]:
        out: list[str] = []
        words = _Words()
        while self.peek():
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(out), words.result()
            if ch == "'":
                part = self.single_quote()
                words.raw(part)
            elif ch == '"':
                part = self.double_quote()
                words.raw(part)
            elif ch == "$":
                part = self.dollar()
                words.expanded(part)
            else:
                self.next()
                if ch == self.escape:
                    ch = self.next()
                    if not ch:
                        break
                    words.raw(ch)
                else:
                    words.char(ch)
                part = ch
            out.append(part)
        if stop:
            raise SubstitutionError(f"unexpected end of statement while looking for "
                                    f"matching {stop}")
        return "".join(out), words.result()

    def single_quote(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.next()
            if not ch:
                raise SubstitutionError("unexpected end of statement while looking for "
                                        "matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise SubstitutionError("unexpected end of statement while looking for "
                                        "matching double-quote")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == self.escape and self.peek() in ('"', "$", self.escape) and self.peek():
                ch = self.next()
            out.append(ch)

    def name(self) -> str:
        out: list[str] = []
        if self.peek().isdigit():
            while self.peek().isdigit():
                out.append(self.next())
            return "".join(out)
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            out.append(self.next())
        return "".join(out)

    def dollar(self) -> str:
        self.next()  # '$'
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            return self.env.get(name, "")
        self.next()  # '{'
        if not self.peek():
            raise SubstitutionError("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise SubstitutionError("syntax error: bad substitution")
        name = self.name()
        if not name:
            raise SubstitutionError("syntax error: bad substitution")
        ch = self.next()
        value = self.env.get(name)
        if ch == "}":
            return value or ""
        colon = ch == ":"
        modifier = self.next() if colon else ch
        if modifier not in ("-", "+", "?"):
            if not modifier:
                raise SubstitutionError("syntax error: missing '}'")
            raise SubstitutionError(f"unsupported modifier ({modifier}) in substitution")
        word, _ = self.process(stop="}")
        # With the colon, an empty value counts as unset (POSIX).
        is_set = value is not None and (value != "" or not colon)
        if modifier == "-":
            return (value or "") if is_set else word
        if modifier == "+":
            return word if is_set else ""
        if not is_set:
            raise SubstitutionError(f"{name}: {word or 'is not allowed to be unset'}")
        return value or ""


def expand(word: str, env: Mapping[str, str], *, escape: str = "\\") -> str:
    """One word with variables substituted and quotes and escapes removed
    (Docker's ProcessWord): `"$HOME/x y"` -> `/root/x y`.
    """
    return _Lexer(word, env, escape).process()[0]


def expand_words(text: str, env: Mapping[str, str], *, escape: str = "\\") -> list[str]:
    """Substitute, then split into words on unquoted blanks, including blanks that came from
    a variable's value (Docker's ProcessWords, used by EXPOSE and the like).
    """
    return _Lexer(text, env, escape).process()[1]


def split_words(text: str, *, escape: str = "\\") -> list[str]:
    """Split on blanks outside quotes, keeping quotes and escapes in the words (Docker's
    parseWords, used to cut `ENV a="x y" b=z` into pairs before each value is expanded).
    """
    words: list[str] = []
    current: list[str] = []
    quote = ""
    in_word = False
    i = 0
    while i < len(text):
        ch = text[i]
        if not in_word and ch.isspace():
            i += 1
            continue
        in_word = True
        if ch.isspace() and not quote:
            words.append("".join(current))
            current, in_word = [], False
            i += 1
            continue
        if ch == escape and quote != "'" and i + 1 < len(text):
            current.append(ch + text[i + 1])
            i += 2
            continue
        if ch in ("'", '"'):
            if not quote:
                quote = ch
            elif quote == ch:
                quote = ""
        current.append(ch)
        i += 1
    if in_word:
        words.append("".join(current))
    return words
