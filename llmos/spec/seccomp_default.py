"""Docker's default seccomp profile, as data, and its resolution for one container.

Docker's profile (moby ``profiles/seccomp/default.json``) is an allowlist: every syscall not
listed fails with EPERM. Some entries only apply on some architectures, from some kernel
version, or when the container holds a capability (``mount`` is allowed only with
CAP_SYS_ADMIN); others are excluded by a capability (``clone`` loses its namespace-flag
filter when CAP_SYS_ADMIN is held). ``docker_default_seccomp`` resolves those conditions the
way Docker's daemon does for a given capability set and host, giving a plain OCI profile.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from llmos.spec.linux import Seccomp, SeccompArg, SeccompSyscall

EPERM: Final = 1
ENOSYS: Final = 38

# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
# CLONE_NEWNET: clone() may not create namespaces without CAP_SYS_ADMIN.
CLONE_NAMESPACE_FLAGS: Final = 0x7E020000


@dataclass(frozen=True)
class ProfileRule:
    """One entry of the profile, with Docker's include/exclude conditions.

    ``caps``: all must be in the bounding set; ``arches``: the host must be one of them
    (Go architecture names, as Docker writes them); ``not_caps``/``not_arches``: the rule is
    dropped if any matches; ``min_kernel``: (major, minor) the host kernel must reach.
    """

    names: tuple[str, ...]
    action: str = "SCMP_ACT_ALLOW"
    errno_ret: int | None = None
    args: tuple[SeccompArg, ...] = ()
    caps: tuple[str, ...] = ()
    arches: tuple[str, ...] = ()
    not_caps: tuple[str, ...] = ()
    not_arches: tuple[str, ...] = ()
    min_kernel: tuple[int, int] | None = None


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _arg(index: int, value: int, op: str, value_two: int | None = None) -> SeccompArg:
    return SeccompArg(index=index, value=value, op=op, value_two=value_two)


_ALWAYS_ALLOWED = _names(
    """
    accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32
    clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
    clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect
    copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
    epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
    exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
    fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr
    flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync
    ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd getdents
    getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32
    getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid
    getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname
    getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch
    inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents
    io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter
    io_uring_register io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset
    landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr llistxattr
    _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise membarrier memfd_create
    memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect
    mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
    mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall
    munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause
    pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll
    ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6
    pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv
    recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat
    renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask
    rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64
    rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max
    sched_get_priority_min sched_getscheduler sched_rr_get_interval
    sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
    sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
    semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
    setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
    setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
    setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid
    setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
    sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx
    symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
    timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64
    timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times
    tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat
    utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
    """
)

DOCKER_DEFAULT_PROFILE: Final[tuple[ProfileRule, ...]] = (
    ProfileRule(names=_ALWAYS_ALLOWED),
    ProfileRule(names=("process_vm_readv", "process_vm_writev", "ptrace"), min_kernel=(4, 8)),
    # AF_VSOCK (40) sockets are refused: vsock reaches the host across namespaces.
    ProfileRule(names=("socket",), args=(_arg(0, 40, "SCMP_CMP_NE"),)),
    # personality() only to query or to set the harmless domains (PER_LINUX, PER_LINUX32,
    # UNAME26 variants); no ADDR_NO_RANDOMIZE and friends.
    *(
        ProfileRule(names=("personality",), args=(_arg(0, value, "SCMP_CMP_EQ"),))
        for value in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
    ),
    ProfileRule(names=("sync_file_range2", "swapcontext"), arches=("ppc64le",)),
    ProfileRule(
        names=_names(
            "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls"
        ),
        arches=("arm", "arm64"),
    ),
    ProfileRule(names=("arch_prctl",), arches=("amd64", "x32")),
    ProfileRule(names=("modify_ldt",), arches=("amd64", "x32", "x86")),
    ProfileRule(
        names=("s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"),
        arches=("s390", "s390x"),
    ),
    ProfileRule(names=("riscv_flush_icache",), arches=("riscv64",)),
    ProfileRule(names=("open_by_handle_at",), caps=("CAP_DAC_READ_SEARCH",)),
    ProfileRule(
        names=_names(
            """
            bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount
            mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd
            setdomainname sethostname setns syslog umount umount2 unshare
            """
        ),
        caps=("CAP_SYS_ADMIN",),
    ),
    # Without CAP_SYS_ADMIN, clone() may run only when it asks for no new namespace.
    ProfileRule(
        names=("clone",),
        args=(_arg(0, CLONE_NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ"),),
        not_caps=("CAP_SYS_ADMIN",),
        not_arches=("s390", "s390x"),
    ),
    ProfileRule(
        names=("clone",),
        args=(_arg(1, CLONE_NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ"),),
        arches=("s390", "s390x"),
        not_caps=("CAP_SYS_ADMIN",),
    ),
    # clone3 passes its flags in memory, where seccomp cannot look: say ENOSYS so that libc
    # falls back to clone(), whose flags the rule above can check.
    ProfileRule(
        names=("clone3",), action="SCMP_ACT_ERRNO", errno_ret=ENOSYS, not_caps=("CAP_SYS_ADMIN",)
    ),
    ProfileRule(names=("reboot",), caps=("CAP_SYS_BOOT",)),
    ProfileRule(names=("chroot",), caps=("CAP_SYS_CHROOT",)),
    ProfileRule(names=("delete_module", "init_module", "finit_module"), caps=("CAP_SYS_MODULE",)),
    ProfileRule(names=("acct",), caps=("CAP_SYS_PACCT",)),
    ProfileRule(
        names=_names("kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace"),
        caps=("CAP_SYS_PTRACE",),
    ),
    ProfileRule(names=("iopl", "ioperm"), caps=("CAP_SYS_RAWIO",)),
    ProfileRule(
        names=("settimeofday", "stime", "clock_settime", "clock_settime64"),
        caps=("CAP_SYS_TIME",),
    ),
    ProfileRule(names=("vhangup",), caps=("CAP_SYS_TTY_CONFIG",)),
    ProfileRule(
        names=("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"),
        caps=("CAP_SYS_NICE",),
    ),
    ProfileRule(names=("syslog",), caps=("CAP_SYSLOG",)),
    ProfileRule(names=("bpf",), caps=("CAP_BPF",)),
    ProfileRule(names=("perf_event_open",), caps=("CAP_PERFMON",)),
)

DOCKER_ARCH_MAP: Final[Mapping[str, tuple[str, ...]]] = {
    "SCMP_ARCH_X86_64": ("SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "SCMP_ARCH_AARCH64": ("SCMP_ARCH_ARM",),
    "SCMP_ARCH_MIPS64": ("SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"),
    "SCMP_ARCH_MIPS64N32": ("SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"),
    "SCMP_ARCH_MIPSEL64": ("SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"),
    "SCMP_ARCH_MIPSEL64N32": ("SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"),
    "SCMP_ARCH_S390X": ("SCMP_ARCH_S390",),
    "SCMP_ARCH_RISCV64": (),
}
"""The architectures Docker allows next to the native one (its ``archMap``)."""

# uname -m -> (Docker's architecture name, the native SCMP_ARCH_*)
MACHINES: Final[Mapping[str, tuple[str, str]]] = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "i386": ("386", "SCMP_ARCH_X86"),
    "i686": ("386", "SCMP_ARCH_X86"),
}

# What llmos's compiler can filter (see seccomp.py): the x32 ABI is always refused and
# 32-bit ARM has no syscall table, so profiles leave those out instead of warning on each use.
_COMPILABLE = frozenset({"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"})


def host_kernel() -> tuple[int, int]:
    """The running kernel's (major, minor)."""
    m = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _applies(rule: ProfileRule, caps: frozenset[str], goarch: str, kernel: tuple[int, int]) -> bool:
    if goarch in rule.not_arches or caps & set(rule.not_caps):
        return False
    if rule.arches and goarch not in rule.arches:
        return False
    if not set(rule.caps) <= caps:
        return False
    return rule.min_kernel is None or kernel >= rule.min_kernel


