"""Fixtures for tests on the real kernel: a busybox rootfs, bundles, a runtime root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

BUSYBOX = "/bin/busybox"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root and the real kernel")
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(skip)


def make_busybox_rootfs(dest: Path) -> Path:
    """A minimal rootfs: Debian's static busybox and a link per applet."""
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed")
    (dest / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    applets = subprocess.run(
        [BUSYBOX, "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", dest / "bin" / applet)
    for d in ("proc", "sys", "dev", "etc", "tmp", "root"):
        (dest / d).mkdir(exist_ok=True)
    (dest / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"
    )
    (dest / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return dest


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture
def runtime_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "state"
    yield root
    # Anything a test forgot is removed, so one failure does not leak into the next test.
    from llmos.runtime import Runtime

    rt = Runtime(root)
    for st in rt.list():
        try:
            rt.delete(st.id, force=True)
        except Exception:
            pass


@pytest.fixture
def runtime(runtime_root: Path) -> Any:
    from llmos.runtime import Runtime

    return Runtime(runtime_root)


BundleFactory = Callable[..., Path]


@pytest.fixture
def make_bundle(tmp_path: Path, busybox_rootfs: Path) -> BundleFactory:
    """Write a bundle whose rootfs is the shared busybox tree, config = default + changes."""
    counter = [0]

    def factory(
        args: list[str],
        *,
        rootfs: Path | None = None,
        edit: Callable[[dict[str, Any]], None] | None = None,
    ) -> Path:
        from llmos.spec import default_spec

        counter[0] += 1
        bundle = tmp_path / f"bundle{counter[0]}"
        bundle.mkdir()
        config = default_spec(args).to_dict()
        config["root"] = {"path": str(rootfs or busybox_rootfs), "readonly": False}
        config["process"]["terminal"] = False
        if edit is not None:
            edit(config)
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle

    return factory
