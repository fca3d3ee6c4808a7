"""Image archives: docker-archive (`docker save`) and OCI image layout, both ways, and rootfs
import (`docker import`).

Loading copies blobs into the content store through verifying writers (an OCI layout names every
blob by digest, and each is checked) and unpacks before naming, so a loaded image is as
trustworthy as a pulled one. Paths inside an archive are only ever used to look up members,
never to write, so a hostile archive cannot place files anywhere.

    docker-archive                           OCI layout
      manifest.json  [{Config, RepoTags,       oci-layout   {"imageLayoutVersion": "1.0.0"}
                       Layers}]                index.json   descriptors + ref.name annotations
      repositories   {repo: {tag: id}}         blobs/sha256/<hex>
      <hex>.json     config
      <id>/layer.tar uncompressed layers
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from .content import ContentStore
from .digest import parse_digest
from .errors import InvalidArgument, InvalidReference, NotFound
from .manifest import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    MEDIA_OCI_INDEX,
    Descriptor,
    Index,
    Manifest,
    layer_compression,
    parse_index_or_manifest,
)
from .progress import ProgressCallback, emit, reading
from .reference import Reference
from .unpack import decompressed, detect_compression

if TYPE_CHECKING:
    from .store import Image, ImageStore, LayerBlob

__all__ = ["import_rootfs", "load", "save", "store_layer"]

_CHUNK = 1 << 20
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# -- layers --------------------------------------------------------------------------------

def store_layer(content: ContentStore, tar: BinaryIO, compression: str = "gzip") -> LayerBlob:
    """Store a layer tar (whatever its compression) compressed as asked, computing the diff id
    on the way; one pass, nothing held in memory.
    """
    from .store import LayerBlob, layer_descriptor

    if compression not in ("none", "gzip", "zstd"):
        raise InvalidArgument(f"layer compression {compression!r}: want none, gzip or zstd")
    src = decompressed(tar)
    diff = hashlib.sha256()
    compressor: Any
    if compression == "gzip":
        # level 1: several times faster than 6 for a few percent of size
        compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    elif compression == "zstd":
        import zstandard

        compressor = zstandard.ZstdCompressor(level=3).compressobj()
    else:
        compressor = None
    with content.writer(f"layer-{uuid.uuid4().hex}") as w:
        try:
            while chunk := src.read(_CHUNK):
                diff.update(chunk)
                w.write(compressor.compress(chunk) if compressor else chunk)
            if compressor is not None:
                w.write(compressor.flush())
            digest = w.commit()
        except BaseException:
            w.abort()
            raise
    size = content.info(digest).size
    return LayerBlob(layer_descriptor(digest, size, compression), "sha256:" + diff.hexdigest())


# -- reading archives ------------------------------------------------------------------------

class _Source:
    """Members of an archive, whether a directory or a (compressed) tar."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tar: tarfile.TarFile | None = None
        self._names: dict[str, tarfile.TarInfo] = {}
        if not path.is_dir():
            try:
                self._tar = tarfile.open(path, "r:*")
            except (tarfile.TarError, OSError) as exc:
                raise InvalidArgument(f"{path}: not a tar archive or directory: {exc}") from None
            for m in self._tar.getmembers():
                self._names[_norm(m.name)] = m

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()

    def exists(self, name: str) -> bool:
        if self._tar is not None:
            m = self._names.get(_norm(name))
            return m is not None and m.isreg()
        return self._file(name).is_file()

    def open(self, name: str) -> BinaryIO:
        if self._tar is not None:
            m = self._names.get(_norm(name))
            f = self._tar.extractfile(m) if m is not None and m.isreg() else None
            if f is None:
                raise NotFound(f"{self.path}: archive has no file {name!r}")
            return cast(BinaryIO, f)
        try:
            return open(self._file(name), "rb")
        except FileNotFoundError:
            raise NotFound(f"{self.path}: archive has no file {name!r}") from None

    def size(self, name: str) -> int | None:
        if self._tar is not None:
            m = self._names.get(_norm(name))
            return m.size if m is not None else None
        try:
            return self._file(name).stat().st_size
        except OSError:
            return None

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        with self.open(name) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise InvalidArgument(f"{self.path}: {name} is larger than {limit} bytes")
        return data

    def _file(self, name: str) -> Path:
        p = (self.path / _norm(name)).resolve()
        if not p.is_relative_to(self.path.resolve()):
            raise InvalidArgument(f"{self.path}: member {name!r} points outside the archive")
        return p


