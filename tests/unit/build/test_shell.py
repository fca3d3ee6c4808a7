"""Variable substitution as Docker's shell lexer does it."""

from __future__ import annotations

import pytest

from llmos.build.shell import SubstitutionError, expand, expand_words, split_words

ENV = {"A": "apple", "E": "", "SP": "x y", "HOME": "/root"}


@pytest.mark.parametrize(("word", "out"), [
    ("$A", "apple"),
    ("${A}", "apple"),
    ("${A}s", "apples"),
    ("$A/b", "apple/b"),
    ("$UNSET", ""),
    ("${UNSET:-dflt}", "dflt"),
    ("${E:-dflt}", "dflt"),
    ("${E-dflt}", ""),
    ("${UNSET-dflt}", "dflt"),
    ("${A:-dflt}", "apple"),
    ("${A:+alt}", "alt"),
    ("${E:+alt}", ""),
    ("${E+alt}", "alt"),
    ("${UNSET:+alt}", ""),
    ("${UNSET:-$A}", "apple"),
    ("${UNSET:-${A}-x}", "apple-x"),
    ("'$A'", "$A"),
    ('"$A b"', "apple b"),
    ("\\$A", "$A"),
    ('"\\$A"', "$A"),
    ('"a\\nb"', "a\\nb"),
    ("a\\ b", "a b"),
    ("$", "$"),
    ("a$", "a$"),
    ("$1", ""),
    ("${HOME}/x", "/root/x"),
])
def test_expand(word: str, out: str) -> None:
    assert expand(word, ENV) == out


def test_backtick_escape() -> None:
    assert expand("`$A", ENV, escape="`") == "$A"
    assert expand("c:\\dir", ENV, escape="`") == "c:\\dir"


@pytest.mark.parametrize("word", ["${", "${}", "${:x}", "${A", "${A:-x", "'open", '"open',
                                  "${A%x}"])
def test_malformed(word: str) -> None:
    with pytest.raises(SubstitutionError):
        expand(word, ENV)


def test_required_variable() -> None:
    with pytest.raises(SubstitutionError, match="UNSET: must be set"):
        expand("${UNSET:?must be set}", ENV)
    assert expand("${A:?x}", ENV) == "apple"


def test_words_split_expanded_values_but_not_quotes() -> None:
    assert expand_words("80 $SP 'a b' \"$SP\"", ENV) == ["80", "x", "y", "a b", "x y"]


def test_split_words_keeps_quotes() -> None:
    assert split_words('A=1 B="x y" C=a\\ b D=\'q r\'') == ['A=1', 'B="x y"', "C=a\\ b",
                                                           "D='q r'"]
