"""Pull and push: the orchestration between a registry `Repository` and the `ImageStore`.

Pull: resolve the reference (an index picks the platform), verify every manifest's digest
against the reference or the registry's own Docker-Content-Digest (a registry that lies about
it is refused), download layers in parallel threads into resumable ingests, and unpack each
layer as soon as it and the ones below it are present. Only then is the name recorded.

Push: blobs first (skipped when the repository has them, mounted across repositories when we
know another repository of the same registry has them), then manifests, children before the
index that lists them.
"""

from __future__ import annotations

import hashlib
import http.client
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from .content import Writer
from .digest import parse_digest
from .errors import (
    DigestMismatch,
    ImageError,
    InvalidArgument,
    RegistryError,
    RegistryUnreachable,
)
from .manifest import (
    INDEX_TYPES,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    parse_index_or_manifest,
)
from .progress import ProgressCallback, emit, reading
from .reference import Reference
from .registry import RegistryClient, RegistryConfig, Repository

if TYPE_CHECKING:
    from .store import Image, ImageStore

__all__ = ["pull", "push"]

_CHUNK = 1 << 20


class _Cancelled(ImageError):
    """Another layer failed; stop downloading (the partial ingest stays for a resume)."""


def pull(store: ImageStore, ref: Reference, *, progress: ProgressCallback | None = None,
         platform: Platform | None = None, config: RegistryConfig | None = None,
         client: RegistryClient | None = None) -> Image:
    """Pull `ref` into `store`; see the module docstring for what is verified."""
    client = client or RegistryClient(config)
    repo = client.repository(ref)
    want = platform or store.platform
    emit(progress, "resolve", str(ref))
    with store.lease():
        repo.ping()
        data, media_type = _fetch_manifest(repo, ref.object, ref.digest, ref)
        target_digest = store.content.write_blob(data)
        doc = parse_index_or_manifest(data, media_type)
        target = Descriptor(doc.media_type, target_digest, len(data))
        if isinstance(doc, Index):
            desc = doc.select(want)
            mdata, mtype = _fetch_manifest(repo, desc.digest, desc.digest, ref)
            store.content.write_blob(mdata)
            manifest = Manifest.parse(mdata, mtype or desc.media_type)
        else:
            manifest = doc
        cfg_bytes = _fetch_small_blob(store, repo, manifest.config, progress)
        config_doc = ImageConfig.parse(cfg_bytes)
        _download_and_unpack(store, repo, manifest, config_doc, progress, client)
        for blob in (manifest.config, *manifest.layers):
            store.record_source(blob.digest, ref.registry, ref.repository)
        store.set_name(str(ref), target)
    emit(progress, "done", str(ref))
    return store.get(str(ref), platform=want)


def _fetch_manifest(repo: Repository, obj: str, expected: str | None, ref: Reference
                    ) -> tuple[bytes, str | None]:
    data, media_type, header_digest = repo.get_manifest(obj)
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if expected is not None and actual != expected:
        raise DigestMismatch(f"registry {ref.registry}: manifest {obj} of {ref.repository} has "
                             f"digest {actual}, not the {expected} asked for")
    if header_digest and header_digest.startswith("sha256:") and header_digest != actual:
        raise DigestMismatch(f"registry {ref.registry}: manifest {ref.repository}:{obj} has "
                             f"digest {actual} but the registry says {header_digest}")
    return data, media_type


def _fetch_small_blob(store: ImageStore, repo: Repository, desc: Descriptor,
                      progress: ProgressCallback | None) -> bytes:
    if not store.content.exists(desc.digest):
        _fetch_blob(store, repo, desc, progress, threading.Event(), 0)
    return store.content.read(desc.digest)


def _download_and_unpack(store: ImageStore, repo: Repository, manifest: Manifest,
                         config: ImageConfig, progress: ProgressCallback | None,
                         client: RegistryClient) -> None:
    stop = threading.Event()
    futures: dict[str, Future[None]] = {}
    workers = max(1, client.config.max_parallel)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llmos-pull")
    try:
        for layer in manifest.layers:
            if layer.digest not in futures:
                futures[layer.digest] = pool.submit(_fetch_blob, store, repo, layer, progress,
                                                    stop, client.config.retries)

        def wait_for(i: int) -> None:
            futures[manifest.layers[i].digest].result()

        store.unpack(manifest, config, wait_for=wait_for, progress=progress)
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _fetch_blob(store: ImageStore, repo: Repository, desc: Descriptor,
                progress: ProgressCallback | None, stop: threading.Event, retries: int) -> None:
    """Download one blob into a resumable ingest; verified and published by commit."""
    digest = parse_digest(desc.digest)
    content = store.content
    if content.exists(digest):
        emit(progress, "exists", digest, desc.size, desc.size)
        return
    with content.writer(f"pull-{digest}", expected=digest, total=desc.size, wait=True) as w:
        if content.exists(digest):  # another puller finished it while we waited
            return
        failures = 0
        while True:
            if stop.is_set():
                raise _Cancelled(f"download of {digest} cancelled")
            try:
                _download(repo, desc, w, progress, stop)
                break
            except (RegistryUnreachable, http.client.HTTPException, ConnectionError,
                    TimeoutError) as exc:
                failures += 1
                if failures > retries:
                    raise RegistryError(
                        f"registry {repo.registry}: download of {digest} failed after "
                        f"{failures} attempts at byte {w.offset} of {desc.size} (kept; a "
                        f"retry resumes there): {exc}") from None
                repo.client._drop(repo.client.scheme(repo.host), repo.host)
        emit(progress, "verify", digest, w.offset, desc.size)
        w.commit(desc.size, digest)
    emit(progress, "downloaded", digest, desc.size, desc.size)


