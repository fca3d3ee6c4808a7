"""Fixtures for build tests: a throwaway image store holding a busybox-static base image, a
runtime root for build containers, and context directories. Everything is removed afterwards.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llmos.image import Image, ImageStore
from tests.integration.conftest import make_busybox_rootfs

BASE = "busybox:build-test"


@pytest.fixture
def work() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="llmos-build-test-"))
    try:
        yield d
    finally:
        from llmos.runtime import Runtime

        rt = Runtime(d / "runtime")
        for st in rt.list():
            try:
                rt.delete(st.id, force=True)
            except Exception:
                pass
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def store(work: Path) -> ImageStore:
    store = ImageStore(work / "store")
    rootfs = make_busybox_rootfs(work / "busybox")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(rootfs, arcname=".")
    buf.seek(0)
    store.import_rootfs(buf, BASE, config={"config": {"Cmd": ["sh"]}})
    return store


@pytest.fixture
def runtime_root(work: Path) -> Path:
    return work / "runtime"


ContextFactory = Callable[..., Path]


@pytest.fixture
def context(work: Path) -> ContextFactory:
    """context(dockerfile_text, files={"name": "text" | bytes}) -> a context directory."""
    counter = [0]

    def make(dockerfile: str, files: dict[str, str | bytes] | None = None) -> Path:
        counter[0] += 1
        d = work / f"ctx{counter[0]}"
        d.mkdir()
        (d / "Dockerfile").write_text(dockerfile)
        for name, content in (files or {}).items():
            p = d / name
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content)
        return d

    return make


class Builds:
    """Runs builds and records their progress lines."""

    def __init__(self, store: ImageStore, runtime_root: Path) -> None:
        self.store = store
        self.runtime_root = runtime_root
        self.lines: list[str] = []

    def __call__(self, ctx: Path, **kw: Any) -> Image:
        from llmos.build import build

        self.lines = []
        # These tests run in the machine's own namespace, where a build must not make the
        # default bridge: RUN shares it (test_build_network.py covers the NAT default).
        kw.setdefault("network", "host")
        return build(self.store, ctx, runtime_root=self.runtime_root,
                     progress=self.lines.append, **kw)

    def run(self, image: Image, args: list[str] | None = None) -> tuple[int, str]:
        from llmos.build import run_image

        return run_image(self.store, image, runtime_root=self.runtime_root, args=args)

    @property
    def cached(self) -> int:
        return sum(1 for line in self.lines if line.strip() == "---> CACHED")

    @property
    def steps(self) -> list[str]:
        return [line for line in self.lines if line.startswith("Step ")]


@pytest.fixture
def builds(store: ImageStore, runtime_root: Path) -> Builds:
    return Builds(store, runtime_root)
