"""The few bpf(2) commands a cgroup v2 device filter needs, through ctypes.

cgroup v2 has no devices.allow file: device access is decided by an eBPF program of type
BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup. This module loads one program and makes it
the only llmos program on a cgroup (attach the new one, then detach the ones it replaces, so
there is never a moment without a filter). Programs attached with BPF_F_ALLOW_MULTI coexist
with whatever the host attached higher up, as with runc.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

from ..errors import CgroupError, UnsupportedResource

__all__ = ["attach_device_program", "attached_program_ids", "load_device_program"]

_SYSCALL_NR = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    nr = _SYSCALL_NR.get(platform.machine())
    if nr is None:
        raise UnsupportedResource(f"bpf: unknown syscall number on {platform.machine()}")
    ret = int(_libc.syscall(ctypes.c_long(nr), ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr))))
    if ret < 0:
        code = ctypes.get_errno()
        raise CgroupError(f"{what}: {os.strerror(code)}", errno=code)
    return ret


def load_device_program(code: bytes, name: str = "llmos_dev") -> int:
    """Load instructions as a cgroup device program; returns its fd (caller closes it).

    The verifier log is only requested after a failure, so the common path stays cheap.
    """
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"Apache-2.0")

    def attempt(log: ctypes.Array[ctypes.c_char] | None) -> int:
        attr = ctypes.create_string_buffer(
            struct.pack(
                "<IIQQIIQII16sII",
                BPF_PROG_TYPE_CGROUP_DEVICE,
                len(code) // 8,
                ctypes.addressof(insns),
                ctypes.addressof(license_),
                1 if log is not None else 0,
                len(log) if log is not None else 0,
                ctypes.addressof(log) if log is not None else 0,
                0,
                0,
                name.encode()[:15],
                0,
                BPF_CGROUP_DEVICE,
            ),
            80,
        )
        return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD) device filter")

    try:
        return attempt(None)
    except CgroupError as exc:
        log = ctypes.create_string_buffer(65536)
        try:
            return attempt(log)
        except CgroupError:
            detail = log.value.decode(errors="replace").strip().splitlines()[-3:]
            raise CgroupError(f"{exc}; verifier: {' | '.join(detail)}", errno=exc.errno) from exc


def attached_program_ids(cgroup_fd: int) -> list[int]:
    """Ids of the device programs attached directly to the cgroup."""
    ids = (ctypes.c_uint32 * 64)()
    attr = ctypes.create_string_buffer(
        struct.pack("<IIIIQI4x", cgroup_fd, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), 64),
        40,
    )
    _bpf(BPF_PROG_QUERY, attr, "bpf(BPF_PROG_QUERY) device filter")
    count = struct.unpack_from("<I", attr, 24)[0]
    return [int(ids[i]) for i in range(min(count, 64))]


def _prog_fd(prog_id: int) -> int:
    attr = ctypes.create_string_buffer(struct.pack("<III", prog_id, 0, 0), 16)
    return _bpf(BPF_PROG_GET_FD_BY_ID, attr, f"bpf(BPF_PROG_GET_FD_BY_ID {prog_id})")


def _attach_cmd(cmd: int, cgroup_fd: int, prog_fd: int, flags: int, what: str) -> None:
    attr = ctypes.create_string_buffer(
        struct.pack("<IIIII", cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, flags, 0), 24
    )
    _bpf(cmd, attr, what)


def attach_device_program(cgroup_dir: str, prog_fd: int) -> None:
    """Attach ``prog_fd`` to the cgroup and detach the device programs it replaces."""
    try:
        cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise CgroupError(f"open {cgroup_dir}: {exc.strerror}", path=cgroup_dir) from exc
    try:
        old = attached_program_ids(cg)
        try:
            what = f"attach device filter to {cgroup_dir}"
            _attach_cmd(BPF_PROG_ATTACH, cg, prog_fd, BPF_F_ALLOW_MULTI, what)
        except CgroupError as exc:
            raise CgroupError(str(exc), path=cgroup_dir, errno=exc.errno) from exc
        for prog_id in old:
            fd = _prog_fd(prog_id)
            try:
                _attach_cmd(BPF_PROG_DETACH, cg, fd, 0, f"detach device filter {prog_id}")
            finally:
                os.close(fd)
    finally:
        os.close(cg)
