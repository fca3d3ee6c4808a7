"""Reference normalisation must match Docker's, name for name."""

from __future__ import annotations

import pytest

from llmos.image import InvalidReference, Reference

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(("text", "canonical", "familiar"), [
    ("nginx", "docker.io/library/nginx:latest", "nginx:latest"),
    ("nginx:1.25", "docker.io/library/nginx:1.25", "nginx:1.25"),
    ("library/nginx", "docker.io/library/nginx:latest", "nginx:latest"),
    ("docker.io/nginx", "docker.io/library/nginx:latest", "nginx:latest"),
    ("index.docker.io/library/nginx", "docker.io/library/nginx:latest", "nginx:latest"),
    ("user/app", "docker.io/user/app:latest", "user/app:latest"),
    ("a/b/c", "docker.io/a/b/c:latest", "a/b/c:latest"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/app:v1", "localhost:5000/app:v1", "localhost:5000/app:v1"),
    ("127.0.0.1:5000/ns/app", "127.0.0.1:5000/ns/app:latest", "127.0.0.1:5000/ns/app:latest"),
    ("[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000/app:latest"),
    ("quay.io/org/app:1.0-rc_1", "quay.io/org/app:1.0-rc_1", "quay.io/org/app:1.0-rc_1"),
    ("Host.example:443/app", "Host.example:443/app:latest", "Host.example:443/app:latest"),
    (f"nginx@{D}", f"docker.io/library/nginx@{D}", f"nginx@{D}"),
    (f"nginx:1@{D}", f"docker.io/library/nginx:1@{D}", f"nginx:1@{D}"),
    ("my-app__x/a-b.c", "docker.io/my-app__x/a-b.c:latest", "my-app__x/a-b.c:latest"),
])
def test_normalisation(text: str, canonical: str, familiar: str) -> None:
    ref = Reference.parse(text)
    assert str(ref) == canonical
    assert ref.familiar() == familiar
    assert Reference.parse(str(ref)) == ref  # canonical form is a fixed point


def test_fields_and_api_host() -> None:
    ref = Reference.parse("localhost:5000/ns/app:v1")
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        "localhost:5000", "ns/app", "v1", None)
    assert ref.api_host == "localhost:5000"
    assert ref.object == "v1"
    hub = Reference.parse("nginx")
    assert hub.api_host == "registry-1.docker.io"
    assert hub.name == "docker.io/library/nginx"
    pinned = Reference.parse(f"nginx@{D}")
    assert pinned.tag is None and pinned.object == D
    assert Reference.parse("nginx", default_tag=False).tag is None
    assert str(hub.with_tag("2")) == "docker.io/library/nginx:2"


@pytest.mark.parametrize(("text", "message"), [
    ("", "non-empty"),
    ("NGINX", "lowercase"),
    ("Org/App", "lowercase"),
    ("nginx:", "invalid tag"),
    ("nginx:-bad", "invalid tag"),
    ("nginx:" + "x" * 129, "invalid tag"),
    ("a//b", "path component"),
    ("-a/b", "path component"),
    ("a_/b", "path component"),
    ("nginx@sha256:abc", "64 lowercase hex"),
    ("nginx@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("nginx@", "not a digest"),
    ("bad_host:5000/app", "invalid registry host"),
    ("-host.com/app", "invalid registry host"),
    ("a" * 64, "reserved"),
    (" nginx", "whitespace"),
    ("x/" + "a" * 260, "longer than 255"),
])
def test_invalid_references_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidReference, match=message):
        Reference.parse(text)
