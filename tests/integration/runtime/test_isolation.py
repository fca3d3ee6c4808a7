"""Must show 1: isolation and default security of a container started from a bundle."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.integration.runtime.helpers import run_to_end

DOCKER_DEFAULT_CAPS = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}


def _cap_mask(names: set[str]) -> int:
    from llmos.spec.tables import capability_mask

    return capability_mask(sorted(names))


SCRIPT = r"""
echo "pid=$$"
echo "hostname=$(hostname)"
echo "procs=$(ls /proc | grep -c '^[0-9]')"
grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status
for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do
  [ -e $f ] && echo "masked $f $(cat $f | wc -c)"
done
if touch /sys/llmos-test 2>/dev/null; then echo sys=rw; else echo sys=ro; fi
if mkdir /sys/fs/llmos-x 2>/dev/null; then echo sysfs=rw; else echo sysfs=ro; fi
cat /proc/self/mountinfo | wc -l
unshare -r true 2>&1; echo "unshare=$?"
"""


def test_container_is_isolated(runtime: Any, make_bundle: Any, tmp_path: Path) -> None:
    bundle = make_bundle(["sh", "-c", SCRIPT], edit=lambda c: c.update(hostname="box1"))
    code, out = run_to_end(runtime, "iso", bundle, tmp_path / "log")
    assert code == 0, out
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert fields["pid"] == "1"
    assert fields["hostname"] == "box1"
    # Only this container's processes: sh and its short-lived children.
    assert int(fields["procs"]) <= 4
    masked = [line.split() for line in out.splitlines() if line.startswith("masked ")]
    host_has = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug")
                if os.path.exists(p)]
    assert [m[1] for m in masked] == host_has and host_has
    assert all(m[2] == "0" for m in masked), masked
    assert fields["sys"] == "ro"
    assert fields["sysfs"] == "ro"
    status = {k: v.strip() for k, v in (ln.split(":", 1) for ln in out.splitlines() if ":" in ln)}
    assert int(status["CapEff"], 16) == _cap_mask(DOCKER_DEFAULT_CAPS)
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"
    # unshare(2) is outside Docker's default allowlist for these capabilities: EPERM.
    assert "Operation not permitted" in out
    assert "unshare=1" in out


def test_own_mount_table(runtime: Any, make_bundle: Any, tmp_path: Path) -> None:
    bundle = make_bundle(["cat", "/proc/self/mountinfo"])
    code, out = run_to_end(runtime, "mnt", bundle, tmp_path / "log")
    assert code == 0
    targets = [line.split()[4] for line in out.splitlines()]
    assert targets[0] == "/"
    assert "/proc" in targets and "/dev" in targets and "/sys" in targets
    with open("/proc/self/mountinfo") as f:
        host = [line.split()[4] for line in f]
    # Nothing of the host's own mounts (e.g. /sys/fs/cgroup/memory outside, /boot) is visible.
    assert not any(t.startswith("/work") or t.startswith("/boot") for t in targets)
    assert len(targets) < len(host) + 20


def test_cgroup_namespace_root_is_the_container(
    runtime: Any, make_bundle: Any, tmp_path: Path
) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["linux"]["resources"] = {"memory": {"limit": 48 << 20}}

    script = (
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null"
        " || cat /sys/fs/cgroup/memory.max; cat /proc/self/cgroup"
    )
    code, out = run_to_end(runtime, "cgns", make_bundle(["sh", "-c", script], edit=edit),
                           tmp_path / "log")
    assert code == 0, out
    lines = out.splitlines()
    assert int(lines[0]) == 48 << 20
    # Inside a cgroup namespace the container's own cgroup is "/".
    mem = [ln for ln in lines[1:] if ":memory:" in ln or ln.startswith("0::")]
    assert mem and mem[0].endswith(":/"), lines


def test_seccomp_without_no_new_privs(runtime: Any, make_bundle: Any, tmp_path: Path) -> None:
    """Docker's default with --security-opt no-new-privileges off: the filter still loads."""

    def edit(c: dict[str, Any]) -> None:
        c["process"]["noNewPrivileges"] = False
        c["process"]["user"] = {"uid": 65534, "gid": 65534}

    script = "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; id -u"
    code, out = run_to_end(runtime, "nonnp", make_bundle(["sh", "-c", script], edit=edit),
                           tmp_path / "log")
    assert code == 0, out
    assert "NoNewPrivs:\t0" in out and "Seccomp:\t2" in out
    assert out.splitlines()[-1] == "65534"
