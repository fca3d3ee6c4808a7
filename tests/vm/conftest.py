"""The VM tier: host-side tests boot a pure cgroup v2 kernel; tests/vm/guest/ runs inside it.

Every test here is marked ``vm``.  Host-side tests are skipped (with the reason) when qemu, the
kernel, busybox-static or root are missing, and when already inside the VM (no nested boots).
Tests under tests/vm/guest/ only make sense on the guest's pure cgroup v2 hierarchy: they are
skipped unless ``LLMOS_IN_VM=1``, which vmharness sets in the guest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vm import vmharness

HERE = Path(__file__).resolve().parent

GUEST_DIR = HERE / "guest"


def _in_vm() -> bool:
    return os.environ.get(vmharness.IN_VM_ENV) == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    host_reasons: list[str] | None = None
    for item in items:
        path = Path(str(item.path)).resolve()
        if HERE not in path.parents:
            continue
        item.add_marker(pytest.mark.vm)
        if GUEST_DIR in path.parents:
            if not _in_vm():
                item.add_marker(pytest.mark.skip(
                    reason="runs only inside the VM (vmharness.run_pytest_in_vm sets "
                    f"{vmharness.IN_VM_ENV}=1)"
                ))
            continue
        if _in_vm():
            item.add_marker(pytest.mark.skip(reason="already inside the VM: no nested boots"))
            continue
        if host_reasons is None:
            host_reasons = vmharness.missing_prerequisites()
        if host_reasons:
            item.add_marker(pytest.mark.skip(
                reason="cannot boot the cgroup v2 VM: " + "; ".join(host_reasons)
            ))


@pytest.fixture(scope="session")
def vm_image() -> Iterator[vmharness.BootImage]:
    """One unpacked kernel + initramfs shared by every boot of the session, removed after."""
    with vmharness.boot_image() as image:
        yield image
