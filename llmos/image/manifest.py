"""OCI and Docker schema2 documents (index/manifest list, manifest, image config) parsed into
typed values, with one validation pass so the rest of the image side trusts their fields.

Only what llmos uses is typed; the raw JSON is kept (`.raw`) so nothing is lost when an image
is saved, pushed or inspected.
"""

from __future__ import annotations

import json
import platform as _host_platform
from dataclasses import dataclass, field
from typing import Any

from .digest import parse_digest
from .errors import InvalidArgument, NotFound, UnsupportedMediaType

__all__ = [
    "CONFIG_TYPES",
    "INDEX_TYPES",
    "LAYER_TYPES",
    "MANIFEST_TYPES",
    "MEDIA_DOCKER_CONFIG",
    "MEDIA_DOCKER_LAYER_GZIP",
    "MEDIA_DOCKER_LAYER_TAR",
    "MEDIA_DOCKER_LIST",
    "MEDIA_DOCKER_MANIFEST",
    "MEDIA_OCI_CONFIG",
    "MEDIA_OCI_INDEX",
    "MEDIA_OCI_LAYER",
    "MEDIA_OCI_LAYER_GZIP",
    "MEDIA_OCI_LAYER_ZSTD",
    "MEDIA_OCI_MANIFEST",
    "Descriptor",
    "ImageConfig",
    "Index",
    "Manifest",
    "Platform",
    "layer_compression",
    "parse_index_or_manifest",
]

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
MEDIA_OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
MEDIA_OCI_LAYER_ND_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MEDIA_DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
MEDIA_DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

INDEX_TYPES = frozenset({MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST})
MANIFEST_TYPES = frozenset({MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST})
CONFIG_TYPES = frozenset({MEDIA_OCI_CONFIG, MEDIA_DOCKER_CONFIG})
# media type -> compression of the tar stream
_LAYER_COMPRESSION = {
    MEDIA_OCI_LAYER: "none",
    MEDIA_OCI_LAYER_ND: "none",
    MEDIA_DOCKER_LAYER_TAR: "none",
    MEDIA_OCI_LAYER_GZIP: "gzip",
    MEDIA_OCI_LAYER_ND_GZIP: "gzip",
    MEDIA_DOCKER_LAYER_GZIP: "gzip",
    MEDIA_DOCKER_FOREIGN: "gzip",
    MEDIA_OCI_LAYER_ZSTD: "zstd",
    MEDIA_OCI_LAYER_ND_ZSTD: "zstd",
}
LAYER_TYPES = frozenset(_LAYER_COMPRESSION)


def layer_compression(media_type: str) -> str:
    """"none", "gzip" or "zstd" for a layer media type; unknown layer types are refused."""
    try:
        return _LAYER_COMPRESSION[media_type]
    except KeyError:
        raise UnsupportedMediaType(f"layer media type {media_type!r} is not supported") from None


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what}: must be a JSON object")
    return value


def _str(doc: dict[str, Any], key: str, what: str, *, required: bool = True) -> str | None:
    value = doc.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what}.{key}: must be a non-empty string")
    return value


def _loads(data: bytes, what: str) -> dict[str, Any]:
    try:
        return _obj(json.loads(data), what)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{what}: not valid JSON: {exc}") from None


