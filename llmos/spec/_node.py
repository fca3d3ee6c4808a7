"""Declarative JSON <-> dataclass machinery shared by every config object.

Each config object is a dataclass whose fields carry, in their metadata, the JSON key and a
``Kind`` that knows how to check and convert the value. One generic reader then gives every
object the same behaviour: type errors name the JSON path, unknown keys are kept in ``extra``
(extension fields must survive a load/save round trip), and output omits what is unset the
way Go's ``omitempty`` does, so configs written by llmos look like those written by runc.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Self

from llmos.spec.errors import SpecError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
UINT32_MAX = 2**32 - 1
UINT16_MAX = 2**16 - 1
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def join(path: str, key: str) -> str:
    """The JSON path of ``key`` inside the object at ``path``."""
    return f"{path}.{key}" if path else key


def json_type(value: object) -> str:
    """How a JSON value's type reads in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class Kind:
    """How one JSON value is checked, converted to Python and converted back."""

    expected: str = "a value"

    def parse(self, value: object, path: str) -> Any:
        """Check ``value`` (found at ``path``) and return its Python form."""
        raise NotImplementedError

    def dump(self, value: Any) -> Any:
        """The JSON form of a Python value this kind produced."""
        return value

    def empty(self, value: Any) -> bool:
        """Whether the value is left out of the output (Go's omitempty)."""
        return value is None

    def fail(self, path: str, value: object) -> SpecError:
        """The error for a value of the wrong JSON type."""
        return SpecError(path, f"must be {self.expected}, not {json_type(value)}")


