"""The image store: names -> manifests over the content store, layers unpacked as snapshots.

This is the API the daemon and CLI call (pull, push, load, save, import_rootfs, list, get,
tag, remove, prune). Blobs live in `ContentStore` (`<root>/blobs/sha256/<hex>`), layers in the
overlay `Snapshotter` (`<root>/snapshots`), and the names in SQLite (`<root>/images.db`).

Why SQLite rather than JSON files: tagging, untagging and garbage collection change several
records that must change together, the daemon and an in-process client may share one root,
and SQLite gives both transactions and cross-process locking with nothing to install. The
schema, migrated by PRAGMA user_version:

    images          (version 1)
      name        TEXT PRIMARY KEY   canonical reference (`docker.io/library/nginx:latest`),
                                     or the manifest digest for an unnamed loaded image
      media_type  TEXT               of the target: an index or a manifest
      digest      TEXT               the target's digest (what a registry calls the image)
      size        INTEGER
      created     REAL
    blob_sources    (version 1)      where a blob was seen, for cross-repository mount on push
      digest      TEXT, registry TEXT, repository TEXT   PRIMARY KEY (all three)

Garbage collection runs under an exclusive flock on `<root>/gc.lock`; every operation that
adds content holds it shared, so prune never deletes the blobs of a pull in progress.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import json
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from . import sqlitedb
from .content import ContentStore
from .digest import chain_ids, parse_digest
from .errors import (
    AlreadyExists,
    DigestMismatch,
    FailedPrecondition,
    InvalidArgument,
    InvalidReference,
    NotFound,
)
from .manifest import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_LAYER_ZSTD,
    MEDIA_OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    parse_index_or_manifest,
)
from .progress import ProgressCallback, emit
from .reference import Reference
from .snapshot import Snapshotter
from .unpack import apply_layer

if TYPE_CHECKING:
    from .registry import RegistryConfig

__all__ = ["Image", "ImageStore", "LayerBlob", "PruneReport"]

_MIGRATIONS: list[str] = [
    """
    CREATE TABLE images (
        name TEXT PRIMARY KEY,
        media_type TEXT NOT NULL,
        digest TEXT NOT NULL,
        size INTEGER NOT NULL,
        created REAL NOT NULL
    );
    CREATE INDEX images_digest ON images(digest);
    CREATE TABLE blob_sources (
        digest TEXT NOT NULL,
        registry TEXT NOT NULL,
        repository TEXT NOT NULL,
        PRIMARY KEY (digest, registry, repository)
    );
    """,
]
_HEX_PREFIX = re.compile(r"^(?:sha256:)?[a-f0-9]{4,64}$")


@dataclass(frozen=True)
class Image:
    """A stored image resolved for one platform: everything needed to run or push it."""

    name: str | None
    target: Descriptor
    manifest_digest: str
    manifest: Manifest
    config_digest: str
    config: ImageConfig
    created: float

    @property
    def id(self) -> str:
        """The image id, as Docker defines it: the config digest."""
        return self.config_digest

    @property
    def layers(self) -> tuple[Descriptor, ...]:
        """Layer blobs, bottom first."""
        return self.manifest.layers

    @property
    def diff_ids(self) -> tuple[str, ...]:
        """Digests of the uncompressed layers, bottom first."""
        return self.config.diff_ids

    @property
    def chain_ids(self) -> list[str]:
        """Snapshot names of the layer stack, bottom first."""
        return chain_ids(list(self.config.diff_ids))

    @property
    def chain_id(self) -> str | None:
        """The committed snapshot to prepare a container on (None: an image without layers)."""
        ids = self.chain_ids
        return ids[-1] if ids else None

    @property
    def size(self) -> int:
        """Bytes of config and (compressed) layers."""
        return self.manifest.config.size + sum(layer.size for layer in self.layers)

    @property
    def reference(self) -> Reference | None:
        """The parsed name, for images that have one."""
        if self.name is None or self.name.startswith("sha256:"):
            return None
        return Reference.parse(self.name)


@dataclass(frozen=True)
class LayerBlob:
    """A layer stored in the content store, with the diff id its config must list."""

    descriptor: Descriptor
    diff_id: str


@dataclass(frozen=True)
class PruneReport:
    """What garbage collection removed."""

    blobs: tuple[str, ...]
    snapshots: tuple[str, ...]
    ingests: int
    bytes_freed: int


class ImageStore:
    """Images under `root`. `snapshotter` defaults to an overlay one at `<root>/snapshots`;
    `platform` is what pulls and `get` select from multi-platform images (default: the host).
    """

    def __init__(self, root: str | os.PathLike[str], *, snapshotter: Snapshotter | None = None,
                 platform: Platform | None = None,
                 registry_config: RegistryConfig | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.content = ContentStore(self.root)
        self.snapshotter = snapshotter or Snapshotter(self.root / "snapshots")
        self.platform = platform or Platform.host()
        self._registry_config = registry_config
        self._db_path = self.root / "images.db"
        sqlitedb.migrate(self._db_path, _MIGRATIONS)

    # -- transactions and the gc lock ------------------------------------------------------
    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return sqlitedb.transaction(self._db_path)

    @contextlib.contextmanager
    def lease(self, *, exclusive: bool = False) -> Iterator[None]:
        """Hold content against garbage collection (shared), or collect (exclusive)."""
        fd = os.open(self.root / "gc.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    # -- names -----------------------------------------------------------------------------
    def list(self) -> builtins.list[Image]:
        """Every named image, resolved for the store's platform (unresolvable ones skipped)."""
        with self._tx() as db:
            rows = db.execute("SELECT name, media_type, digest, size, created FROM images "
                              "ORDER BY name").fetchall()
        out = []
        for row in rows:
            with contextlib.suppress(NotFound, InvalidArgument):
                out.append(self._resolve(row))
        return out

    def get(self, ref: str, *, platform: Platform | None = None) -> Image:
        """An image by name (`nginx` means docker.io/library/nginx:latest), by `name@digest`,
        by manifest digest, or by image id or a unique prefix of it (as `docker run 1a2b`).
        """
        return self._resolve(self._find(ref), platform)

    def _find(self, ref: str) -> tuple[str, str, str, int, float]:
        with self._tx() as db:
            rows = db.execute("SELECT name, media_type, digest, size, created FROM images"
                              ).fetchall()
        by_name = {r[0]: r for r in rows}
        if ref in by_name:
            return by_name[ref]  # type: ignore[no-any-return]
        parsed: Reference | None
        try:
            parsed = Reference.parse(ref)
        except InvalidReference:
            parsed = None
        if parsed is not None:
            if str(parsed) in by_name:
                return by_name[str(parsed)]  # type: ignore[no-any-return]
            if parsed.digest is not None:
                for r in rows:
                    if r[2] == parsed.digest and _same_repo(r[0], parsed):
                        return r  # type: ignore[no-any-return]
        if _HEX_PREFIX.match(ref):
            hexpart = ref.removeprefix("sha256:")
            hits = {}
            for r in rows:
                for digest in (r[2], self._config_digest_of(r)):
                    if digest and digest[7:].startswith(hexpart):
                        hits[r[2]] = r
            if len(hits) == 1:
                return next(iter(hits.values()))  # type: ignore[no-any-return]
            if len(hits) > 1:
                raise InvalidArgument(f"image id prefix {ref!r} is ambiguous")
        if parsed is None and not _HEX_PREFIX.match(ref):
            Reference.parse(ref)  # raise the reference's own error
        raise NotFound(f"image {ref!r}: no such image")

    def _config_digest_of(self, row: tuple[str, str, str, int, float]) -> str | None:
        with contextlib.suppress(NotFound, InvalidArgument):
            return self._resolve(row).config_digest
        return None

    def tag(self, source: str, name: str) -> Image:
        """Give an existing image another name (`docker tag`)."""
        image = self.get(source)
        self.set_name(str(Reference.parse(name)), image.target)
        return self.get(name)

    def set_name(self, name: str, target: Descriptor) -> None:
        """Point `name` at `target` (an index or manifest that is in the content store)."""
        if target.media_type not in INDEX_TYPES | MANIFEST_TYPES:
            raise InvalidArgument(f"image target: {target.media_type!r} is not a manifest")
        self.content.info(target.digest)
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO images (name, media_type, digest, size, created) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (name, target.media_type, target.digest, target.size, time.time()))

    def remove(self, ref: str, *, force: bool = False, prune: bool = True) -> builtins.list[str]:
        """Remove an image's name (`docker rmi`). By id, every name goes, but only with
        `force` if there are several. Then, by default, unreferenced content is collected.
        """
        row = self._find(ref)
        names = [row[0]]
        try:
            exact = Reference.parse(ref)
            by_id = str(exact) != row[0] and exact.digest is None
        except InvalidReference:
            by_id = True
        if by_id:
            with self._tx() as db:
                names = [r[0] for r in db.execute("SELECT name FROM images WHERE digest = ?",
                                                  (row[2],))]
            if len(names) > 1 and not force:
                raise FailedPrecondition(f"image {ref!r} is referenced by {len(names)} names "
                                         f"({', '.join(names)}); remove by name or force")
        with self._tx() as db:
            for n in names:
                db.execute("DELETE FROM images WHERE name = ?", (n,))
        if prune:
            # Interrupted downloads stay: removing one image must not cost another pull its
            # resume (`image prune` drops them).
            self.prune(ingests=False)
        return names

    # -- resolution ------------------------------------------------------------------------
    def _resolve(self, row: tuple[str, str, str, int, float],
                 platform: Platform | None = None) -> Image:
        name, media_type, digest, size, created = row
        target = Descriptor(media_type, digest, size)
        manifest_desc = self.select_manifest(target, platform)
        manifest = Manifest.parse(self.content.read(manifest_desc.digest),
                                  manifest_desc.media_type)
        config = ImageConfig.parse(self.content.read(manifest.config.digest))
        return Image(name, target, manifest_desc.digest, manifest, manifest.config.digest,
                     config, created)

    def select_manifest(self, target: Descriptor, platform: Platform | None = None
                        ) -> Descriptor:
        """The manifest to use from an index: the wanted platform's, else (for a partially
        pulled index) any present one for the same platform.
        """
        if target.media_type not in INDEX_TYPES:
            return target
        index = Index.parse(self.content.read(target.digest), target.media_type)
        want = platform or self.platform
        present = [d for d in index.manifests if self.content.exists(d.digest)]
        for d in present:
            if d.platform is not None and want.matches(d.platform):
                return d
        raise NotFound(f"image {target.digest}: no manifest for {want} in the store")

    # -- building images (load, import, builder) ------------------------------------------
    def add_layer(self, tar: BinaryIO, *, compression: str = "gzip") -> LayerBlob:
        """Store a layer tar (any compression in, `compression` out) and return its
        descriptor and diff id. The builder commits each step's diff through this.
        """
        from .archive import store_layer

        return store_layer(self.content, tar, compression)

    def commit_image(self, name: str | None, config: dict[str, Any],
                     layers: Sequence[LayerBlob], *, media_type: str = MEDIA_OCI_MANIFEST,
                     progress: ProgressCallback | None = None) -> Image:
        """Write config (its rootfs.diff_ids set from `layers`) and manifest, unpack, and
        name the result. The image is unpacked before it is named, so a named image can
        always be prepared.
        """
        config = dict(config)
        config["rootfs"] = {"type": "layers", "diff_ids": [lb.diff_id for lb in layers]}
        config.setdefault("os", "linux")
        config.setdefault("architecture", self.platform.architecture)
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
        ImageConfig.parse(config_bytes)
        with self.lease():
            config_digest = self.content.write_blob(config_bytes)
            manifest = {
                "schemaVersion": 2,
                "mediaType": media_type,
                "config": {"mediaType": MEDIA_OCI_CONFIG, "digest": config_digest,
                           "size": len(config_bytes)},
                "layers": [lb.descriptor.to_json() for lb in layers],
            }
            manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
            manifest_digest = self.content.write_blob(manifest_bytes)
            target = Descriptor(media_type, manifest_digest, len(manifest_bytes))
            return self.register(name, target, progress=progress)

    def register(self, name: str | None, target: Descriptor, *,
                 progress: ProgressCallback | None = None) -> Image:
        """Unpack an image whose blobs are all present, then name it (unnamed images are
        recorded under their manifest digest so `get` and `prune` know them).
        """
        manifest_desc = self.select_manifest(target)
        manifest = Manifest.parse(self.content.read(manifest_desc.digest),
                                  manifest_desc.media_type)
        config = ImageConfig.parse(self.content.read(manifest.config.digest))
        self.unpack(manifest, config, progress=progress)
        record = str(Reference.parse(name)) if name is not None else target.digest
        self.set_name(record, target)
        return self.get(record)

    def unpack(self, manifest: Manifest, config: ImageConfig, *,
               wait_for: Callable[[int], None] | None = None,
               progress: ProgressCallback | None = None) -> str | None:
        """Make sure every layer is a committed snapshot named by its chain id; returns the
        top chain id. `wait_for(i)` blocks until layer i's blob is present (pipelined pull).
        Each layer's diff id is verified against the config as it is unpacked.
        """
        if len(manifest.layers) != len(config.diff_ids):
            raise InvalidArgument(f"image: manifest has {len(manifest.layers)} layers but "
                                  f"config lists {len(config.diff_ids)} diff ids")
        parent: str | None = None
        sn = self.snapshotter
        for i, (layer, diff_id, chain_id) in enumerate(
                zip(manifest.layers, config.diff_ids, chain_ids(list(config.diff_ids)),
                    strict=True)):
            if wait_for is not None:
                wait_for(i)
            if sn.exists(chain_id):
                parent = chain_id
                continue
            key = f"extract-{uuid.uuid4().hex}-{chain_id}"
            sn.prepare(key, parent)
            try:
                emit(progress, "unpack", layer.digest, 0, layer.size)
                with self.content.open(layer.digest) as f:
                    result = apply_layer(f, sn.upper_dir(key), lowers=sn.lower_dirs(key))
                if result.diff_id != diff_id:
                    raise DigestMismatch(f"layer {layer.digest}: uncompressed digest is "
                                         f"{result.diff_id}, config says {diff_id}")
                try:
                    sn.commit(chain_id, key)
                except AlreadyExists:
                    sn.remove(key)  # another unpack of the same layer won the race
                emit(progress, "done", layer.digest, layer.size, layer.size)
            except BaseException:
                with contextlib.suppress(NotFound):
                    sn.remove(key)
                raise
            parent = chain_id
        return parent

    # -- registry, archives ----------------------------------------------------------------
    def pull(self, ref: str, *, progress: ProgressCallback | None = None,
             platform: Platform | None = None) -> Image:
        """Fetch an image from its registry (layers in parallel, verified), unpack and name
        it. Interrupted downloads resume where they stopped.
        """
        from .transfer import pull

        return pull(self, Reference.parse(ref), progress=progress,
                    platform=platform or self.platform, config=self._registry_config)

    def push(self, ref: str, *, dest: str | None = None,
             progress: ProgressCallback | None = None) -> Descriptor:
        """Upload an image (to `dest`, default its own name); returns the pushed target."""
        from .transfer import push

        return push(self, ref, Reference.parse(dest or ref), progress=progress,
                    config=self._registry_config)

    def load(self, path: str | os.PathLike[str], *, name: str | None = None,
             progress: ProgressCallback | None = None) -> builtins.list[Image]:
        """Load a docker-archive or OCI layout (tar, compressed tar or directory)."""
        from .archive import load

        return load(self, Path(path), name=name, progress=progress)

    def save(self, refs: Sequence[str], path: str | os.PathLike[str], *,
             format: str = "docker-archive") -> None:
        """Write images as a docker-archive or an OCI layout tar ("oci")."""
        from .archive import save

        save(self, list(refs), Path(path), format=format)

    def import_rootfs(self, tar: str | os.PathLike[str] | BinaryIO, name: str | None, *,
                      config: dict[str, Any] | None = None,
                      progress: ProgressCallback | None = None) -> Image:
        """A one-layer image from a rootfs tar (`docker import`), with a default config."""
        from .archive import import_rootfs

        return import_rootfs(self, tar, name, config=config, progress=progress)

    def record_source(self, digest: str, registry: str, repository: str) -> None:
        """Remember that a registry repository has this blob (for cross-repo mounts)."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO blob_sources VALUES (?, ?, ?)",
                       (digest, registry, repository))

    def sources(self, digest: str, registry: str) -> builtins.list[str]:
        """Repositories of `registry` known to hold `digest`."""
        with self._tx() as db:
            return [r[0] for r in db.execute(
                "SELECT repository FROM blob_sources WHERE digest = ? AND registry = ?",
                (digest, registry))]

    # -- garbage collection ----------------------------------------------------------------
    def prune(self, *, ingests: bool = True) -> PruneReport:
        """Delete blobs and layer snapshots no named image uses, and (with `ingests`) the
        partial bytes of interrupted downloads. Snapshots with children (containers' rootfs)
        are kept. Downloads in progress hold a lease, so they finish first.
        """
        with self.lease(exclusive=True):
            with self._tx() as db:
                rows = db.execute("SELECT name, media_type, digest, size, created FROM images"
                                  ).fetchall()
            keep_blobs: set[str] = set()
            keep_chains: set[str] = set()
            for row in rows:
                self._mark(Descriptor(row[1], row[2], row[3]), keep_blobs, keep_chains)
            removed_snaps = self._sweep_snapshots(keep_chains)
            removed_blobs, freed = [], 0
            for blob in builtins.list(self.content.blobs()):
                if blob.digest not in keep_blobs:
                    with contextlib.suppress(NotFound):
                        self.content.delete(blob.digest)
                        removed_blobs.append(blob.digest)
                        freed += blob.size
            dropped = self.content.ingests() if ingests else []
            for ingest in dropped:
                self.content.abort(ingest.ref)
            with self._tx() as db:
                known = [r[0] for r in db.execute("SELECT DISTINCT digest FROM blob_sources")]
                db.executemany("DELETE FROM blob_sources WHERE digest = ?",
                               [(d,) for d in known if d not in keep_blobs])
        return PruneReport(tuple(removed_blobs), tuple(removed_snaps), len(dropped), freed)

    def _mark(self, desc: Descriptor, blobs: set[str], chains: set[str]) -> None:
        if not self.content.exists(desc.digest):
            return
        blobs.add(desc.digest)
        try:
            doc = parse_index_or_manifest(self.content.read(desc.digest), desc.media_type)
        except (InvalidArgument, NotFound):
            return
        if isinstance(doc, Index):
            for child in doc.manifests:
                self._mark(child, blobs, chains)
            return
        blobs.add(doc.config.digest)
        blobs.update(layer.digest for layer in doc.layers)
        with contextlib.suppress(InvalidArgument, NotFound):
            config = ImageConfig.parse(self.content.read(doc.config.digest))
            chains.update(chain_ids(list(config.diff_ids)))

    def _sweep_snapshots(self, keep: set[str]) -> builtins.list[str]:
        removed: builtins.list[str] = []
        while True:
            infos = self.snapshotter.walk()
            parents = {i.parent for i in infos if i.parent}
            victims = [i for i in infos if i.key not in parents and (
                (i.kind == "committed" and i.key not in keep)
                or (i.kind == "active" and i.key.startswith("extract-")))]
            if not victims:
                break
            for v in victims:
                self.snapshotter.remove(v.key)
                removed.append(v.key)
        self.snapshotter.cleanup()
        return removed


def _same_repo(name: str, ref: Reference) -> bool:
    try:
        return Reference.parse(name).name == ref.name
    except InvalidReference:
        return False


def layer_descriptor(digest: str, size: int, compression: str) -> Descriptor:
    """The OCI descriptor of a layer blob we wrote."""
    media = {"none": MEDIA_OCI_LAYER, "gzip": MEDIA_OCI_LAYER_GZIP,
             "zstd": MEDIA_OCI_LAYER_ZSTD}[compression]
    return Descriptor(media, parse_digest(digest), size)