def _download(repo: Repository, desc: Descriptor, w: Writer, progress: ProgressCallback | None,
              stop: threading.Event) -> None:
    if w.offset >= desc.size:
        if w.offset == desc.size:
            return
        w.truncate()
    start = w.offset
    with repo.get_blob(desc.digest, start) as resp:
        if resp.status == 416:  # our partial is longer than the blob: start over
            resp.read(0)
            w.truncate()
            raise http.client.HTTPException("range not satisfiable; restarting")
        if start and resp.status == 206:
            content_range = resp.header("content-range") or ""
            if not content_range.startswith(f"bytes {start}-"):
                w.truncate()
                raise http.client.HTTPException(f"unexpected Content-Range {content_range!r}")
            emit(progress, "resume", desc.digest, start, desc.size)
        elif start:
            w.truncate()  # the registry ignored Range: take the whole blob from byte 0
        # Never accept more than the descriptor promises (+1 to notice the excess).
        budget = desc.size - w.offset + 1
        while budget > 0:
            chunk = resp.read_chunk(min(_CHUNK, budget))
            if not chunk:
                break
            if stop.is_set():
                raise _Cancelled(f"download of {desc.digest} cancelled")
            w.write(chunk)
            budget -= len(chunk)
            emit(progress, "download", desc.digest, w.offset, desc.size)
    if w.offset < desc.size:
        # The response ended cleanly (a cut connection raises IncompleteRead above): the
        # registry serves fewer bytes than the manifest promises. Keep them, refuse the blob.
        raise DigestMismatch(f"registry {repo.registry}: blob {desc.digest} is truncated: "
                             f"served {w.offset} of {desc.size} bytes")


# -- push --------------------------------------------------------------------------------

def push(store: ImageStore, src: str, dest: Reference, *,
         progress: ProgressCallback | None = None, config: RegistryConfig | None = None,
         client: RegistryClient | None = None) -> Descriptor:
    """Push image `src` of the store as `dest`; returns the pushed target descriptor."""
    client = client or RegistryClient(config)
    image = store.get(src)
    target = image.target
    manifests: list[Descriptor] = []
    if target.media_type in INDEX_TYPES:
        index = Index.parse(store.content.read(target.digest), target.media_type)
        if all(store.content.exists(d.digest) for d in index.manifests):
            manifests = list(index.manifests)
        else:  # a partial index cannot be pushed: the registry checks its children
            target = next(d for d in index.manifests if d.digest == image.manifest_digest)
            manifests = [target]
    else:
        manifests = [target]
    blobs: dict[str, Descriptor] = {}
    for m in manifests:
        doc = Manifest.parse(store.content.read(m.digest), m.media_type)
        for blob in (doc.config, *doc.layers):
            blobs.setdefault(blob.digest, blob)
    sources = {d: tuple(store.sources(d, dest.registry)) for d in blobs}
    mount_from = tuple(sorted({s for srcs in sources.values() for s in srcs
                               if s != dest.repository}))
    repo = client.repository(dest, "pull,push", mount_from)
    emit(progress, "resolve", str(dest))
    with store.lease():
        repo.ping()
        with ThreadPoolExecutor(max_workers=max(1, client.config.max_parallel),
                                thread_name_prefix="llmos-push") as pool:
            list(pool.map(lambda b: _push_blob(store, repo, b, sources[b.digest], progress),
                          blobs.values()))
        for m in manifests:
            if m.digest != target.digest:
                _put_manifest(store, repo, m, m.digest)
        _put_manifest(store, repo, target, dest.digest or dest.tag or "latest")
        for d in blobs:
            store.record_source(d, dest.registry, dest.repository)
    emit(progress, "done", str(dest))
    return Descriptor(target.media_type, target.digest, target.size)


def _push_blob(store: ImageStore, repo: Repository, blob: Descriptor, sources: tuple[str, ...],
               progress: ProgressCallback | None) -> None:
    if repo.blob_exists(blob.digest):
        emit(progress, "exists", blob.digest, blob.size, blob.size)
        return
    location: str | None = None
    for source in sources:
        if source == repo.name:
            continue
        location = repo.mount_blob(blob.digest, source)
        if location is None:
            emit(progress, "mount", blob.digest, blob.size, blob.size, f"from {source}")
            return
        break
    if location is None:
        location = repo.start_upload()
    with store.content.open(blob.digest) as f:
        repo.finish_upload(location, blob.digest,
                           reading(f, progress, "upload", blob.digest, blob.size), blob.size)
    emit(progress, "uploaded", blob.digest, blob.size, blob.size)


def _put_manifest(store: ImageStore, repo: Repository, desc: Descriptor, obj: str) -> None:
    data = store.content.read(desc.digest)
    returned = repo.put_manifest(obj, data, desc.media_type)
    if returned and returned != desc.digest:
        raise DigestMismatch(f"registry {repo.registry}: stored manifest {obj} as {returned}, "
                             f"we sent {desc.digest}")
    if not data:
        raise InvalidArgument(f"manifest {desc.digest} is empty")
