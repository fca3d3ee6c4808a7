"""Issue 2, point 8: the runtime's kernel-enforced limits, proven on a pure cgroup v2 host.

The same tests that run on this hybrid host (v1 driver) run again inside the qemu guest,
where llmos's factory picks the v2 driver: memory.max OOM kill with the state saying so,
pids.max stopping a fork loop, and cpu.max holding a busy loop to half a CPU.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.vm import vmharness

LIMIT_TESTS = [
    "tests/vm/guest/test_guest_smoke.py",
    "tests/vm/guest/test_guest_driver.py::test_factory_picks_v2",
    "tests/integration/runtime/test_overlay_limits.py::test_oom_kill",
    "tests/integration/runtime/test_overlay_limits.py::test_pids_limit",
    "tests/integration/runtime/test_overlay_limits.py::test_cpu_quota",
    "tests/integration/runtime/test_isolation.py::test_cgroup_namespace_root_is_the_container",
]


@pytest.mark.slow
def test_runtime_limits_on_pure_cgroup_v2(vm_image: Any) -> None:
    for attempt in (1, 2):  # one more boot if a TCG guest stalls (seen once in ~10 runs)
        try:
            result = vmharness.run_pytest_in_vm(
                LIMIT_TESTS, timeout=600, pytest_args=["-q", "-p", "no:randomly"],
                image=vm_image,
            )
            break
        except vmharness.VMTimeoutError:
            if attempt == 2:
                raise
    assert result.exit_code == 0, result.output[-4000:]
    for node in LIMIT_TESTS:
        ran = {k: v for k, v in result.outcomes.items() if k.startswith(node)}
        assert ran and set(ran.values()) == {"passed"}, (node, result.outcomes)
