"""Boot Debian's stock kernel under qemu (TCG) on a pure cgroup v2 hierarchy and run commands there.

Why this exists: the development hosts are hybrid (controllers on cgroup v1), so the v2 cgroup
driver can only be proven against a real kernel inside a VM.  The guest sees this machine's root
file system read-only through 9p with a tmpfs overlay on top (writes are thrown away), so the
repository, the Python interpreter that runs the tests and its site-packages are all at the same
paths inside.  /dev/kvm on these machines is PVM and cannot boot a stock kernel, hence TCG.

Inside the guest:
  * cgroup2 is mounted at /sys/fs/cgroup and every available controller is enabled in the root's
    cgroup.subtree_control (cpu, memory, pids and io at least);
  * /run and /tmp are fresh tmpfs; the transfer share is at ``GUEST_XFER`` (read-write, host temp
    dir); files the command writes to ``$LLMOS_VM_OUT`` come back in ``VMResult.files``;
  * ``LLMOS_IN_VM=1`` is set, and ``dirname(sys.executable)`` leads PATH.

This module must not import the project package: it runs before llmos may be importable.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import lzma
import os
import re
import shlex
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
QEMU = "qemu-system-x86_64"
GUEST_XFER = "/run/vm/xfer"
GUEST_OUT = GUEST_XFER + "/out"
GUEST_IN = GUEST_XFER + "/in"
IN_VM_ENV = "LLMOS_IN_VM"

# Modules the initramfs loads itself; everything else is autoloaded from the shared root via the
# host's /sbin/modprobe (bridge, veth, nf_tables, ...).
INITRAMFS_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay", "virtio_blk")
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

# mitigations=off: no KPTI, whose page-table switch on every guest syscall flushes the emulated
# TLB.  cryptomgr.notests skips ~0.4 s of crypto self-tests (measured with initcall_debug).
# panic=-1 with -no-reboot turns a guest panic (for example /init dying) into qemu exiting
# instead of hanging until the timeout.
KERNEL_CMDLINE = (
    "console=ttyS0 quiet loglevel=4 panic=-1 mitigations=off nokaslr cryptomgr.notests "
    "tsc=reliable no_timer_check rdinit=/init"
)
NINEP_OPTS = "trans=virtio,version=9p2000.L,msize=512000"


class VMError(Exception):
    """Base of the harness's errors."""


class VMUnavailableError(VMError):
    """Something the VM needs (qemu, kernel, busybox, root) is missing on this machine."""


class VMBootError(VMError):
    """The guest stopped before the command reported an exit status."""


class VMTimeoutError(VMError):
    """The guest did not finish in time; qemu was killed."""


@dataclasses.dataclass(frozen=True)
class Kernel:
    version: str
    image: Path
    modules_dir: Path


@dataclasses.dataclass(frozen=True)
class BootImage:
    """A kernel qemu can boot and the initramfs that goes with it."""

    kernel: Path
    initrd: Path


@dataclasses.dataclass(frozen=True)
class VMResult:
    returncode: int
    output: str
    boot_seconds: float
    """Host wall time from starting qemu to the guest starting the command."""
    total_seconds: float
    console: str
    files: Mapping[str, bytes]
    """Regular files the command left in $LLMOS_VM_OUT (top level only)."""


