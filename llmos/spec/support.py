"""Which fields of a valid config llmos cannot honour here.

The runtime spec lets a runtime refuse what it cannot do, but not ignore it: a container
started without the AppArmor profile or RDT class its config asks for would look fine and be
less confined or differently limited than intended. ``unsupported_fields`` names each such
field so the runtime can refuse the config with one message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from llmos.spec.model import Spec

UNIMPLEMENTED: Final[dict[str, str]] = {
    "process.ioPriority": "llmos does not set I/O priorities yet",
    "process.scheduler": "llmos does not set scheduling policies yet",
    "process.execCPUAffinity": "llmos does not set CPU affinity for exec yet",
    "linux.timeOffsets": "llmos does not set time namespace offsets yet",
    "linux.netDevices": "llmos does not move network devices into containers yet",
    "linux.memoryPolicy": "llmos does not set NUMA memory policies yet",
}
"""Valid fields the executor does not apply yet (remove an entry when it learns one)."""


@dataclass(frozen=True)
class HostSecurity:
    """Which Linux security modules this host has enabled."""

    apparmor: bool
    selinux: bool

    @classmethod
    def probe(cls) -> HostSecurity:
        """Look at this host's /sys."""
        try:
            apparmor = Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
        except OSError:
            apparmor = False
        return cls(apparmor=apparmor, selinux=Path("/sys/fs/selinux/enforce").exists())


def unsupported_fields(spec: Spec, host: HostSecurity | None = None) -> list[str]:
    """One ``"<json path>: <why>"`` line per field llmos cannot honour; empty when all is well.

    ``host`` defaults to probing this machine.
    """
    host = host or HostSecurity.probe()
    out: list[str] = []
    process, linux = spec.process, spec.linux
    if process is not None:
        if process.apparmor_profile:
            if host.apparmor:
                out.append("process.apparmorProfile: llmos does not apply AppArmor profiles yet")
            else:
                out.append("process.apparmorProfile: AppArmor is not enabled on this host")
        if process.selinux_label and not host.selinux:
            out.append("process.selinuxLabel: SELinux is not enabled on this host")
        for key, present in (
            ("process.ioPriority", process.io_priority is not None),
            ("process.scheduler", process.scheduler is not None),
            ("process.execCPUAffinity", process.exec_cpu_affinity is not None),
        ):
            if present:
                out.append(f"{key}: {UNIMPLEMENTED[key]}")
    if linux is not None:
        if linux.intel_rdt is not None:
            out.append("linux.intelRdt: llmos does not support Intel RDT (resctrl)")
        if linux.mount_label and not host.selinux:
            out.append("linux.mountLabel: SELinux is not enabled on this host")
        if linux.personality is not None and linux.personality.flags:
            out.append("linux.personality.flags: no personality flags are supported")
        seccomp = linux.seccomp
        if seccomp is not None:
            notify = seccomp.default_action == "SCMP_ACT_NOTIFY" or any(
                rule.action == "SCMP_ACT_NOTIFY" for rule in seccomp.syscalls
            )
            if notify or seccomp.listener_path:
                out.append(
                    "linux.seccomp: SCMP_ACT_NOTIFY and listenerPath (seccomp agents) "
                    "are not supported by llmos"
                )
        for key, present in (
            ("linux.timeOffsets", bool(linux.time_offsets)),
            ("linux.netDevices", bool(linux.net_devices)),
            ("linux.memoryPolicy", linux.memory_policy is not None),
        ):
            if present:
                out.append(f"{key}: {UNIMPLEMENTED[key]}")
    return out
