"""Images: content store, references, layer unpacking, overlay snapshots, archives, registries.

The daemon and CLI use `ImageStore` (pull, push, load, save, import, list, get, remove, prune)
and `Snapshotter` (prepare a container's rootfs from an image's chain id, as mount
descriptions the C side executes). Everything else is exported for tests and tools.
"""

from __future__ import annotations

from .content import BlobInfo, ContentStore, IngestStatus, Writer
from .digest import chain_ids, parse_digest, sha256_digest
from .errors import (
    AlreadyExists,
    DigestMismatch,
    FailedPrecondition,
    ImageError,
    InvalidArgument,
    InvalidReference,
    NotFound,
    RegistryError,
    RegistryUnreachable,
    Unauthorized,
    Unavailable,
    UnsafeLayer,
    UnsupportedMediaType,
)
from .manifest import Descriptor, ImageConfig, Index, Manifest, Platform
from .progress import Progress, ProgressCallback
from .reference import Reference
from .registry import RegistryClient, RegistryConfig
from .snapshot import Mount, SnapshotInfo, Snapshotter
from .store import Image, ImageStore, LayerBlob, PruneReport
from .unpack import ApplyResult, apply_layer

__all__ = [
    "AlreadyExists",
    "ApplyResult",
    "BlobInfo",
    "ContentStore",
    "Descriptor",
    "DigestMismatch",
    "FailedPrecondition",
    "Image",
    "ImageConfig",
    "ImageError",
    "ImageStore",
    "Index",
    "IngestStatus",
    "InvalidArgument",
    "InvalidReference",
    "LayerBlob",
    "Manifest",
    "Mount",
    "NotFound",
    "Platform",
    "Progress",
    "ProgressCallback",
    "PruneReport",
    "Reference",
    "RegistryClient",
    "RegistryConfig",
    "RegistryError",
    "RegistryUnreachable",
    "SnapshotInfo",
    "Snapshotter",
    "Unauthorized",
    "Unavailable",
    "UnsafeLayer",
    "UnsupportedMediaType",
    "Writer",
    "apply_layer",
    "chain_ids",
    "parse_digest",
    "sha256_digest",
]
