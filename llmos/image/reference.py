"""Image references, normalised exactly as Docker does, so a name a user types resolves to the
same registry and repository it would with Docker (`nginx` -> `docker.io/library/nginx:latest`).

Grammar (distribution/reference):

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path-component [ "/" path-component ]*
    domain     := host [ ":" port ]            host: DNS labels, or an IPv6 literal in []
    path-comp  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"* ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}

The first component is a domain only if it contains "." or ":" or is "localhost" (or has
uppercase letters, which a path component cannot); otherwise the domain is docker.io, and a
single-component name on docker.io gains "library/".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .digest import parse_digest
from .errors import InvalidArgument, InvalidReference

__all__ = ["DEFAULT_REGISTRY", "DEFAULT_TAG", "Reference"]

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
# docker.io is a name, not a host: the API lives at registry-1.docker.io.
_DOCKER_HUB_API = "registry-1.docker.io"
_LEGACY_HUB = "index.docker.io"
_NAME_MAX = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$"
)
_PATH_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)
_HEX64_RE = re.compile(r"^[a-f0-9]{64}$")


@dataclass(frozen=True)
class Reference:
    """A fully normalised image reference; `str()` is the canonical form stored by the store."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str, *, default_tag: bool = True) -> Reference:
        """Parse and normalise like `docker pull`: a bare name gets docker.io, library/ and
        :latest (unless it has a digest, or `default_tag` is false).
        """
        if not isinstance(text, str) or not text:
            raise InvalidReference("image reference: must be a non-empty string")
        if text != text.strip() or any(c.isspace() for c in text):
            raise InvalidReference(f"image reference {text!r}: must not contain whitespace")
        rest = text
        digest: str | None = None
        if "@" in rest:
            rest, digest_text = rest.split("@", 1)
            try:
                digest = parse_digest(digest_text, what=f"image reference {text!r}")
            except InvalidArgument as exc:
                raise InvalidReference(str(exc)) from None
        tag: str | None = None
        # A tag follows the last ":" only if no "/" comes after it; otherwise the colon was a
        # port (localhost:5000/app).
        colon = rest.rfind(":")
        if colon > rest.rfind("/"):
            rest, tag = rest[:colon], rest[colon + 1 :]
            if not _TAG_RE.match(tag):
                raise InvalidReference(
                    f"image reference {text!r}: invalid tag {tag!r} (letters, digits, '_', '.', "
                    "'-', at most 128, not starting with '.' or '-')"
                )
        if not rest:
            raise InvalidReference(f"image reference {text!r}: missing repository name")
        registry, repository = _split_domain(rest, text)
        if _HEX64_RE.match(repository.rsplit("/", 1)[-1]) and registry == DEFAULT_REGISTRY \
                and repository.startswith("library/") and tag is None and digest is None:
            raise InvalidReference(
                f"image reference {text!r}: 64-hex repository names are reserved for image ids"
            )
        for component in repository.split("/"):
            if not _PATH_COMPONENT_RE.match(component):
                if component.lower() != component and _PATH_COMPONENT_RE.match(component.lower()):
                    raise InvalidReference(
                        f"image reference {text!r}: repository name must be lowercase"
                    )
                raise InvalidReference(
                    f"image reference {text!r}: invalid repository path component {component!r}"
                )
        if len(registry) + 1 + len(repository) > _NAME_MAX:
            raise InvalidReference(
                f"image reference {text!r}: name longer than {_NAME_MAX} characters"
            )
        if tag is None and digest is None and default_tag:
            tag = DEFAULT_TAG
        return cls(registry=registry, repository=repository, tag=tag, digest=digest)

    @property
    def name(self) -> str:
        """Registry and repository without tag or digest: `docker.io/library/nginx`."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host:port the distribution API is spoken to (docker.io is an alias)."""
        return _DOCKER_HUB_API if self.registry == DEFAULT_REGISTRY else self.registry

    @property
    def object(self) -> str:
        """What goes after /manifests/ in the API: the digest if pinned, else the tag."""
        if self.digest:
            return self.digest
        return self.tag or DEFAULT_TAG

    def with_tag(self, tag: str) -> Reference:
        """The same repository under another tag (no digest), validated."""
        return Reference.parse(f"{self.name}:{tag}")

    def with_digest(self, digest: str) -> Reference:
        """The same repository pinned to a digest (tag kept for display)."""
        return Reference(self.registry, self.repository, self.tag, parse_digest(digest))

    def familiar(self) -> str:
        """The short form Docker prints: `nginx:latest`, `user/app:1`, `host:5000/app:1`."""
        name = self.name
        if self.registry == DEFAULT_REGISTRY:
            name = self.repository
            if name.startswith("library/") and name.count("/") == 1:
                name = name[len("library/") :]
        return name + self._suffix()

    def _suffix(self) -> str:
        out = ""
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    def __str__(self) -> str:
        return self.name + self._suffix()


def _split_domain(name: str, text: str) -> tuple[str, str]:
    first, sep, remainder = name.partition("/")
    is_domain = bool(sep) and (
        "." in first or ":" in first or first == "localhost" or first.lower() != first
    )
    if not is_domain:
        repository = name if sep else f"library/{name}"
        return DEFAULT_REGISTRY, repository
    if not _DOMAIN_RE.match(first):
        raise InvalidReference(f"image reference {text!r}: invalid registry host {first!r}")
    if first == _LEGACY_HUB:
        first = DEFAULT_REGISTRY
    if first == DEFAULT_REGISTRY and "/" not in remainder:
        remainder = f"library/{remainder}"
    if not remainder:
        raise InvalidReference(f"image reference {text!r}: missing repository name")
    return first, remainder
