"""Execute snapshotter mount descriptions the way the C side will, for tests: in a child
process inside a private mount namespace (`unshare -m`), so nothing can leak to the host even
if a test dies half-way; the child unmounts before it exits anyway.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from llmos.image import Mount

_CHILD = r"""
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC = 1, 32, 4096, 16384
spec = json.loads(sys.argv[1])
target, action = spec["target"], spec["action"]
def check(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
cwd = os.getcwd()
for m in spec["mounts"]:
    if m.get("chdir"):
        os.chdir(m["chdir"])
    if m["type"] == "bind":
        check(libc.mount(m["source"].encode(), target.encode(), None, MS_BIND | MS_REC, None),
              "bind")
        if "ro" in m["options"]:
            check(libc.mount(None, target.encode(), None,
                             MS_REMOUNT | MS_BIND | MS_RDONLY, None), "remount ro")
    else:
        data = ",".join(m["options"]).encode()
        check(libc.mount(m["source"].encode(), target.encode(), m["type"].encode(), 0, data),
              "mount overlay")
    os.chdir(cwd)
out = {}
try:
    if action.get("write"):
        for name, text in action["write"].items():
            with open(os.path.join(target, name), "w") as f:
                f.write(text)
    for dirpath, dirnames, filenames in os.walk(target):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, target)
            out[rel] = "dir" if os.path.isdir(p) and not os.path.islink(p) else (
                open(p).read() if os.path.isfile(p) else "other")
finally:
    check(libc.umount2(target.encode(), 0), "umount")
print(json.dumps(out))
"""


def mount_and_list(mounts: list[Mount], target: Path, *,
                   write: dict[str, str] | None = None) -> dict[str, Any]:
    """Mount `mounts` on `target` in a throwaway mount namespace, optionally write files,
    and return the merged tree {relative path: "dir" | file text}.
    """
    spec = {"target": str(target), "mounts": [m.to_json() for m in mounts],
            "action": {"write": write or {}}}
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", _CHILD,
         json.dumps(spec)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"mount child failed: {proc.stderr.strip()}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result