@dataclasses.dataclass(frozen=True)
class PytestResult:
    exit_code: int
    """pytest's own exit status (0 all passed, 1 some failed, 5 none collected, ...)."""
    outcomes: Mapping[str, str]
    """node id -> 'passed' | 'failed' | 'skipped' | 'error' for every test that ran."""
    output: str
    boot_seconds: float
    total_seconds: float
    files: Mapping[str, bytes]
    """What the run left in $LLMOS_VM_OUT, e.g. a --junitxml=/run/vm/xfer/out/junit.xml."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


# --------------------------------------------------------------------------- prerequisites


def find_kernel() -> Kernel:
    """The newest /boot/vmlinuz-* whose modules are installed (package linux-image-amd64)."""
    candidates: list[Kernel] = []
    for image in Path("/boot").glob("vmlinuz-*"):
        version = image.name.removeprefix("vmlinuz-")
        moddir = Path("/lib/modules") / version
        if (moddir / "modules.dep").is_file():
            candidates.append(Kernel(version, image, moddir))
    if not candidates:
        raise VMUnavailableError(
            "no /boot/vmlinuz-* with /lib/modules/<version>/modules.dep "
            "(apt-get install linux-image-amd64)"
        )
    return max(candidates, key=lambda k: _version_key(k.version))


def _version_key(version: str) -> list[int | str]:
    return [int(p) if p.isdigit() else p for p in re.split(r"[.\-+~]", version)]


def find_busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.is_file() and _is_static(path):
            return path
    raise VMUnavailableError("no static busybox (apt-get install busybox-static)")


def _is_static(path: Path) -> bool:
    """True if the ELF file has no PT_INTERP program header (it needs no dynamic loader)."""
    with path.open("rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(
        struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum)
    )


def missing_prerequisites() -> list[str]:
    """Reasons the VM cannot run here; empty when it can."""
    reasons: list[str] = []
    if shutil.which(QEMU) is None:
        reasons.append(f"{QEMU} not found (apt-get install qemu-system-x86)")
    for probe in (find_kernel, find_busybox):
        try:
            probe()
        except VMUnavailableError as exc:
            reasons.append(str(exc))
    if os.geteuid() != 0:
        reasons.append("not root (the 9p share of / must read every file)")
    return reasons


# --------------------------------------------------------------------------- kernel


def unpack_kernel(kernel: Kernel, dest: Path) -> Path:
    """Extract the ELF vmlinux from the bzImage (qemu boots it via PVH).

    Why: decompressing the bzImage inside the guest under TCG costs about 2 s per boot, while
    doing it here with liblzma takes well under a second.  Falls back to the bzImage itself when
    the payload is not xz or the result has no ELF header.
    """
    data = kernel.image.read_bytes()
    if len(data) < 0x250 or data[0x202:0x206] != b"HdrS":
        return kernel.image
    setup_sects = data[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    payload = data[start : start + payload_length]
    if not payload.startswith(b"\xfd7zXZ\x00"):
        return kernel.image
    decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    try:
        vmlinux = decompressor.decompress(payload)
    except lzma.LZMAError:
        return kernel.image
    if not vmlinux.startswith(b"\x7fELF"):
        return kernel.image
    out = dest / f"vmlinux-{kernel.version}"
    out.write_bytes(vmlinux)
    return out


# --------------------------------------------------------------------------- initramfs


def resolve_modules(moddir: Path, names: Sequence[str]) -> list[Path]:
    """Module files for ``names`` and their dependencies, in load order (deps first).

    Modules built into the kernel (modules.builtin) are left out; an unknown name is an error.
    """
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        if ":" not in line:
            continue
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
        by_name[_module_name(mod)] = mod
    builtin: set[str] = set()
    builtin_file = moddir / "modules.builtin"
    if builtin_file.is_file():
        builtin = {_module_name(m) for m in builtin_file.read_text().split()}

    order: list[str] = []

    def visit(mod: str) -> None:
        if mod in order:
            return
        # modules.dep lists the full closure, deepest last; visiting each dep's own entry first
        # keeps the order right even when that list is not sorted.
        for dep in reversed(deps.get(mod, [])):
            visit(dep)
        order.append(mod)

    for name in names:
        key = name.replace("-", "_")
        if key in by_name:
            visit(by_name[key])
        elif key not in builtin:
            raise VMUnavailableError(f"kernel module {name}: not in {moddir}/modules.dep")
    return [moddir / m for m in order]


def _module_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    base = re.sub(r"\.ko(\.(xz|zst|gz))?$", "", base)
    return base.replace("-", "_")


def _module_bytes(path: Path) -> bytes:
    """The module as insmod wants it: busybox insmod cannot read compressed modules."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        import gzip

        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        zstd = shutil.which("zstd")
        if zstd is None:
            raise VMUnavailableError(f"{path}: zstd-compressed module and no zstd binary")
        return subprocess.run(
            [zstd, "-dc", str(path)], check=True, capture_output=True
        ).stdout
    return data


