"""Makes the image these examples use: a busybox rootfs imported as `example/busybox`.

Run them against a daemon (`LLMOS_HOST=unix:///run/llmos/llmos.sock pytest examples/python`)
or with no daemon at all: `pytest examples/python --llmos-embedded /tmp/llmos-example`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from typing import Any

import pytest


@pytest.fixture(scope="session")
def busybox_image(llmos_client: Any) -> str:
    work = tempfile.mkdtemp()
    try:
        rootfs = os.path.join(work, "rootfs")
        os.makedirs(os.path.join(rootfs, "bin"))
        shutil.copy2("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
        applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True,
                                 check=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                os.symlink("busybox", os.path.join(rootfs, "bin", applet))
        for d in ("etc", "tmp", "proc", "sys", "dev", "www"):
            os.makedirs(os.path.join(rootfs, d), exist_ok=True)
        tar_path = os.path.join(work, "busybox.tar")
        with tarfile.open(tar_path, "w") as tar:
            tar.add(rootfs, arcname=".")
        llmos_client.images.import_rootfs(tar_path, "example/busybox")
    finally:
        shutil.rmtree(work)
    return "example/busybox"