def _norm(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"archive member {name!r}: '..' is not allowed")
    return "/".join(parts)


def load(store: ImageStore, path: Path, *, name: str | None = None,
         progress: ProgressCallback | None = None) -> list[Image]:
    """Load every image of a docker-archive or OCI layout; returns them (named ones by
    name, unnamed ones under their digest).
    """
    if not path.exists():
        raise NotFound(f"{path}: no such file or directory")
    src = _Source(path)
    try:
        with store.lease():
            if src.exists("index.json") and src.exists("oci-layout"):
                return _load_oci(store, src, name, progress)
            if src.exists("manifest.json"):
                return _load_docker(store, src, progress)
        raise InvalidArgument(f"{path}: neither a docker-archive (manifest.json) nor an OCI "
                              "layout (oci-layout, index.json)")
    finally:
        src.close()


def _load_docker(store: ImageStore, src: _Source, progress: ProgressCallback | None
                 ) -> list[Image]:
    from .store import LayerBlob, layer_descriptor

    try:
        entries = json.loads(src.read("manifest.json"))
    except ValueError as exc:
        raise InvalidArgument(f"{src.path}: manifest.json is not JSON: {exc}") from None
    if not isinstance(entries, list):
        raise InvalidArgument(f"{src.path}: manifest.json must be a list")
    images = []
    for i, entry in enumerate(entries):
        what = f"{src.path}: manifest.json[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) or \
                not isinstance(entry.get("Layers"), list):
            raise InvalidArgument(f"{what}: needs Config and Layers")
        config = json.loads(src.read(entry["Config"]))
        layers = []
        for layer_path in entry["Layers"]:
            with src.open(str(layer_path)) as f:
                head = f.read(4)
            compression = detect_compression(head)
            with src.open(str(layer_path)) as f:
                digest = store.content.ingest_stream(
                    reading(f, progress, "load", _layer_item(str(layer_path)),
                            src.size(str(layer_path))),
                    ref=f"load-{uuid.uuid4().hex}")
            size = store.content.info(digest).size
            layers.append(layer_descriptor(digest, size, compression))
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        if len(diff_ids) != len(layers):
            raise InvalidArgument(f"{what}: config lists {len(diff_ids)} layers, archive has "
                                  f"{len(layers)}")
        # the config's diff ids are the truth; unpack verifies each layer against them
        blobs = [LayerBlob(desc, d) for desc, d in zip(layers, diff_ids, strict=True)]
        tags = entry.get("RepoTags") or [None]
        first: Image | None = None
        for tag in tags:
            canonical = str(Reference.parse(tag)) if tag else None
            if first is None:
                first = store.commit_image(canonical, config, blobs, progress=progress)
                images.append(first)
            elif canonical:
                store.set_name(canonical, first.target)
                images.append(store.get(canonical))
    return images


def _layer_item(path: str) -> str:
    """The digest-like part of a docker-archive layer's path (`blobs/sha256/HEX`, or the
    older `HEX/layer.tar`), so a progress line names the layer rather than a long path."""
    parts = path.split("/")
    for i, part in enumerate(parts):
        if len(part) == 64 and all(c in "0123456789abcdef" for c in part):
            return f"sha256:{part}" if i and parts[i - 1] == "sha256" else part[:12]
    return path


def _load_oci(store: ImageStore, src: _Source, name: str | None,
              progress: ProgressCallback | None) -> list[Image]:
    index = Index.parse(src.read("index.json"), MEDIA_OCI_INDEX)
    images = []
    for desc in index.manifests:
        _copy_tree(store, src, desc, progress)
        image_name = _oci_name(desc, name)
        images.append(store.register(image_name, Descriptor(desc.media_type, desc.digest,
                                                            desc.size), progress=progress))
    return images