class Str(Kind):
    """A string, optionally from a fixed set, absolute, or checked by a function."""

    def __init__(
        self,
        *,
        choices: Collection[str] | None = None,
        label: str = "value",
        absolute: bool = False,
        nonempty: bool = False,
        check: Callable[[str], str | None] | None = None,
        expected: str | None = None,
    ) -> None:
        self.choices = choices
        self.label = label
        self.absolute = absolute
        self.nonempty = nonempty
        self.check = check
        if expected is not None:
            self.expected = expected
        elif absolute:
            self.expected = "an absolute path"
        elif nonempty:
            self.expected = "a non-empty string"
        else:
            self.expected = "a string"

    def parse(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            raise self.fail(path, value)
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(sorted(self.choices)) if len(self.choices) <= 12 else ""
            hint = f" (expected one of: {allowed})" if allowed else ""
            raise SpecError(path, f'unknown {self.label} "{value}"{hint}')
        if self.absolute and not value.startswith("/"):
            raise SpecError(path, f'must be an absolute path, not "{value}"')
        if self.nonempty and not value:
            raise SpecError(path, f"must be {self.expected}")
        if self.check is not None:
            reason = self.check(value)
            if reason is not None:
                raise SpecError(path, reason)
        return value


class Bool(Kind):
    """A boolean; ``omit_false`` drops false from the output like Go's omitempty does."""

    expected = "a boolean"

    def __init__(self, *, omit_false: bool = False) -> None:
        self.omit_false = omit_false

    def parse(self, value: object, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, value)
        return value

    def empty(self, value: Any) -> bool:
        return value is None or (self.omit_false and value is False)


class Int(Kind):
    """An integer within [lo, hi]; JSON booleans and fractions are refused."""

    def __init__(self, lo: int, hi: int, expected: str) -> None:
        self.lo = lo
        self.hi = hi
        self.expected = expected

    def parse(self, value: object, path: str) -> int:
        if isinstance(value, float):
            raise SpecError(path, f"must be {self.expected}, not {value!r}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, value)
        if not self.lo <= value <= self.hi:
            raise SpecError(path, f"must be {self.expected}, not {value}")
        return value


class ListOf(Kind):
    """A JSON list whose items are all of one kind."""

    def __init__(self, item: Kind, *, nonempty: bool = False, expected: str | None = None):
        self.item = item
        self.nonempty = nonempty
        if expected is None:
            expected = f"a {'non-empty ' if nonempty else ''}list of {_plural(item.expected)}"
        self.expected = expected

    def parse(self, value: object, path: str) -> list[Any]:
        if not isinstance(value, list) or (self.nonempty and not value):
            raise SpecError(path, f"must be {self.expected}")
        return [self.item.parse(v, f"{path}[{i}]") for i, v in enumerate(value)]

    def dump(self, value: Any) -> Any:
        return [self.item.dump(v) for v in value]

    def empty(self, value: Any) -> bool:
        return not value


class MapOf(Kind):
    """A JSON object used as a map from string keys to values of one kind."""

    def __init__(self, item: Kind, *, keys: Collection[str] | None = None, label: str = "key"):
        self.item = item
        self.keys = keys
        self.label = label
        self.expected = f"an object mapping names to {_plural(item.expected)}"

    def parse(self, value: object, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, value)
        out: dict[str, Any] = {}
        for k, v in value.items():
            if self.keys is not None and k not in self.keys:
                allowed = ", ".join(sorted(self.keys))
                raise SpecError(path, f'unknown {self.label} "{k}" (expected one of: {allowed})')
            out[k] = self.item.parse(v, f'{path}["{k}"]')
        return out

    def dump(self, value: Any) -> Any:
        return {k: self.item.dump(v) for k, v in value.items()}

    def empty(self, value: Any) -> bool:
        return not value


class Obj(Kind):
    """A nested config object (a Node subclass)."""

    expected = "an object"

    def __init__(self, cls: type[Node]) -> None:
        self.cls = cls

    def parse(self, value: object, path: str) -> Node:
        return self.cls.from_json(value, path)

    def dump(self, value: Any) -> Any:
        return value.to_dict()


def _plural(expected: str) -> str:
    for article in ("an ", "a "):
        if expected.startswith(article):
            expected = expected[len(article) :]
            break
    if expected.endswith("ss"):
        return expected + "es"
    return expected if expected.endswith("s") else expected + "s"


def req(key: str, kind: Kind, default: Any = dataclasses.MISSING) -> Any:
    """A required field: loading fails when the key is missing.

    ``default`` only serves Python callers building objects by hand (``User()`` is root).
    """
    return field(default=default, metadata={"json": key, "kind": kind, "required": True})


def obj(key: str, cls: type[Node]) -> Any:
    """An object field that is always present (Go's non-pointer struct), default-built."""
    return field(default_factory=cls, metadata={"json": key, "kind": Obj(cls), "required": False})


def opt(key: str, kind: Kind, default: Any = None) -> Any:
    """An optional scalar or object field; ``None`` means absent."""
    return field(default=default, metadata={"json": key, "kind": kind, "required": False})


def many(key: str, kind: ListOf | MapOf) -> Any:
    """An optional list or map field; empty means absent."""
    factory: Callable[[], Any] = list if isinstance(kind, ListOf) else dict
    return field(default_factory=factory, metadata={"json": key, "kind": kind, "required": False})


@dataclass(kw_only=True)
class Node:
    """Base of every config object: generic load, save and unknown-key keeping."""

    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    """Keys this object does not define, kept verbatim so they survive a round trip."""

    @classmethod
    def _fields(cls) -> list[dataclasses.Field[Any]]:
        return [f for f in dataclasses.fields(cls) if "json" in f.metadata]

    @classmethod
    def from_json(cls, value: object, path: str) -> Self:
        """Load and check the object found at JSON path ``path``."""
        if not isinstance(value, dict):
            raise SpecError(path, f"must be an object, not {json_type(value)}")
        kwargs: dict[str, Any] = {}
        known: set[str] = set()
        for f in cls._fields():
            key: str = f.metadata["json"]
            kind: Kind = f.metadata["kind"]
            known.add(key)
            sub = join(path, key)
            # JSON null is treated as absent, as Go's decoder does for pointers and slices.
            if value.get(key) is not None:
                kwargs[f.name] = kind.parse(value[key], sub)
            elif f.metadata["required"]:
                raise SpecError(sub, f"is required and must be {kind.expected}")
        kwargs["extra"] = {k: copy.deepcopy(v) for k, v in value.items() if k not in known}
        node = cls(**kwargs)
        node.check(path)
        return node

    @classmethod
    def from_dict(cls, data: object, path: str = "") -> Self:
        """Load and check an object from its JSON form; ``path`` prefixes error paths."""
        return cls.from_json(data, path)

    def check(self, path: str) -> None:
        """Rules that span several fields; overridden where the spec has them."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with unset fields left out and unknown keys put back."""
        out: dict[str, Any] = {}
        for f in self._fields():
            kind: Kind = f.metadata["kind"]
            value = getattr(self, f.name)
            if f.metadata["required"] or not kind.empty(value):
                out[f.metadata["json"]] = kind.dump(value)
        for k, v in self.extra.items():
            out.setdefault(k, copy.deepcopy(v))
        return out


# Integer kinds used throughout the spec, named as the spec's JSON schema names them.
INT64 = Int(INT64_MIN, INT64_MAX, "a 64-bit integer")
UINT64 = Int(0, UINT64_MAX, "an unsigned 64-bit integer")
UINT32 = Int(0, UINT32_MAX, "an unsigned 32-bit integer")
UINT16 = Int(0, UINT16_MAX, "an unsigned 16-bit integer")
INT32 = Int(INT32_MIN, INT32_MAX, "a 32-bit integer")
STR = Str()
STRS = ListOf(Str())
ABS_PATHS = ListOf(Str(absolute=True), expected="a list of absolute paths")
STR_MAP = MapOf(Str())
