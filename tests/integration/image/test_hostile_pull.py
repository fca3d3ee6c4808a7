"""Hostile layers through the whole pipeline: crafted images are pushed to a real registry
(Debian's docker-registry on loopback) and pulled into a store that sits inside a sandbox
directory. Every case fingerprints everything in the sandbox outside the store (a `victim`
tree the layers aim at, a sentinel next to the store) and the host's /etc/passwd before and
after, so a passing test proves no byte outside the store changed; each entry is either
refused with an error naming it, or found contained inside its layer directory.

Also here: a Docker schema2 manifest list (not an OCI index) picks linux/amd64.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from llmos.image import Descriptor, ImageStore, NotFound, Platform, UnsafeLayer
from llmos.image.manifest import (
    MEDIA_DOCKER_CONFIG,
    MEDIA_DOCKER_LAYER_GZIP,
    MEDIA_DOCKER_LIST,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_MANIFEST,
)
from llmos.image.testing import (
    TarEntry,
    directory,
    hardlink,
    layer_tar,
    regular,
    symlink,
    tree_fingerprint,
)

from .conftest import Registry, _rmtree, new_store, start_registry, stop_registry

pytestmark = [pytest.mark.root, pytest.mark.slow]

# Enough `..` to climb from any layer directory to `/` (they stop there), then a path.
UP = "../" * 40
HOST_PASSWD = Path("/etc/passwd")
# What hostile entries aimed at the host's /etc/passwd write: the real file plus a comment
# line (skipped by nss_files), so even a broken containment would not lock anyone out.
PAYLOAD = HOST_PASSWD.read_text() + "# written by a hostile llmos test layer\n"


@pytest.fixture(scope="module")
def hostile_registry() -> Iterator[Registry]:
    """One registry for the module (each test pushes to repositories of its own)."""
    workdir = Path(tempfile.mkdtemp(prefix="llmos-hostile-registry-"))
    try:
        reg = start_registry(workdir)
        try:
            yield reg
        finally:
            stop_registry(reg)
    finally:
        _rmtree(workdir)


def _host_passwd() -> str:
    st = HOST_PASSWD.lstat()
    return (f"{st.st_ino} {st.st_mode:o} {st.st_size} {st.st_mtime_ns} "
            + hashlib.sha256(HOST_PASSWD.read_bytes()).hexdigest())


class Sandbox:
    """<root>/store (the store under test), <root>/victim (what hostile layers aim at) and
    <root>/sentinel; `fingerprint` covers all of it except the store, plus /etc/passwd."""

    def __init__(self, root: Path, registry: Registry) -> None:
        self.root = root
        self.victim = root / "victim"
        (self.victim / "etc").mkdir(parents=True)
        (self.victim / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
        (self.victim / "file").write_text("precious\n")
        (self.victim / "dir").mkdir()
        (self.victim / "dir" / "keep").write_text("keep\n")
        os.symlink("file", self.victim / "link")
        (root / "sentinel").write_text("next to the store\n")
        self.store = new_store(root / "store", registry)
        self.before = self.fingerprint()

    @property
    def victim_rel(self) -> str:
        """The victim's absolute path without its leading slash (where a contained entry
        aimed at it lands inside a layer directory)."""
        return str(self.victim).lstrip("/")

    def fingerprint(self) -> dict[str, str]:
        st = self.root.lstat()
        out = {".": f"{stat.filemode(st.st_mode)} {st.st_mtime_ns}",
               "<entries>": " ".join(sorted(os.listdir(self.root))),
               "/etc/passwd": _host_passwd()}
        for name in sorted(os.listdir(self.root)):
            if name == "store":
                continue  # never walked: it may hold a 100 GiB sparse file
            for rel, desc in tree_fingerprint(self.root / name).items():
                out[f"{name}/{rel}"] = desc
        return out

    def assert_outside_untouched(self) -> None:
        assert self.fingerprint() == self.before


@pytest.fixture
def sandbox(tmp_path: Path, hostile_registry: Registry) -> Sandbox:
    (tmp_path / "sandbox").mkdir()
    return Sandbox(tmp_path / "sandbox", hostile_registry)


@pytest.fixture
def forge(tmp_path: Path, hostile_registry: Registry) -> ImageStore:
    """Where hostile images are crafted (blobs written, never unpacked) and pushed from."""
    return new_store(tmp_path / "forge", hostile_registry)


def forge_image(forge: ImageStore, tars: list[bytes], *, arch: str = "amd64",
                os_name: str = "linux", docker: bool = False) -> Descriptor:
    """Store layer tars (gzip), a config and a manifest as they are, without unpacking them;
    `docker` makes a Docker schema2 manifest (Docker media types throughout)."""
    blobs = [forge.add_layer(io.BytesIO(t), compression="gzip") for t in tars]
    config = {"architecture": arch, "os": os_name, "config": {"Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": [b.diff_id for b in blobs]}}
    config_bytes = json.dumps(config).encode()
    media_type = MEDIA_DOCKER_MANIFEST if docker else MEDIA_OCI_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": MEDIA_DOCKER_CONFIG if docker else MEDIA_OCI_CONFIG,
                   "digest": forge.content.write_blob(config_bytes),
                   "size": len(config_bytes)},
        "layers": [{**b.descriptor.to_json(),
                    "mediaType": MEDIA_DOCKER_LAYER_GZIP if docker else MEDIA_OCI_LAYER_GZIP}
                   for b in blobs],
    }
    data = json.dumps(manifest).encode()
    return Descriptor(media_type, forge.content.write_blob(data), len(data))


def push_image(forge: ImageStore, ref: str, target: Descriptor) -> None:
    forge.set_name(ref, target)
    assert forge.push(ref).digest == target.digest


def nothing_half_written(store: ImageStore) -> None:
    """After a refused pull: no image is named, no unpack is left active, no temporary file
    sits among the blobs; what remains is verified content that a prune removes."""
    assert store.list() == []
    assert [s.key for s in store.snapshotter.walk() if s.kind != "committed"] == []
    assert all(len(p.name) == 64 for p in (store.root / "blobs" / "sha256").iterdir())
    assert store.content.ingests() == []
    store.prune()
    assert list(store.content.blobs()) == []
    assert store.snapshotter.walk() == []
    assert list((store.root / "snapshots" / "snapshots").iterdir()) == []


# -- the hostile cases ---------------------------------------------------------------------

@dataclass
class Case:
    """Layers of one hostile image, and what the pull must do with them: refuse with an
    error matching `refused`, or leave `contained` (path in the top layer -> bytes)."""

    layers: list[list[TarEntry]]
    refused: str | None = None
    contained: dict[str, bytes] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)  # kept verbatim in the top layer


def case_dotdot(box: Sandbox) -> Case:
    v = box.victim_rel
    return Case([[regular(f"{UP}{v}/file", b"pwned"),
                  regular(f"a/b/{UP}{v}/new", b"pwned"),
                  regular(f"{UP}etc/passwd", PAYLOAD.encode())]],
                contained={f"{v}/file": b"pwned", f"{v}/new": b"pwned",
                           "etc/passwd": PAYLOAD.encode()})


def case_absolute(box: Sandbox) -> Case:
    v = box.victim_rel
    return Case([[regular(str(box.victim / "file"), b"pwned"),
                  regular(str(box.victim / "dir" / "new"), b"pwned"),
                  regular("/etc/passwd", PAYLOAD.encode())]],
                contained={f"{v}/file": b"pwned", f"{v}/dir/new": b"pwned",
                           "etc/passwd": PAYLOAD.encode()})


def case_write_through_symlink(box: Sandbox) -> Case:
    v = box.victim_rel
    return Case([[symlink("abs", str(box.victim)), regular("abs/file", b"pwned"),
                  symlink("rel", f"{UP}{v}"), regular("rel/dir/new", b"pwned"),
                  symlink("root", "/"), regular("root/etc/passwd", PAYLOAD.encode()),
                  # a symlink as the last component is replaced, never written through
                  symlink("last", str(box.victim / "file")), regular("last", b"pwned")]],
                contained={f"{v}/file": b"pwned", f"{v}/dir/new": b"pwned",
                           "etc/passwd": PAYLOAD.encode(), "last": b"pwned"},
                symlinks={"abs": str(box.victim), "rel": f"{UP}{v}", "root": "/"})


def case_hard_link_absolute(box: Sandbox) -> Case:
    target = str(box.victim / "file")
    first = box.victim_rel.split("/")[0]
    return Case([[regular("ok", b"fine")], [hardlink("h", target)]],
                refused=re.escape(f"h: hard link target {target!r}: {first} does not exist "
                                  "in this layer"))


def case_hard_link_dotdot(box: Sandbox) -> Case:
    target = f"{UP}{box.victim_rel}/file"
    first = box.victim_rel.split("/")[0]
    return Case([[regular("ok", b"fine")], [hardlink("h", target)]],
                refused=re.escape(f"h: hard link target {target!r}: {first} does not exist "
                                  "in this layer"))


def case_hard_link_through_symlink(box: Sandbox) -> Case:
    first = box.victim_rel.split("/")[0]
    return Case([[symlink("d", str(box.victim)), hardlink("h", "d/file")]],
                refused=re.escape(f"h: hard link target 'd/file': {first} does not exist "
                                  "in this layer"))


def case_dir_replaced_by_symlink(box: Sandbox) -> Case:
    v = box.victim_rel
    return Case([[directory("dir/"), regular("dir/a", b"1"),
                  symlink("dir", str(box.victim / "dir")), regular("dir/file", b"pwned"),
                  directory("d2/"), symlink("d2", f"{UP}{v}/dir"),
                  regular("d2/keep", b"pwned")]],
                contained={f"{v}/dir/file": b"pwned", f"{v}/dir/keep": b"pwned"},
                symlinks={"dir": str(box.victim / "dir"), "d2": f"{UP}{v}/dir"})


CASES: dict[str, Callable[[Sandbox], Case]] = {
    "dotdot": case_dotdot,
    "absolute": case_absolute,
    "write-through-symlink": case_write_through_symlink,
    "hard-link-absolute": case_hard_link_absolute,
    "hard-link-dotdot": case_hard_link_dotdot,
    "hard-link-through-symlink": case_hard_link_through_symlink,
    "dir-replaced-by-symlink": case_dir_replaced_by_symlink,
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_layer_pulled_is_refused_or_contained(name: str, sandbox: Sandbox,
                                                      forge: ImageStore,
                                                      hostile_registry: Registry) -> None:
    case = CASES[name](sandbox)
    ref = f"{hostile_registry.host}/hostile/{name}:1"
    target = forge_image(forge, [layer_tar(entries) for entries in case.layers])
    push_image(forge, ref, target)
    store = sandbox.store
    if case.refused is not None:
        with pytest.raises(UnsafeLayer, match=case.refused):
            store.pull(ref)
        sandbox.assert_outside_untouched()
        nothing_half_written(store)
    else:
        image = store.pull(ref)
        assert image.manifest_digest == target.digest
        sandbox.assert_outside_untouched()
        assert image.chain_id is not None
        layer = store.snapshotter.layer_dir(image.chain_id)
        for path, data in case.contained.items():
            p = layer / path
            assert not p.is_symlink() and p.is_file(), path
            assert p.read_bytes() == data, path
        for path, link in case.symlinks.items():
            assert os.readlink(layer / path) == link
    sandbox.assert_outside_untouched()


def test_huge_sparse_file_pulled_costs_no_disk(sandbox: Sandbox, forge: ImageStore,
                                               hostile_registry: Registry,
                                               tmp_path: Path) -> None:
    """A 100 GiB file (GNU/PAX sparse member) and 64 MiB of compressed zeros: the layer blob
    is small, and the unpacked files are holes, not disk."""
    if shutil.which("tar") is None:
        pytest.skip("GNU tar is needed to write a sparse archive")
    src = tmp_path / "src"
    src.mkdir()
    size = 100 << 30
    with open(src / "big", "wb") as f:
        f.truncate(size)
        f.seek(size // 2)
        f.write(b"needle")
    sparse_tar = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", "--format=posix", "-cf", str(sparse_tar), "-C",
                    str(src), "big"], check=True)
    (src / "big").unlink()
    zeros = 64 << 20
    target = forge_image(forge, [sparse_tar.read_bytes(),
                                 layer_tar([regular("bomb", bytes(zeros))])])
    ref = f"{hostile_registry.host}/hostile/sparse:1"
    push_image(forge, ref, target)
    image = sandbox.store.pull(ref)
    sandbox.assert_outside_untouched()
    assert all(layer.size < 1 << 20 for layer in image.layers)
    big = sandbox.store.snapshotter.layer_dir(image.chain_ids[0]) / "big"
    st = big.stat()
    assert st.st_size == size and st.st_blocks * 512 < 1 << 20
    with open(big, "rb") as f:
        f.seek(size // 2)
        assert f.read(6) == b"needle"
    bomb = (sandbox.store.snapshotter.layer_dir(image.chain_ids[1]) / "bomb").stat()
    assert bomb.st_size == zeros and bomb.st_blocks * 512 < 1 << 20


# -- across layers: a symlink below, a write through it above ------------------------------

def test_write_through_symlink_of_a_lower_layer_stays_in_the_upper_layer(
        sandbox: Sandbox, forge: ImageStore, hostile_registry: Registry,
        tmp_path: Path) -> None:
    """Lower layers make `esc -> /etc`, `rel -> ../../..<victim>/etc` and replace a
    directory by a symlink into the victim; the top layer writes through all three. Each
    write lands in the top layer's own directory, the lower layers are unchanged, and the
    mounted container view shows plain directories holding regular files, as overlayfs
    shows such layers under Docker."""
    v = sandbox.victim_rel
    bottom = layer_tar([symlink("esc", "/etc"), symlink("rel", f"{UP}{v}/etc"),
                        directory("dir/"), regular("dir/a", b"a")])
    middle = layer_tar([symlink("dir", str(sandbox.victim / "dir"))])
    top = layer_tar([regular("esc/passwd", PAYLOAD.encode()),
                     regular("rel/passwd", b"pwned\n"), regular("dir/file", b"pwned\n")])
    host = hostile_registry.host
    lower_ref, ref = f"{host}/hostile/cross-lower:1", f"{host}/hostile/cross:1"
    push_image(forge, lower_ref, forge_image(forge, [bottom, middle]))
    push_image(forge, ref, forge_image(forge, [bottom, middle, top]))

    store = sandbox.store
    lower = store.pull(lower_ref)
    lower_dirs = [store.snapshotter.layer_dir(c) for c in lower.chain_ids]
    lower_prints = [tree_fingerprint(d) for d in lower_dirs]
    image = store.pull(ref)
    sandbox.assert_outside_untouched()
    assert image.chain_ids[:2] == lower.chain_ids  # the lower layers are shared, not redone
    assert [tree_fingerprint(d) for d in lower_dirs] == lower_prints
    assert image.chain_id is not None
    upper = store.snapshotter.layer_dir(image.chain_id)
    for name, data in (("esc/passwd", PAYLOAD.encode()), ("rel/passwd", b"pwned\n"),
                       ("dir/file", b"pwned\n")):
        parent = (upper / name).parent
        assert parent.is_dir() and not parent.is_symlink(), name
        assert (upper / name).is_file() and not (upper / name).is_symlink(), name
        assert (upper / name).read_bytes() == data

    if os.geteuid() != 0:
        pytest.skip("needs root for overlay mounts")
    from .mounting import mount_and_list

    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    mounts = store.snapshotter.prepare("ctr", image.chain_id)
    try:
        view = mount_and_list(mounts, rootfs)
    finally:
        store.snapshotter.remove("ctr")
    assert not os.path.ismount(rootfs)
    assert view == {"esc": "dir", "esc/passwd": PAYLOAD, "rel": "dir", "rel/passwd": "pwned\n",
                    "dir": "dir", "dir/file": "pwned\n"}
    sandbox.assert_outside_untouched()


# -- a Docker schema2 manifest list --------------------------------------------------------

def _registry_manifest(reg: Registry, repo: str, obj: str) -> tuple[str, bytes]:
    """GET a manifest straight from the registry (plain HTTP): its Content-Type and body."""
    host, port = reg.host.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", f"/v2/{repo}/manifests/{obj}",
                     headers={"Accept": f"{MEDIA_DOCKER_LIST}, {MEDIA_DOCKER_MANIFEST}"})
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, body
        return resp.getheader("Content-Type") or "", body
    finally:
        conn.close()


def test_docker_manifest_list_picks_linux_amd64(forge: ImageStore, hostile_registry: Registry,
                                                tmp_path: Path) -> None:
    """A Docker manifest list (not an OCI index) of Docker schema2 manifests, with windows
    and arm64 entries listed before linux/amd64: the pull takes linux/amd64 and only it."""
    images: dict[str, Descriptor] = {}
    for key, arch, os_name in (("windows", "amd64", "windows"), ("arm64", "arm64", "linux"),
                               ("amd64", "amd64", "linux")):
        tar = layer_tar([regular("etc/arch", f"{os_name}/{arch}\n".encode())])
        images[key] = forge_image(forge, [tar], arch=arch, os_name=os_name, docker=True)
    platforms = {"windows": {"os": "windows", "architecture": "amd64"},
                 "arm64": {"os": "linux", "architecture": "arm64", "variant": "v8"},
                 "amd64": {"os": "linux", "architecture": "amd64"}}
    listing = {"schemaVersion": 2, "mediaType": MEDIA_DOCKER_LIST, "manifests": [
        {**images[k].to_json(), "platform": platforms[k]} for k in ("windows", "arm64", "amd64")
    ]}
    data = json.dumps(listing).encode()
    list_desc = Descriptor(MEDIA_DOCKER_LIST, forge.content.write_blob(data), len(data))
    ref = f"{hostile_registry.host}/multi/docker-list:1"
    push_image(forge, ref, list_desc)
    ctype, body = _registry_manifest(hostile_registry, "multi/docker-list", "1")
    assert ctype == MEDIA_DOCKER_LIST and body == data  # really a schema2 list, as pushed

    dst = new_store(tmp_path / "dst", hostile_registry)
    pulled = dst.pull(ref)
    assert pulled.target.media_type == MEDIA_DOCKER_LIST
    assert pulled.target.digest == list_desc.digest
    assert pulled.manifest_digest == images["amd64"].digest
    assert pulled.manifest.media_type == MEDIA_DOCKER_MANIFEST
    assert pulled.config.platform == Platform("linux", "amd64")
    assert pulled.chain_id is not None
    arch_file = dst.snapshotter.layer_dir(pulled.chain_id) / "etc" / "arch"
    assert arch_file.read_text() == "linux/amd64\n"
    for other in ("windows", "arm64"):  # only the chosen platform was fetched
        assert not dst.content.exists(images[other].digest)
    assert [i.name for i in dst.list()] == [ref]

    arm = new_store(tmp_path / "arm", hostile_registry, platform=Platform("linux", "arm64"))
    assert arm.pull(ref).manifest_digest == images["arm64"].digest
    with pytest.raises(NotFound, match="no manifest for platform linux/s390x"):
        dst.pull(ref, platform=Platform("linux", "s390x"))
