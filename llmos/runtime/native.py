"""The bridge to the C executor: a Plan becomes a `struct llmos_plan`, then a process.

cffi keeps Python objects alive only while something references them, so every string and
array handed to C is kept in one list for the lifetime of the call.
"""

from __future__ import annotations

import errno as errno_mod
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llmos.errors import RuntimeError_, StepError
from llmos.plan import DeviceNode, MountStep, Plan

MSG_PID = 1
MSG_HOOKS = 2
MSG_READY = 3
MSG_ERROR = 4
MSG_SHIM = 5

_MSG = struct.Struct("iiii496s")


def _lib() -> tuple[Any, Any]:
    try:
        from llmos._native import ffi, lib
    except ImportError as e:  # pragma: no cover - a broken install
        raise RuntimeError_(
            f"the llmos native extension is not built ({e}); reinstall with `pip install .`"
        ) from None
    return ffi, lib


def shim_path() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(__file__)), "libexec", "llmos-shim")


class _Keep:
    """Owns the cffi allocations of one plan."""

    def __init__(self, ffi: Any) -> None:
        self.ffi = ffi
        self.items: list[Any] = []

    def s(self, text: str | None) -> Any:
        if text is None:
            return self.ffi.NULL
        c = self.ffi.new("char[]", os.fsencode(text))
        self.items.append(c)
        return c

    def strv(self, items: Sequence[str]) -> Any:
        arr = self.ffi.new("char *[]", [self.s(x) for x in items] + [self.ffi.NULL])
        self.items.append(arr)
        return arr

    def new(self, ctype: str, init: Any = None) -> Any:
        obj = self.ffi.new(ctype, init)
        self.items.append(obj)
        return obj


def _fill_mounts(k: _Keep, mounts: Sequence[MountStep]) -> Any:
    arr = k.new(f"struct llmos_mount[{max(len(mounts), 1)}]")
    for i, m in enumerate(mounts):
        c = arr[i]
        c.source = k.s(m.source)
        c.target = k.s(m.target)
        c.fstype = k.s(m.fstype)
        c.flags = m.flags
        c.data = k.s(m.data)
        c.propagation = m.propagation
        c.remount_flags = m.remount_flags
        c.is_file = int(m.is_file)
    return arr


def _fill_devices(k: _Keep, devices: Sequence[DeviceNode]) -> Any:
    arr = k.new(f"struct llmos_device[{max(len(devices), 1)}]")
    for i, d in enumerate(devices):
        c = arr[i]
        c.path = k.s(d.path)
        c.mode = d.mode
        c.major = d.major
        c.minor = d.minor
        c.uid = d.uid
        c.gid = d.gid
        c.bind = int(d.bind)
    return arr


