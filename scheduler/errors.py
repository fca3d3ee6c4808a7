"""The scheduler's one exception tree.

::

    SchedulerError
    ├── InvalidSpec          a node or pod description is malformed (also a ValueError)
    ├── UnknownNode          a name that no node in the cluster has (also a KeyError)
    ├── UnknownPod           a name that no bound pod has (also a KeyError)
    └── TraceError           a trace file cannot be read; names file, line and column

Callers catch ``SchedulerError`` to handle everything the scheduler raises on purpose; a
bare ``ValueError`` or ``KeyError`` from here would be a bug, not a contract.
"""

from __future__ import annotations

__all__ = ["InvalidSpec", "SchedulerError", "TraceError", "UnknownNode", "UnknownPod"]


class SchedulerError(Exception):
    """Root of every error the scheduler raises deliberately."""


class InvalidSpec(SchedulerError, ValueError):
    """A node or pod is described in a way the scheduler cannot accept."""


class UnknownNode(SchedulerError, KeyError):
    """A node name that the cluster does not contain."""

    def __str__(self) -> str:  # KeyError quotes its argument; a message reads better bare
        return str(self.args[0]) if self.args else "unknown node"


class UnknownPod(SchedulerError, KeyError):
    """A pod name that is not bound to any node."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown pod"


class TraceError(SchedulerError):
    """A trace file is malformed; the message names the file, line and column.

    Kept separate from ``InvalidSpec`` so the CLI can map exactly these to exit code 2.
    """

    def __init__(self, path: str, line: int, column: str, message: str) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.message = message
        where = f"{path}:{line}" + (f": column {column}" if column else "")
        super().__init__(f"{where}: {message}")
