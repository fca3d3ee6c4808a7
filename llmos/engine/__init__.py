"""The engine: Docker-level containers over llmos's images and runtime."""

from llmos.engine.engine import Engine
from llmos.engine.logs import LogLine
from llmos.engine.options import Mount, RestartPolicy, RunOptions, parse_cpus, parse_size

__all__ = ["Engine", "LogLine", "Mount", "RestartPolicy", "RunOptions", "parse_cpus",
           "parse_size"]