def to_c(plan: Plan) -> tuple[Any, _Keep]:
    ffi, _ = _lib()
    k = _Keep(ffi)
    p = k.new("struct llmos_plan *")
    p.clone_flags = plan.clone_flags
    p.n_join = len(plan.join)
    p.join_paths = k.new("const char *[]", [k.s(path) for path, _ in plan.join] or [ffi.NULL])
    p.join_types = k.new("int[]", [t for _, t in plan.join] or [0])
    p.uid_map = k.s(plan.uid_map)
    p.gid_map = k.s(plan.gid_map)
    p.deny_setgroups = int(plan.deny_setgroups)
    p.cgroup_v2_dir = k.s(plan.cgroup_v2_dir)
    p.n_cgroup_procs = len(plan.cgroup_procs)
    p.cgroup_procs = k.new("const char *[]", [k.s(x) for x in plan.cgroup_procs] or [ffi.NULL])
    p.hostname = k.s(plan.hostname)
    p.domainname = k.s(plan.domainname)
    p.root_propagation = plan.root_propagation
    p.rootfs = k.s(plan.rootfs)
    p.n_rootfs_mounts = len(plan.rootfs_mounts)
    p.rootfs_mounts = _fill_mounts(k, plan.rootfs_mounts)
    p.rootfs_mount_cwd = k.s(plan.rootfs_mount_cwd)
    p.n_mounts = len(plan.mounts)
    p.mounts = _fill_mounts(k, plan.mounts)
    p.n_devices = len(plan.devices)
    p.devices = _fill_devices(k, plan.devices)
    p.n_symlinks = len(plan.symlinks)
    links = k.new(f"struct llmos_symlink[{max(len(plan.symlinks), 1)}]")
    for i, (target, path) in enumerate(plan.symlinks):
        links[i].target = k.s(target)
        links[i].linkpath = k.s(path)
    p.symlinks = links
    p.rootfs_propagation = plan.rootfs_propagation
    p.n_masked = len(plan.masked_paths)
    p.masked_paths = k.new("const char *[]", [k.s(x) for x in plan.masked_paths] or [ffi.NULL])
    p.n_readonly = len(plan.readonly_paths)
    p.readonly_paths = k.new(
        "const char *[]", [k.s(x) for x in plan.readonly_paths] or [ffi.NULL]
    )
    p.readonly_root = int(plan.readonly_root)
    p.n_sysctls = len(plan.sysctls)
    kv = k.new(f"struct llmos_kv[{max(len(plan.sysctls), 1)}]")
    for i, (key, value) in enumerate(plan.sysctls):
        kv[i].key = k.s(key)
        kv[i].value = k.s(value)
    p.sysctls = kv
    p.cwd = k.s(plan.cwd)
    p.exec_path = k.s(plan.exec_path)
    p.set_umask = int(plan.umask is not None)
    p.umask = plan.umask or 0
    p.argv = k.strv(plan.argv)
    p.envp = k.strv(plan.env)
    p.set_oom_score_adj = int(plan.oom_score_adj is not None)
    p.oom_score_adj = plan.oom_score_adj or 0
    p.n_rlimits = len(plan.rlimits)
    rl = k.new(f"struct llmos_rlimit[{max(len(plan.rlimits), 1)}]")
    for i, (res, soft, hard) in enumerate(plan.rlimits):
        rl[i].resource = res
        rl[i].soft = soft
        rl[i].hard = hard
    p.rlimits = rl
    p.personality = plan.personality
    p.uid = plan.uid
    p.gid = plan.gid
    p.n_groups = len(plan.groups)
    p.groups = k.new("unsigned int[]", plan.groups or [0])
    caps = plan.capabilities
    p.set_caps = int(caps is not None)
    if caps is not None:
        p.cap_bounding = caps.bounding
        p.cap_effective = caps.effective
        p.cap_permitted = caps.permitted
        p.cap_inheritable = caps.inheritable
        p.cap_ambient = caps.ambient
    p.no_new_privs = int(plan.no_new_privs)
    if plan.seccomp:
        if len(plan.seccomp) % 8:
            raise RuntimeError_("seccomp program is not a whole number of instructions")
        buf = k.new("unsigned char[]", plan.seccomp)
        p.seccomp_prog = buf
        p.seccomp_len = len(plan.seccomp) // 8
    p.seccomp_flags = plan.seccomp_flags
    p.stdio = list(plan.stdio)
    p.console_socket = k.s(plan.console_socket)
    p.console_to_monitor = int(plan.console_to_monitor)
    p.attach_socket = k.s(plan.attach_socket)
    p.console_rows, p.console_cols = plan.console_size
    p.exec_fifo = k.s(plan.exec_fifo)
    p.hooks_sync = int(plan.hooks_sync)
    p.loopback_up = int(plan.loopback_up)
    p.n_preserve_fds = plan.preserve_fds
    p.shim_path = k.s(plan.shim_path)
    p.exit_file = k.s(plan.exit_file)
    p.log_file = k.s(plan.log_file)
    p.join_pid = plan.join_pid
    return p, k


@dataclass
class Message:
    type: int
    pid: int
    step: int
    err: int
    text: str


