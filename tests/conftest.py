"""Suite-wide guard: the tests must leave nothing behind on the machine.

Before the session it records what exists (llmos mounts, cgroups under any `llmos` parent,
shim processes, network namespaces, nft tables); afterwards anything new is a leak and fails
the run.
"""

from __future__ import annotations

import glob
import os
import subprocess
import time
from collections.abc import Iterator

import pytest


def _mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {
            line.split()[4]
            for line in f
            if "llmos" in line or "/pytest-of-" in line.split()[4]
        }


def _cgroups() -> set[str]:
    found: set[str] = set()
    for parent in glob.glob("/sys/fs/cgroup/*/llmos") + glob.glob("/sys/fs/cgroup/llmos"):
        for dirpath, dirnames, _ in os.walk(parent):
            for d in dirnames:
                found.add(os.path.join(dirpath, d))
    return found


def _shims() -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state = stat[stat.rindex(")") + 2]
        # A zombie has ended; reaping it is its parent's (here: init's) business.
        if comm in ("llmos-shim", "llmosd") and state not in "ZX":
            out.add(int(entry))
    return out


def _netns() -> set[str]:
    try:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return set()
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _nft_tables() -> set[str]:
    try:
        out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return set()
    return {line.strip() for line in out.splitlines() if "llmos" in line}


def snapshot() -> dict[str, set[object]]:
    if os.geteuid() != 0:
        return {}
    return {
        "mounts": set(_mounts()),
        "cgroups": set(_cgroups()),
        "shim/daemon processes": set(_shims()),
        "network namespaces": set(_netns()),
        "nft tables": set(_nft_tables()),
    }


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind() -> Iterator[None]:
    before = snapshot()
    yield
    deadline = time.monotonic() + 3
    while True:
        after = snapshot()
        leaks = {k: sorted(map(str, after[k] - before.get(k, set()))) for k in after}
        leaks = {k: v for k, v in leaks.items() if v}
        # Shims exit a moment after their container; give stragglers a little time.
        if not leaks or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not leaks, f"the test session left these behind: {leaks}"
