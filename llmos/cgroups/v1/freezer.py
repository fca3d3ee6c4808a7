"""v1 freezer: freezer.state goes THAWED -> FREEZING -> FROZEN; only FROZEN is complete."""

from __future__ import annotations

from ..errors import CgroupBusy
from ..fs import CgroupFs
from ..manager import wait_until
from .base import V1Controller

__all__ = ["Freezer"]


class Freezer(V1Controller):
    """freezer.state."""

    name = "freezer"
    field = "freezer"

    def state(self, fs: CgroupFs, path: str) -> str:
        """THAWED, FREEZING or FROZEN."""
        return fs.read(self.file(path, "freezer.state")).strip()

    def freeze(self, fs: CgroupFs, path: str, timeout: float) -> None:
        """Ask for FROZEN until the kernel reports it.

        A task in an uninterruptible sleep can keep the cgroup FREEZING; writing FROZEN again
        retries the stragglers (runc does the same). On timeout the cgroup is thawed so it is
        not left half frozen.
        """
        state_file = self.file(path, "freezer.state")

        def done() -> bool:
            if self.state(fs, path) == "FROZEN":
                return True
            fs.write(state_file, "FROZEN")
            return False

        fs.write(state_file, "FROZEN")
        if not wait_until(done, timeout):
            fs.write(state_file, "THAWED")
            raise CgroupBusy(f"{state_file}: still FREEZING after {timeout:.1f}s", path=state_file)

    def thaw(self, fs: CgroupFs, path: str, timeout: float) -> None:
        """Write THAWED and wait until no task is left frozen."""
        state_file = self.file(path, "freezer.state")
        fs.write(state_file, "THAWED")
        if not wait_until(lambda: self.state(fs, path) == "THAWED", timeout):
            raise CgroupBusy(f"{state_file}: not THAWED after {timeout:.1f}s", path=state_file)
