"""What the benchmarks share about running the peers (see ../shared/notes/peers.md)."""

from __future__ import annotations

from pathlib import Path

PODMAN_ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
"""Root here lacks CAP_SYS_RESOURCE: podman's default rlimits exceed the hard limits."""


def remove_libpod_parents() -> None:
    """conmon leaves empty libpod_parent cgroups behind: remove them (empty ones only; a
    cgroup with processes refuses rmdir, so nothing in use can go)."""
    for parent in Path("/sys/fs/cgroup").glob("*/libpod_parent"):
        for sub in sorted(parent.rglob("*"), key=lambda p: -len(p.parts)):
            if sub.is_dir():
                try:
                    sub.rmdir()
                except OSError:
                    pass
        try:
            parent.rmdir()
        except OSError:
            pass
