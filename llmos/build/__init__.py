"""Image builds: `llmos build` (Dockerfiles) and `llmos bootstrap` (Debian base images).

- `build(store, context_dir, ...)` runs a Dockerfile: RUN in containers (llmos.runtime) over
  overlay snapshots, COPY/ADD as layers written directly, a persisted layer cache.
- `bootstrap(store, "debian:bookworm", ...)` makes a base image with mmdebstrap.
- `parse` reads a Dockerfile; `Matcher` applies .dockerignore rules.
- Errors: `BuildError` and its kinds (`DockerfileError` names file, line and instruction).
"""

from __future__ import annotations

from .bootstrap import bootstrap
from .builder import DEFAULT_RUNTIME_ROOT, BuildProgress, build
from .cache import BuildCache
from .dockerfile import Dockerfile, Heredoc, Instruction, Stage, parse
from .dockerignore import Matcher, parse_dockerignore
from .errors import BootstrapError, BuildError, ContextError, DockerfileError, StepFailed
from .run import run_image, started_image

__all__ = [
    "DEFAULT_RUNTIME_ROOT",
    "BootstrapError",
    "BuildCache",
    "BuildError",
    "BuildProgress",
    "ContextError",
    "Dockerfile",
    "DockerfileError",
    "Heredoc",
    "Instruction",
    "Matcher",
    "Stage",
    "StepFailed",
    "bootstrap",
    "build",
    "parse",
    "parse_dockerignore",
    "run_image",
    "started_image",
]
