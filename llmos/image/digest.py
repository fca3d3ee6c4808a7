"""Content digests (`sha256:<64 hex>`), validated once at the edge so paths built from them
can never name anything but a blob file.
"""

from __future__ import annotations

import hashlib
import re

from .errors import InvalidArgument

__all__ = ["chain_ids", "parse_digest", "sha256_digest"]

# Only sha256 is accepted for content we store: it is what every registry and tool writes, and a
# fixed algorithm keeps blob paths (blobs/sha256/<hex>) free of any user-controlled component.
_SHA256 = re.compile(r"^sha256:[a-f0-9]{64}$")
_ANY = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


def parse_digest(value: str, *, what: str = "digest") -> str:
    """Return `value` if it is a well-formed sha256 digest; otherwise say what is wrong."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{what}: must be a string, got {type(value).__name__}")
    if _SHA256.match(value):
        return value
    if _ANY.match(value):
        algorithm = value.split(":", 1)[0]
        if algorithm == "sha256":
            raise InvalidArgument(f"{what}: sha256 digest needs 64 lowercase hex digits: {value!r}")
        raise InvalidArgument(f"{what}: unsupported digest algorithm {algorithm!r} in {value!r}")
    raise InvalidArgument(f"{what}: not a digest (want sha256:<64 hex>): {value!r}")


def sha256_digest(data: bytes) -> str:
    """Digest of a byte string in the `sha256:<hex>` form used everywhere."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Chain ids of a layer stack (OCI image spec): one per layer, naming the layer together
    with everything below it, so two images sharing a base share its snapshots.
    """
    out: list[str] = []
    for diff_id in diff_ids:
        parse_digest(diff_id, what="rootfs.diff_ids[]")
        if not out:
            out.append(diff_id)
        else:
            out.append(sha256_digest(f"{out[-1]} {diff_id}".encode()))
    return out