class _Cpio:
    """A minimal newc cpio writer: enough for an initramfs, no external cpio needed."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"") -> None:
        encoded = name.encode() + b"\0"
        header = (
            "070701"
            + "".join(
                f"{v:08x}"
                for v in (self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
            )
        ).encode()
        self._ino += 1
        self._chunks.append(header + encoded + b"\0" * (-(len(header) + len(encoded)) % 4))
        self._chunks.append(data + b"\0" * (-len(data) % 4))

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        blob = b"".join(self._chunks)
        return blob + b"\0" * (-len(blob) % 512)


_INIT = r"""#!/bin/busybox sh
# Generated by tests/vm/vmharness.py.  Mount the host root read-only, overlay a tmpfs on it,
# mount cgroup2, then switch_root into it and run $X/cmd.sh there (see _STAGE2).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() {
    echo "vm-init: $*" > /dev/ttyS0
    [ -d /xfer ] && echo "vm-init: $*" >> /xfer/init.log
    poweroff -f
    sleep 10
}
for m in $(cat /modules/order); do
    insmod "/modules/$m" || fail "insmod $m failed"
done
mkdir -p /host /xfer /ovl /newroot
mount -t 9p -o "@NINEP@" xfer /xfer || fail "mount of the transfer share failed"
mount -t 9p -o "@NINEP@,ro,cache=loose" hostroot /host || fail "mount of the host root failed"
# The overlay's upper and work directories live on their own tmpfs: they cannot be on the
# overlay root itself.
mount -t tmpfs -o mode=0755 ovl /ovl || fail "tmpfs for the overlay failed"
mkdir -p /ovl/upper /ovl/work
mount -t overlay -o lowerdir=/host,upperdir=/ovl/upper,workdir=/ovl/work overlay /newroot \
    || fail "overlay root failed"
