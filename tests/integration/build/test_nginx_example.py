"""Must show 6, end to end: bootstrap debian:bookworm with mmdebstrap, build examples/nginx,
rebuild it fully from the cache, and fetch the page from nginx in its own network namespace.
Slow (about a minute here: ~45 s bootstrap, ~20 s build); needs the Debian mirror.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from llmos.build import bootstrap, build, started_image
from llmos.image import ImageStore

pytestmark = [pytest.mark.root, pytest.mark.slow]

EXAMPLE = Path(__file__).parents[3] / "examples" / "nginx"


def _fetch(pid: int) -> str:
    netns = f"--net=/proc/{pid}/ns/net"
    # a new network namespace starts with its loopback down
    subprocess.run(["nsenter", netns, "ip", "link", "set", "lo", "up"], check=True)
    deadline = time.monotonic() + 20
    while True:
        r = subprocess.run(["nsenter", netns, "curl", "-sf", "--max-time", "2",
                            "http://127.0.0.1/"], capture_output=True, text=True)
        if r.returncode == 0 or time.monotonic() > deadline:
            return r.stdout
        time.sleep(0.2)


def test_bootstrap_build_and_serve_nginx(work: Path) -> None:
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed")
    store = ImageStore(work / "store")
    t0 = time.monotonic()
    base = bootstrap(store, "debian:bookworm", variant="minbase")
    assert base.config.config["Cmd"] == ["bash"]
    t1 = time.monotonic()
    lines: list[str] = []
    image = build(store, EXAMPLE, tag="nginx", runtime_root=work / "runtime",
                  progress=lines.append, network="host")
    t2 = time.monotonic()
    assert image.config.config["ExposedPorts"] == {"80/tcp": {}}
    assert image.config.config["Cmd"] == ["nginx", "-g", "daemon off;"]
    again: list[str] = []
    rebuilt = build(store, EXAMPLE, tag="nginx", runtime_root=work / "runtime",
                    progress=again.append, network="host")
    assert rebuilt.id == image.id
    assert sum(ln.strip() == "---> CACHED" for ln in again) == 4
    print(f"bootstrap {t1 - t0:.0f} s, build {t2 - t1:.0f} s")
    with started_image(store, store.get("nginx"), runtime_root=work / "runtime",
                       network="none") as c:
        page = _fetch(c.pid)
    assert page == (EXAMPLE / "index.html").read_text()