def _oci_name(desc: Descriptor, name: str | None) -> str | None:
    full = desc.annotations.get(ANNOTATION_IMAGE_NAME)
    ref_name = desc.annotations.get(ANNOTATION_REF_NAME)
    with contextlib.suppress(InvalidReference):
        if full:
            return str(Reference.parse(full))
        if ref_name and ("/" in ref_name or ":" in ref_name):
            return str(Reference.parse(ref_name))
        if name:
            base = Reference.parse(name, default_tag=False)
            if ref_name and base.tag is None and base.digest is None:
                return str(base.with_tag(ref_name))
            return str(Reference.parse(name))
    return None


def _copy_tree(store: ImageStore, src: _Source, desc: Descriptor,
               progress: ProgressCallback | None, *, optional: bool = False) -> None:
    """Copy a descriptor and everything it references (verified); an index's children that
    the layout lacks are skipped (tools save one platform of a multi-platform image).
    """
    blob = "blobs/sha256/" + parse_digest(desc.digest).split(":", 1)[1]
    if not store.content.exists(desc.digest):
        if not src.exists(blob):
            if optional:
                return
            raise NotFound(f"{src.path}: blob {desc.digest} is missing")
        with src.open(blob) as f:
            store.content.ingest_stream(reading(f, progress, "load", desc.digest, desc.size),
                                        ref=f"load-{desc.digest}", expected=desc.digest,
                                        size=desc.size)
    if desc.media_type in INDEX_TYPES | MANIFEST_TYPES:
        doc = parse_index_or_manifest(store.content.read(desc.digest), desc.media_type)
        if isinstance(doc, Index):
            for child in doc.manifests:
                _copy_tree(store, src, child, progress, optional=True)
        else:
            _copy_tree(store, src, doc.config, progress)
            for layer in doc.layers:
                _copy_tree(store, src, layer, progress)


# -- writing archives ------------------------------------------------------------------------

def save(store: ImageStore, refs: list[str], path: Path, *, format: str = "docker-archive"
         ) -> None:
    """Write images to a tar at `path`, atomically (tmp + rename)."""
    if format not in ("docker-archive", "oci"):
        raise InvalidArgument(f"archive format {format!r}: want docker-archive or oci")
    if not refs:
        raise InvalidArgument("save: no images given")
    images = [(ref, store.get(ref)) for ref in refs]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w",
                                                      format=tarfile.PAX_FORMAT) as tf:
            if format == "oci":
                _save_oci(store, images, tf)
            else:
                _save_docker(store, images, tf)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data))