R=/newroot
mount -t tmpfs -o mode=0755,nosuid,nodev run $R/run || fail "tmpfs /run failed"
mount -t tmpfs -o mode=1777,nosuid,nodev tmp $R/tmp || fail "tmpfs /tmp failed"
# A checkout under /tmp or /run (CI clones into a temporary directory) would be hidden by the
# fresh tmpfs: lay it over again, writable, at the same path.
REPO="@REPO@"
case "$REPO" in
/tmp/*|/run/*)
    mkdir -p /ovl/repo-upper /ovl/repo-work $R$REPO
    mount -t overlay -o lowerdir=/host$REPO,upperdir=/ovl/repo-upper,workdir=/ovl/repo-work \
        overlay $R$REPO || fail "overlay of the checkout $REPO failed"
    ;;
esac
mkdir -p $R/run/vm/xfer
cp /bin/busybox /stage2 $R/run/vm/
mount --move /xfer $R/run/vm/xfer
mount --move /proc $R/proc
mount --move /sys $R/sys
mount --move /dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts $R/dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev shm $R/dev/shm
mount -t cgroup2 -o nsdelegate cgroup2 $R/sys/fs/cgroup || fail "mount of cgroup2 failed"
# One controller per write: a write naming several fails whole if any one is unavailable.
for c in $(cat $R/sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" > $R/sys/fs/cgroup/cgroup.subtree_control \
        || echo "vm-init: could not enable controller $c" >> $R/run/vm/xfer/init.log
done
# Autoload modules (bridge, veth, nf_tables, ...) with the host's kmod from the shared root.
echo /sbin/modprobe > $R/proc/sys/kernel/modprobe
hostname llmos-vm
exec switch_root $R /run/vm/busybox sh /run/vm/stage2
fail "switch_root failed"
"""

_STAGE2 = r"""# PID 1 after switch_root (busybox sh).  Runs the command, reports, powers off.
BB=/run/vm/busybox
X=/run/vm/xfer
$BB ip link set lo up
$BB cat /proc/uptime > $X/started
# Debian's /bin/sh, not busybox's: busybox would run its own applets for names like `ip`.
if [ -x /bin/sh ]; then SH=/bin/sh; else SH="$BB sh"; fi
$SH $X/cmd.sh < /dev/null > $X/output 2>&1
echo $? > $X/rc.tmp
$BB mv $X/rc.tmp $X/rc
$BB sync
$BB poweroff -f
$BB sleep 10
"""


def build_initramfs(workdir: Path, kernel: Kernel | None = None) -> Path:
    """Write an uncompressed initramfs (busybox-static, modules, /init) into workdir.

    Uncompressed on purpose: unpacking costs nothing, while decompressing under TCG is slow.
    """
    kernel = kernel or find_kernel()
    busybox = find_busybox()
    modules = resolve_modules(kernel.modules_dir, INITRAMFS_MODULES)
    archive = _Cpio()
    for d in ("bin", "dev", "proc", "sys", "modules", "host", "xfer", "ovl", "newroot"):
        archive.directory(d)
    archive.file("bin/busybox", busybox.read_bytes(), 0o755)
    archive.symlink("bin/sh", "busybox")
    names: list[str] = []
    for module in modules:
        name = re.sub(r"\.(xz|zst|gz)$", "", module.name)
        archive.file(f"modules/{name}", _module_bytes(module))
        names.append(name)
    archive.file("modules/order", ("\n".join(names) + "\n").encode())
    init = _INIT.replace("@NINEP@", NINEP_OPTS).replace("@REPO@", str(REPO_ROOT))
    archive.file("init", init.encode(), 0o755)
    archive.file("stage2", _STAGE2.encode(), 0o755)
    out = workdir / "initramfs.cpio"
    out.write_bytes(archive.finish())
    return out


def prepare_boot_image(workdir: Path) -> BootImage:
    kernel = find_kernel()
    return BootImage(kernel=unpack_kernel(kernel, workdir), initrd=build_initramfs(workdir, kernel))


@contextlib.contextmanager
def boot_image() -> Iterator[BootImage]:
    """A BootImage in a temporary directory that is removed on exit; share it between boots."""
    with tempfile.TemporaryDirectory(prefix="llmos-vmimage-") as tmp:
        yield prepare_boot_image(Path(tmp))


# --------------------------------------------------------------------------- running


def guest_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the guest command: a small fixed set, not the host's (no secrets)."""
    path = os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    python_dir = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{python_dir}:{path}",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "TMPDIR": "/tmp",
        IN_VM_ENV: "1",
        "LLMOS_VM_OUT": GUEST_OUT,
    }
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    env.update(extra or {})
    return env


def _command_script(command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> str:
    lines = ["# generated by tests/vm/vmharness.py", f"mkdir -p {shlex.quote(GUEST_OUT)}"]
    lines.append(f"cd {shlex.quote(str(cwd))} || exit 125")
    for key, value in env.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"env: {key!r} is not a valid variable name")
        lines.append(f"export {key}={shlex.quote(value)}")
    lines.append("exec " + " ".join(shlex.quote(arg) for arg in command))
    return "\n".join(lines) + "\n"


def _die_with_parent() -> None:
    """In the qemu child: get SIGKILL if the test process dies, so no VM outlives it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def _qemu_argv(
    image: BootImage, xfer: Path, workdir: Path, memory_mb: int, cpus: int,
    scratch_disk: Path | None,
) -> list[str]:
    qemu = shutil.which(QEMU)
    if qemu is None:
        raise VMUnavailableError(f"{QEMU} not found (apt-get install qemu-system-x86)")
    argv = [
        qemu,
        "-accel", "tcg,thread=multi",
        "-cpu", "max",
        # q35 boots ~2 s faster than the default i440fx machine under TCG (measured).
        "-machine", "q35",
        "-smp", str(cpus),
        "-m", str(memory_mb),
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-monitor", "none",
        "-serial", f"file:{workdir / 'console.log'}",
        "-kernel", str(image.kernel),
        "-initrd", str(image.initrd),
        "-append", KERNEL_CMDLINE,
        "-virtfs",
        "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        "-virtfs", f"local,path={xfer},mount_tag=xfer,security_model=none",
    ]
    if scratch_disk is not None:
        argv += ["-drive", f"file={scratch_disk},if=virtio,format=raw,cache=unsafe"]
    return argv


def run_in_vm(
    command: Sequence[str],
    *,
    timeout: float,
    memory_mb: int = 1024,
    cpus: int = 2,
    env: Mapping[str, str] | None = None,
    cwd: Path | str = REPO_ROOT,
    image: BootImage | None = None,
    scratch_disk_mb: int | None = None,
    files: Mapping[str, str | bytes] | None = None,
) -> VMResult:
    """Boot the VM, run ``command`` (argv, no shell) as root in ``cwd``, power off.

    ``env`` adds to ``guest_env()``.  ``image`` reuses a prepared kernel + initramfs (see
    ``boot_image()``); without it one is built in the run's temporary directory.
    ``scratch_disk_mb`` attaches an empty raw virtio disk (/dev/vda in the guest, virtio_blk
    already loaded) for io controller tests.  ``files`` (name -> content) are put in
    ``GUEST_IN`` for the command to read (the host's /tmp is not visible: the guest's /tmp is a
    fresh tmpfs).  Raises VMTimeoutError (qemu killed) after
    ``timeout`` seconds of wall time, VMBootError if the command never reported.  The temporary
    directory and the qemu process are gone when this returns or raises.
    """
    if not command or not all(isinstance(a, str) for a in command):
        raise ValueError("command: must be a non-empty list of strings")
    with tempfile.TemporaryDirectory(prefix="llmos-vm-") as tmp:
        workdir = Path(tmp)
        xfer = workdir / "xfer"
        xfer.mkdir()
        (xfer / "out").mkdir()
        (xfer / "in").mkdir()
        for name, content in (files or {}).items():
            if "/" in name or name in ("", ".", ".."):
                raise ValueError(f"files: {name!r} must be a plain file name")
            data = content.encode() if isinstance(content, str) else content
            (xfer / "in" / name).write_bytes(data)
        (xfer / "cmd.sh").write_text(_command_script(command, Path(cwd), guest_env(env)))
        if image is None:
            image = prepare_boot_image(workdir)
        scratch = None
        if scratch_disk_mb is not None:
            scratch = workdir / "scratch.img"
            with scratch.open("wb") as f:
                f.truncate(scratch_disk_mb * 1024 * 1024)
        argv = _qemu_argv(image, xfer, workdir, memory_mb, cpus, scratch)
        return _boot(argv, workdir, xfer, timeout)


def _boot(argv: list[str], workdir: Path, xfer: Path, timeout: float) -> VMResult:
    started_file = xfer / "started"
    start = time.monotonic()
    boot_seconds = -1.0
    with (workdir / "qemu.stderr").open("wb") as stderr:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
            preexec_fn=_die_with_parent,
        )
        try:
            while True:
                try:
                    proc.wait(timeout=0.05)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if boot_seconds < 0 and started_file.exists():
                    boot_seconds = time.monotonic() - start
                if time.monotonic() - start > timeout:
                    proc.kill()
                    proc.wait()
                    raise VMTimeoutError(
                        f"guest did not finish within {timeout:.0f} s; qemu killed\n"
                        + _diagnostics(workdir, xfer)
                    )
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    total = time.monotonic() - start
    rc_file = xfer / "rc"
    if not rc_file.exists():
        raise VMBootError(
            f"guest stopped (qemu exit {proc.returncode}) before the command reported an exit "
            "status\n" + _diagnostics(workdir, xfer)
        )
    if boot_seconds < 0:
        boot_seconds = total
    files = {
        p.name: p.read_bytes() for p in sorted((xfer / "out").iterdir()) if p.is_file()
    }
    return VMResult(
        returncode=int(rc_file.read_text().strip()),
        output=_read(xfer / "output"),
        boot_seconds=boot_seconds,
        total_seconds=total,
        console=_read(workdir / "console.log"),
        files=files,
    )


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return ""


def _diagnostics(workdir: Path, xfer: Path, tail: int = 4000) -> str:
    parts = []
    for label, path in (
        ("qemu stderr", workdir / "qemu.stderr"),
        ("console", workdir / "console.log"),
        ("init log", xfer / "init.log"),
        ("command output", xfer / "output"),
    ):
        text = _read(path)
        if text:
            parts.append(f"--- {label} (last {tail} chars) ---\n{text[-tail:]}")
    return "\n".join(parts) or "(no output from qemu or the guest)"


# --------------------------------------------------------------------------- pytest in the guest

_REPORT_PLUGIN = "_llmos_vm_report"
_REPORT_SOURCE = '''"""Records test outcomes by node id for tests/vm/vmharness.py, in the guest."""
import json
import os

_outcomes = {}


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        if report.outcome == "failed" and report.when != "call":
            outcome = "error"
        else:
            outcome = report.outcome
        if _outcomes.get(report.nodeid) in (None, "passed"):
            _outcomes[report.nodeid] = outcome


def pytest_sessionfinish(session, exitstatus):
    path = os.path.join(os.environ["LLMOS_VM_OUT"], "pytest-outcomes.json")
    with open(path, "w") as f:
        json.dump({"exit_code": int(exitstatus), "outcomes": _outcomes}, f)
'''


def run_pytest_in_vm(
    node_ids: Sequence[str],
    *,
    timeout: float,
    pytest_args: Sequence[str] = (),
    plugins: Sequence[str] | None = (),
    memory_mb: int = 1024,
    cpus: int = 2,
    env: Mapping[str, str] | None = None,
    image: BootImage | None = None,
    scratch_disk_mb: int | None = None,
) -> PytestResult:
    """Run pytest on ``node_ids`` (paths or node ids relative to the repo root) in the guest.

    This is the hook for proving code on the pure cgroup v2 kernel, e.g.
    ``run_pytest_in_vm(["tests/integration/runtime/test_limits.py"], timeout=240)``.
    It uses the interpreter running this process (``sys.executable``) with its site-packages,
    from the repo root, with ``LLMOS_IN_VM=1``.  ``exit_code`` is pytest's; ``outcomes`` maps
    every node id that ran to its outcome.  Budget the timeout generously: code runs 15-25x
    slower than on the host, and pytest's own start-up costs several seconds.

    ``plugins``: by default no installed plugin is autoloaded (PYTEST_DISABLE_PLUGIN_AUTOLOAD):
    importing them all (hypothesis, benchmark, ...) made pytest's start-up ~4x slower in the
    guest.  Name the ones a test needs (``plugins=["pytest_timeout"]``, passed as ``-p``), or
    pass None to autoload every installed plugin as on the host.
    """
    extra = dict(env or {})
    pythonpath = [GUEST_IN]
    inherited = extra.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    if inherited:
        pythonpath.append(inherited)
    extra["PYTHONPATH"] = ":".join(pythonpath)
    plugin_args: list[str] = []
    if plugins is not None:
        extra.setdefault("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        for plugin in plugins:
            plugin_args += ["-p", plugin]
    command = [
        sys.executable, "-m", "pytest", "-p", _REPORT_PLUGIN, "-p", "no:cacheprovider",
        *plugin_args, *pytest_args, *node_ids,
    ]
    result = run_in_vm(
        command, timeout=timeout, memory_mb=memory_mb, cpus=cpus, env=extra, image=image,
        scratch_disk_mb=scratch_disk_mb, files={f"{_REPORT_PLUGIN}.py": _REPORT_SOURCE},
    )
    report = result.files.get("pytest-outcomes.json")
    outcomes: dict[str, str] = {}
    if report is not None:
        outcomes = {str(k): str(v) for k, v in json.loads(report)["outcomes"].items()}
    return PytestResult(
        exit_code=result.returncode,
        outcomes=outcomes,
        output=result.output,
        boot_seconds=result.boot_seconds,
        total_seconds=result.total_seconds,
        files={k: v for k, v in result.files.items() if k != "pytest-outcomes.json"},
    )


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python3 tests/vm/vmharness.py run -- CMD...`` or ``... pytest NODE_ID...``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("mode", choices=("run", "pytest"))
    parser.add_argument("args", nargs="+", help="the command, or pytest node ids and options")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--memory-mb", type=int, default=1024)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--scratch-disk-mb", type=int, default=None)
    ns = parser.parse_args(argv)
    missing = missing_prerequisites()
    if missing:
        print("cannot boot the VM: " + "; ".join(missing), file=sys.stderr)
        return 2
    common = {"timeout": ns.timeout, "memory_mb": ns.memory_mb, "cpus": ns.cpus}
    if ns.mode == "run":
        result = run_in_vm(ns.args, scratch_disk_mb=ns.scratch_disk_mb, **common)
        sys.stdout.write(result.output)
        code, boot, total = result.returncode, result.boot_seconds, result.total_seconds
    else:
        pyresult = run_pytest_in_vm(ns.args, scratch_disk_mb=ns.scratch_disk_mb, **common)
        sys.stdout.write(pyresult.output)
        code, boot, total = pyresult.exit_code, pyresult.boot_seconds, pyresult.total_seconds
    print(f"[vm] exit {code}, boot {boot:.1f} s, total {total:.1f} s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
