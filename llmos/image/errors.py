"""One exception tree for the image side, so callers catch by meaning, not by module.

The kinds follow containerd's errdefs: the daemon maps each to one RPC status and the CLI to
one exit message, whichever layer (store, unpack, registry) raised it.

    ImageError
     ├── NotFound              no such image, blob, snapshot or manifest
     ├── AlreadyExists         a name or snapshot key is taken
     ├── InvalidArgument       malformed input
     │    ├── InvalidReference     an image reference that does not parse
     │    ├── UnsafeLayer          a layer tar that tries to leave its directory
     │    └── UnsupportedMediaType a manifest, config or layer type we do not read
     ├── FailedPrecondition    the operation is valid but the state forbids it (in use)
     ├── DigestMismatch        bytes whose size or digest is not what was promised
     ├── Unavailable           a resource is busy (an ingest another writer holds)
     └── RegistryError         the registry answered with an error
          ├── RegistryUnreachable  no connection at all; the message names the host
          └── Unauthorized         credentials missing or refused
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "DigestMismatch",
    "FailedPrecondition",
    "ImageError",
    "InvalidArgument",
    "InvalidReference",
    "NotFound",
    "RegistryError",
    "RegistryUnreachable",
    "Unauthorized",
    "Unavailable",
    "UnsafeLayer",
    "UnsupportedMediaType",
]


class ImageError(Exception):
    """Base of every error the image side raises on purpose."""


class NotFound(ImageError):
    """The named image, blob, snapshot or manifest does not exist."""


class AlreadyExists(ImageError):
    """A name or key is already taken; creating it again would lose data."""


class InvalidArgument(ImageError):
    """The input is malformed; retrying the same call cannot succeed."""


class InvalidReference(InvalidArgument):
    """An image reference that does not follow Docker's grammar."""


class UnsafeLayer(InvalidArgument):
    """A layer tar entry that would write outside its layer directory, or is hostile."""


class UnsupportedMediaType(InvalidArgument):
    """A manifest, index, config or layer media type this store does not handle."""


class FailedPrecondition(ImageError):
    """The request is valid but the current state forbids it (in use, has children)."""


class DigestMismatch(ImageError):
    """Content whose size or digest differs from the descriptor that announced it."""


class Unavailable(ImageError):
    """A resource is temporarily held by someone else; retrying later may succeed."""


class RegistryError(ImageError):
    """The registry answered, but with an error for this request."""


class RegistryUnreachable(RegistryError):
    """No connection could be made; the message names the host so users know what to fix."""


class Unauthorized(RegistryError):
    """The registry refused our credentials, or wants some and we have none."""