def _add_stream(tf: tarfile.TarFile, name: str, f: BinaryIO, size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    tf.addfile(info, f)


def _add_blob(store: ImageStore, tf: tarfile.TarFile, digest: str, written: set[str]) -> None:
    if digest in written:
        return
    written.add(digest)
    with store.content.open(digest) as f:
        _add_stream(tf, "blobs/sha256/" + digest[7:], f, store.content.info(digest).size)


def _save_oci(store: ImageStore, images: list[tuple[str, Image]], tf: tarfile.TarFile) -> None:
    written: set[str] = set()
    manifests = []
    for _ref, image in images:
        target = image.target
        if target.media_type in INDEX_TYPES:
            index = Index.parse(store.content.read(target.digest), target.media_type)
            if all(store.content.exists(d.digest) for d in index.manifests):
                _add_blob(store, tf, target.digest, written)
            else:  # a partially pulled index: save the one platform we have
                target = next(d for d in index.manifests if d.digest == image.manifest_digest)
        _add_blob(store, tf, image.manifest_digest, written)
        for desc in _present_children(store, image):
            _add_blob(store, tf, desc, written)
        annotations = {}
        if image.name and not image.name.startswith("sha256:"):
            parsed = Reference.parse(image.name)
            annotations[ANNOTATION_IMAGE_NAME] = str(parsed)
            if parsed.tag:
                annotations[ANNOTATION_REF_NAME] = parsed.tag
        manifests.append(Descriptor(target.media_type, target.digest, target.size,
                                    target.platform, annotations).to_json())
    _add_bytes(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    index_doc = {"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": manifests}
    _add_bytes(tf, "index.json", json.dumps(index_doc, separators=(",", ":")).encode())


def _present_children(store: ImageStore, image: Image) -> Iterator[str]:
    """Config and layers of the image, plus other platforms' manifests of a full index."""
    yield image.config_digest
    for layer in image.layers:
        yield layer.digest
    if image.target.media_type in INDEX_TYPES:
        index = Index.parse(store.content.read(image.target.digest), image.target.media_type)
        if all(store.content.exists(d.digest) for d in index.manifests):
            for d in index.manifests:
                if d.digest == image.manifest_digest:
                    continue
                yield d.digest
                m = Manifest.parse(store.content.read(d.digest), d.media_type)
                yield m.config.digest
                for layer in m.layers:
                    if store.content.exists(layer.digest):
                        yield layer.digest


def _save_docker(store: ImageStore, images: list[tuple[str, Image]], tf: tarfile.TarFile
                 ) -> None:
    written: set[str] = set()
    entries = []
    repositories: dict[str, dict[str, str]] = {}
    for _ref, image in images:
        config_name = image.config_digest[7:] + ".json"
        if config_name not in written:
            written.add(config_name)
            _add_bytes(tf, config_name, store.content.read(image.config_digest))
        layer_paths = []
        for layer, diff_id in zip(image.layers, image.diff_ids, strict=True):
            member = f"{diff_id[7:]}/layer.tar"
            layer_paths.append(member)
            if member in written:
                continue
            written.add(member)
            _add_layer_uncompressed(store, tf, member, layer)
        tags = []
        if image.name and not image.name.startswith("sha256:"):
            parsed = Reference.parse(image.name)
            if parsed.tag is not None:
                familiar = Reference(parsed.registry, parsed.repository, parsed.tag).familiar()
                tags.append(familiar)
                repo = familiar.rsplit(":", 1)[0]
                if layer_paths:
                    repositories.setdefault(repo, {})[parsed.tag] = layer_paths[-1].split("/")[0]
        entries.append({"Config": config_name, "RepoTags": tags or None, "Layers": layer_paths})
    _add_bytes(tf, "manifest.json", json.dumps(entries).encode())
    if repositories:
        _add_bytes(tf, "repositories", json.dumps(repositories).encode())


def _add_layer_uncompressed(store: ImageStore, tf: tarfile.TarFile, member: str,
                            layer: Descriptor) -> None:
    """docker-archive layers are plain tars; a compressed blob is expanded to a temporary
    file first because a tar header needs the size before the data.
    """
    if layer_compression(layer.media_type) == "none":
        with store.content.open(layer.digest) as f:
            _add_stream(tf, member, f, layer.size)
        return
    with store.content.open(layer.digest) as f, tempfile.TemporaryFile(dir=store.root) as tmp:
        shutil.copyfileobj(decompressed(f), tmp, _CHUNK)
        size = tmp.tell()
        tmp.seek(0)
        _add_stream(tf, member, tmp, size)


# -- import --------------------------------------------------------------------------------

def import_rootfs(store: ImageStore, tar: str | os.PathLike[str] | BinaryIO, name: str | None,
                  *, config: dict[str, Any] | None = None,
                  progress: ProgressCallback | None = None) -> Image:
    """A one-layer image from a rootfs tarball, like `docker import`. `config` is merged into
    a default config (Env PATH, Cmd from the caller, history saying where it came from).
    """
    canonical = str(Reference.parse(name)) if name else None
    with store.lease():
        if isinstance(tar, (str, os.PathLike)):
            with open(tar, "rb") as f:
                layer = store_layer(store.content, f)
        else:
            layer = store_layer(store.content, tar)
        emit(progress, "import", layer.descriptor.digest, layer.descriptor.size,
             layer.descriptor.size)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        doc: dict[str, Any] = {
            "architecture": store.platform.architecture,
            "os": "linux",
            "created": now,
            "config": {"Env": [DEFAULT_PATH]},
            "history": [{"created": now, "created_by": "llmos import",
                         "comment": "Imported from tarball"}],
        }
        if store.platform.variant:
            doc["variant"] = store.platform.variant
        for key, value in (config or {}).items():
            if key == "config" and isinstance(value, dict):
                doc["config"].update(value)
            else:
                doc[key] = value
        return store.commit_image(canonical, doc, [layer], progress=progress)
