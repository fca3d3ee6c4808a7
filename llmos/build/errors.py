"""One exception tree for image builds, so the CLI and daemon catch by meaning.

    BuildError
     ├── DockerfileError     the Dockerfile does not parse or asks for something invalid;
     │                       the message names the file, line and instruction
     ├── ContextError        a COPY/ADD source is missing, excluded, or outside the context
     ├── StepFailed          a RUN command exited non-zero (carries the exit code)
     └── BootstrapError      mmdebstrap is missing or failed
"""

from __future__ import annotations

__all__ = ["BootstrapError", "BuildError", "ContextError", "DockerfileError", "StepFailed"]


class BuildError(Exception):
    """Base of every error the builder raises on purpose."""


class DockerfileError(BuildError):
    """A Dockerfile problem, located: `Dockerfile:12: COPY: requires at least two arguments`."""

    def __init__(self, filename: str, line: int, instruction: str, message: str) -> None:
        self.filename = filename
        self.line = line
        self.instruction = instruction
        self.message = message
        where = f"{filename}:{line}"
        super().__init__(f"{where}: {instruction}: {message}" if instruction
                         else f"{where}: {message}")


class ContextError(BuildError):
    """A source the Dockerfile names is not in the build context (or is excluded from it)."""


class StepFailed(BuildError):
    """A RUN step's command failed; `code` is its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class BootstrapError(BuildError):
    """A base image could not be made from the Debian archive."""
