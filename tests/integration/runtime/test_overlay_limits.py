"""Must show 2 and 3: overlay rootfs, and limits the kernel enforces."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

from llmos.plan import Overlay
from tests.integration.runtime.helpers import run_to_end


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames.sort()
        for name in sorted(filenames + dirnames):
            p = Path(dirpath) / name
            st = p.lstat()
            h.update(f"{p.relative_to(root)}:{st.st_mode}:{st.st_size}".encode())
            if p.is_file() and not p.is_symlink():
                h.update(p.read_bytes())
    return h.hexdigest()


def test_overlay_writes_land_in_upper(
    runtime: Any, make_bundle: Any, busybox_rootfs: Path, tmp_path: Path
) -> None:
    lower2 = tmp_path / "lower2"
    (lower2 / "etc").mkdir(parents=True)
    (lower2 / "etc" / "motd").write_text("from layer 2\n")
    upper, work, mnt = tmp_path / "upper", tmp_path / "work", tmp_path / "rootfs"
    for d in (upper, work, mnt):
        d.mkdir()
    before = {p: _tree_digest(p) for p in (busybox_rootfs, lower2)}
    bundle = make_bundle(
        ["sh", "-c", "cat /etc/motd; echo new > /etc/motd; echo x > /created; rm /bin/vi"],
        rootfs=mnt,
    )
    overlay = Overlay(lower=[str(lower2), str(busybox_rootfs)], upper=str(upper), work=str(work))
    code, out = run_to_end(runtime, "ovl", bundle, tmp_path / "log", overlay=overlay)
    assert code == 0, out
    assert "from layer 2" in out
    assert (upper / "created").read_text() == "x\n"
    assert (upper / "etc" / "motd").read_text() == "new\n"
    assert os.major((upper / "bin" / "vi").lstat().st_rdev) == 0  # a whiteout
    for p, digest in before.items():
        assert _tree_digest(p) == digest, f"{p} changed"
    assert not any(mnt.iterdir()), "the overlay was mounted on the host"
    shutil.rmtree(work, ignore_errors=True)


def _limits(memory: int | None = None, pids: int | None = None, quota: int | None = None):
    def edit(c: dict[str, Any]) -> None:
        res = c["linux"].setdefault("resources", {})
        if memory:
            res["memory"] = {"limit": memory, "swap": memory}
        if pids:
            res["pids"] = {"limit": pids}
        if quota:
            res["cpu"] = {"quota": quota, "period": 100000}

    return edit


def test_oom_kill(runtime: Any, make_bundle: Any, tmp_path: Path) -> None:
    # busybox sh: grow a string until the 32 MiB limit kills us.
    script = 'x=aaaaaaaaaaaaaaaa; while true; do x="$x$x"; done'
    bundle = make_bundle(["sh", "-c", script], edit=_limits(memory=32 << 20))
    runtime.create("oom", bundle, log_file=str(tmp_path / "l"), start_now=True)
    es = runtime.wait("oom", timeout=60)
    st = runtime.state("oom")
    runtime.delete("oom")
    assert es.code == 137
    assert st.oom_killed is True


def test_pids_limit(runtime: Any, make_bundle: Any, tmp_path: Path) -> None:
    # A fork loop; then count with shell builtins only, since no fork is left at the limit.
    script = (
        "(while :; do sleep 10 & done) 2>/dev/null; "
        "n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo $n"
    )
    bundle = make_bundle(["sh", "-c", script], edit=_limits(pids=16))
    code, out = run_to_end(runtime, "pids", bundle, tmp_path / "log")
    procs = int(out.strip().splitlines()[-1])
    assert code == 0
    # The loop forked until the kernel said no: at the limit, not past it.
    assert 8 <= procs <= 16, out
    assert os.getloadavg()  # the host still answers


def test_cpu_quota(runtime: Any, make_bundle: Any, tmp_path: Path) -> None:
    script = "while true; do :; done & sleep 2; kill %1; cat /proc/$!/stat 2>/dev/null; true"
    bundle = make_bundle(["sh", "-c", script], edit=_limits(quota=50000))
    runtime.create("cpu", bundle, log_file=str(tmp_path / "l"), start_now=True)
    from llmos.cgroups import open_cgroup

    cg = open_cgroup("llmos/cpu")
    start = cg.stats().cpu_usage_ns
    import time

    t0 = time.monotonic()
    time.sleep(1.5)
    used = cg.stats().cpu_usage_ns - start
    elapsed = time.monotonic() - t0
    runtime.kill("cpu", "KILL")
    runtime.wait("cpu", timeout=10)
    runtime.delete("cpu")
    assert used / 1e9 / elapsed <= 0.55, f"{used / 1e9 / elapsed:.3f} CPUs"
    assert used / 1e9 / elapsed >= 0.1  # it did run (the machine may be busy)
