#!/usr/bin/env bash
# Make an OCI bundle from Debian's static busybox and run it with `llmos runtime run`:
# its own pid namespace, hostname, mount table, cgroup with limits, seccomp and capabilities.
set -euo pipefail
work=$(mktemp -d /tmp/llmos-hello.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$work/rootfs/bin/$applet"
done
cd "$work"
llmos runtime spec
python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c",
    "echo hello from pid $$ on $(hostname); grep -E 'CapEff|NoNewPrivs|Seccomp:' /proc/self/status; "
    "echo memory limit: $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"]
c["hostname"] = "hello"
c["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 64}}
json.dump(c, open("config.json", "w"))
PY
llmos runtime run "hello-$$"
