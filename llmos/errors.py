"""The runtime's exception tree.

    RuntimeError_            anything the runtime refuses or fails to do
    ├── NotFound             no container by that id
    ├── AlreadyExists        an id in use
    ├── InvalidState         the verb is not allowed in the container's status
    ├── ConfigError          the config (or an option) is wrong; names the field
    └── StepError            a step between clone and execve failed (step, errno, message)
"""

from __future__ import annotations


class RuntimeError_(Exception):
    """Base of every runtime error; the CLI prints its message and exits non-zero."""


class NotFound(RuntimeError_):
    pass


class AlreadyExists(RuntimeError_):
    pass


class InvalidState(RuntimeError_):
    pass


class ConfigError(RuntimeError_):
    pass


class StepError(RuntimeError_):
    """A failed step in the container child, as reported over the sync socket."""

    def __init__(self, step: str, errno_: int, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.step = step
        self.errno = errno_
        self.exit_code = exit_code
        self.shim_pid = 0