@dataclass(frozen=True)
class Platform:
    """os/architecture[/variant] of an image; the default pull target is the host's."""

    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse `linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidArgument(f"platform {text!r}: want os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None).normalized()

    @classmethod
    def host(cls) -> Platform:
        """The platform this machine runs (containers default to it)."""
        machine = _host_platform.machine().lower()
        arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
            machine, machine
        )
        return cls("linux", arch, "v7" if machine == "armv7l" else None).normalized()

    @classmethod
    def from_json(cls, doc: dict[str, Any], what: str) -> Platform:
        """From a descriptor's `platform` object or an image config's os/architecture."""
        os_ = _str(doc, "os", what) or ""
        arch = _str(doc, "architecture", what) or ""
        variant = doc.get("variant")
        return cls(os_, arch, variant if isinstance(variant, str) and variant else None)

    def normalized(self) -> Platform:
        """Collapse spellings that mean the same machine (arm64 is arm64/v8)."""
        variant = self.variant
        if self.architecture == "arm64" and variant == "v8":
            variant = None
        return Platform(self.os, self.architecture, variant)

    def matches(self, other: Platform) -> bool:
        """True if an image for `other` runs here; a variant we do not ask for is accepted."""
        a, b = self.normalized(), other.normalized()
        if (a.os, a.architecture) != (b.os, b.architecture):
            return False
        return a.variant is None or a.variant == b.variant

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    """A pointer to content: media type, digest and size (plus platform in an index)."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, value: Any, what: str) -> Descriptor:
        """Validate a descriptor object; the digest is checked so paths built from it are safe."""
        doc = _obj(value, what)
        media_type = _str(doc, "mediaType", what) or ""
        digest = parse_digest(_str(doc, "digest", what) or "", what=f"{what}.digest")
        size = doc.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidArgument(f"{what}.size: must be a non-negative integer")
        platform = None
        if isinstance(doc.get("platform"), dict):
            platform = Platform.from_json(doc["platform"], f"{what}.platform")
        annotations = doc.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise InvalidArgument(f"{what}.annotations: must map strings to strings")
        urls = doc.get("urls") or []
        return cls(media_type, digest, size, platform, dict(annotations), tuple(map(str, urls)))

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this descriptor, as written into manifests and index.json."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.platform is not None:
            plat: dict[str, Any] = {"architecture": self.platform.architecture,
                                    "os": self.platform.os}
            if self.platform.variant:
                plat["variant"] = self.platform.variant
            out["platform"] = plat
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.urls:
            out["urls"] = list(self.urls)
        return out


@dataclass(frozen=True)
class Index:
    """An OCI index or Docker manifest list: one manifest per platform."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    raw: bytes

    @classmethod
    def parse(cls, data: bytes, media_type: str | None = None) -> Index:
        """Parse an index; `media_type` is the transport's Content-Type if there was one."""
        doc = _loads(data, "index")
        mt = doc.get("mediaType") or media_type or MEDIA_OCI_INDEX
        if mt not in INDEX_TYPES:
            raise UnsupportedMediaType(f"index: media type {mt!r} is not an index")
        items = doc.get("manifests")
        if not isinstance(items, list):
            raise InvalidArgument("index.manifests: must be a list")
        return cls(mt, tuple(Descriptor.from_json(m, f"index.manifests[{i}]")
                             for i, m in enumerate(items)), data)

    def select(self, want: Platform) -> Descriptor:
        """The manifest for `want`; the first match wins, as in Docker (index order)."""
        candidates = [d for d in self.manifests if d.media_type in MANIFEST_TYPES
                      or d.media_type not in INDEX_TYPES]
        for d in candidates:
            if d.platform is not None and want.matches(d.platform):
                return d
        offered = ", ".join(str(d.platform) for d in candidates if d.platform) or "none"
        raise NotFound(f"no manifest for platform {want} in index (offers: {offered})")


@dataclass(frozen=True)
class Manifest:
    """An image manifest: one config and the layers bottom to top."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    raw: bytes

    @classmethod
    def parse(cls, data: bytes, media_type: str | None = None) -> Manifest:
        """Parse and validate; schema1 and other unknown manifests are refused by name."""
        doc = _loads(data, "manifest")
        mt = doc.get("mediaType") or media_type or MEDIA_OCI_MANIFEST
        if mt not in MANIFEST_TYPES:
            raise UnsupportedMediaType(f"manifest: media type {mt!r} is not an image manifest")
        if doc.get("schemaVersion") != 2:
            raise UnsupportedMediaType("manifest: only schemaVersion 2 is supported")
        config = Descriptor.from_json(doc.get("config"), "manifest.config")
        items = doc.get("layers")
        if not isinstance(items, list):
            raise InvalidArgument("manifest.layers: must be a list")
        layers = tuple(Descriptor.from_json(x, f"manifest.layers[{i}]")
                       for i, x in enumerate(items))
        for layer in layers:
            layer_compression(layer.media_type)  # refuse unknown layer types up front
        return cls(mt, config, layers, data)


@dataclass(frozen=True)
class ImageConfig:
    """The image config: platform, run defaults (`config`) and the uncompressed layer digests."""

    platform: Platform
    diff_ids: tuple[str, ...]
    config: dict[str, Any]
    raw: bytes

    @classmethod
    def parse(cls, data: bytes) -> ImageConfig:
        """Parse and validate the parts the runtime depends on."""
        doc = _loads(data, "image config")
        platform = Platform.from_json(doc, "image config")
        rootfs = _obj(doc.get("rootfs"), "image config.rootfs")
        if rootfs.get("type") != "layers":
            raise InvalidArgument("image config.rootfs.type: must be 'layers'")
        ids = rootfs.get("diff_ids")
        if not isinstance(ids, list):
            raise InvalidArgument("image config.rootfs.diff_ids: must be a list")
        diff_ids = tuple(parse_digest(x, what=f"image config.rootfs.diff_ids[{i}]")
                         for i, x in enumerate(ids))
        run = doc.get("config") or {}
        return cls(platform, diff_ids, _obj(run, "image config.config"), data)

    @property
    def doc(self) -> dict[str, Any]:
        """The whole config document (history, created, author...)."""
        return _obj(json.loads(self.raw), "image config")


def parse_index_or_manifest(data: bytes, media_type: str | None) -> Index | Manifest:
    """Decide from the document (then the transport's type) whether it is an index."""
    doc = _loads(data, "manifest")
    mt = doc.get("mediaType") or media_type
    if mt in INDEX_TYPES or (mt is None and "manifests" in doc):
        return Index.parse(data, mt)
    return Manifest.parse(data, mt)