def docker_default_seccomp(
    capabilities: Iterable[str],
    *,
    machine: str | None = None,
    kernel: tuple[int, int] | None = None,
) -> Seccomp:
    """Docker's default profile resolved for a bounding set, host architecture and kernel.

    ``machine`` is ``uname -m`` (default: this host); ``kernel`` (major, minor) defaults to
    the running kernel. The result is a plain OCI profile: default EPERM, the allowed
    syscalls, and the argument rules for socket, personality and clone.
    """
    machine = machine or platform.machine()
    if machine not in MACHINES:
        raise ValueError(f"no default seccomp profile for architecture {machine!r}")
    goarch, native = MACHINES[machine]
    kernel = kernel or host_kernel()
    caps = frozenset(capabilities)
    arches = [native, *DOCKER_ARCH_MAP.get(native, ())]
    syscalls = [
        SeccompSyscall(
            names=list(rule.names),
            action=rule.action,
            errno_ret=rule.errno_ret,
            args=[dataclasses.replace(a) for a in rule.args],
        )
        for rule in DOCKER_DEFAULT_PROFILE
        if _applies(rule, caps, goarch, kernel)
    ]
    return Seccomp(
        default_action="SCMP_ACT_ERRNO",
        default_errno_ret=EPERM,
        architectures=[a for a in arches if a in _COMPILABLE],
        syscalls=syscalls,
    )