def read_message(fd: int) -> Message | None:
    """One message from the sync socket, or None at EOF."""
    while True:
        try:
            data = os.read(fd, _MSG.size)
            break
        except InterruptedError:
            continue
    if not data:
        return None
    typ, pid, step, err, raw = _MSG.unpack(data.ljust(_MSG.size, b"\0"))
    return Message(typ, pid, step, err, raw.split(b"\0", 1)[0].decode(errors="replace"))


def step_error(msg: Message) -> StepError:
    _, lib = _lib()
    ffi, _ = _lib()
    step = ffi.string(lib.llmos_step_name(msg.step)).decode()
    code = 125
    if step == "exec":
        code = 127 if msg.err == errno_mod.ENOENT else 126
    return StepError(step, msg.err, msg.text or step, exit_code=code)


@dataclass
class Spawned:
    pid: int
    shim_pid: int


def spawn(plan: Plan, on_hooks: Callable[[int], None] | None = None) -> Spawned:
    """Start the container; returns once it runs (or waits on its exec FIFO).

    `on_hooks(pid)` runs at the child's pause before pivot_root (createRuntime and
    createContainer hooks); if it raises, the child is told to fail and the error propagates.
    """
    _, lib = _lib()
    p, keep = to_c(plan)
    fd = lib.llmos_spawn(p)
    if fd < 0:
        e = _errno()
        raise StepError("fork", e, f"fork: {os.strerror(e)}")
    pid = shim = 0
    try:
        while True:
            msg = read_message(fd)
            if msg is None:
                break
            if msg.type == MSG_PID:
                pid = msg.pid
            elif msg.type == MSG_SHIM:
                shim = msg.pid
            elif msg.type == MSG_ERROR:
                err = step_error(msg)
                err.shim_pid = shim  # the caller waits for it before removing state
                raise err
            elif msg.type == MSG_HOOKS:
                try:
                    if on_hooks is not None:
                        on_hooks(pid)
                except BaseException:
                    os.write(fd, b"\1")
                    raise
                os.write(fd, b"\0")
            elif msg.type == MSG_READY:
                break
    finally:
        os.close(fd)
        del keep
    if pid == 0:
        raise StepError("clone", 0, "the container process was not created")
    return Spawned(pid, shim)


def exec_process(plan: Plan) -> tuple[int, int]:
    """Start a process in a running container: (waiter pid, process pid)."""
    ffi, lib = _lib()
    p, keep = to_c(plan)
    fdp = ffi.new("int *")
    waiter = lib.llmos_exec(p, fdp)
    if waiter < 0:
        e = _errno()
        raise StepError("fork", e, f"fork: {os.strerror(e)}")
    fd = fdp[0]
    pid = 0
    try:
        while True:
            msg = read_message(fd)
            if msg is None:
                break
            if msg.type == MSG_PID:
                pid = msg.pid
            elif msg.type == MSG_ERROR:
                os.waitpid(waiter, 0)
                raise step_error(msg)
    finally:
        os.close(fd)
        del keep
    return waiter, pid


def _errno() -> int:
    ffi, _ = _lib()
    return int(ffi.errno)


def pidfd_open(pid: int) -> int:
    _, lib = _lib()
    fd = int(lib.llmos_pidfd_open(pid))
    if fd < 0:
        e = _errno()
        raise OSError(e, os.strerror(e))
    return fd


def netns_new(path: str) -> None:
    """A network namespace held at `path` (a bind mount), for a container to join."""
    _, lib = _lib()
    if lib.llmos_netns_new(path.encode()) != 0:
        e = _errno()
        raise OSError(e, f"make network namespace {path}: {os.strerror(e)}")


def netns_remove(path: str) -> None:
    """Release what netns_new made; the namespace ends once no process is left in it."""
    _, lib = _lib()
    if lib.llmos_netns_remove(path.encode()) != 0:
        e = _errno()
        raise OSError(e, f"remove network namespace {path}: {os.strerror(e)}")
