"""llmos.cgroups: one cgroup interface, a v1 and a v2 driver, chosen by probing the host.

    mgr = open_cgroup("llmos/abc123")          # V1Manager on v1/hybrid hosts, V2Manager on v2
    mgr.create()
    mgr.apply(Resources.from_oci(spec["linux"]["resources"]))
    ...                                        # the C side writes the pid to mgr.procs_files()
    mgr.kill_all(); mgr.destroy()

Every cgroup lives below a parent named ``llmos``; nothing outside it is ever written. Errors
form one tree (see :mod:`llmos.cgroups.errors`).
"""

from __future__ import annotations

from .convert import (
    convert_blkio_weight_to_io_weight,
    convert_memory_swap_to_v2,
    convert_shares_to_weight,
)
from .errors import CgroupBusy, CgroupError, InvalidResources, UnsupportedResource
from .factory import open_cgroup
from .fs import CgroupFs
from .manager import OWNER, CgroupManager
from .mounts import Layout, Mode, detect_mode, discover
from .resources import (
    DeviceRule,
    NetworkPriority,
    RdmaLimit,
    Resources,
    Stats,
    ThrottleDevice,
    WeightDevice,
)
from .v1 import V1Manager
from .v2 import V2Manager

__all__ = [
    "OWNER",
    "CgroupBusy",
    "CgroupError",
    "CgroupFs",
    "CgroupManager",
    "DeviceRule",
    "InvalidResources",
    "Layout",
    "Mode",
    "NetworkPriority",
    "RdmaLimit",
    "Resources",
    "Stats",
    "ThrottleDevice",
    "UnsupportedResource",
    "V1Manager",
    "V2Manager",
    "WeightDevice",
    "convert_blkio_weight_to_io_weight",
    "convert_memory_swap_to_v2",
    "convert_shares_to_weight",
    "detect_mode",
    "discover",
    "open_cgroup",
]
