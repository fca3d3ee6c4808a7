"""How Dockerfile instructions change an image's run config, as Docker combines them. Pure.

Why each rule is its own function: these are the rules users rely on without reading them
(ENTRYPOINT drops a CMD inherited from the base image but keeps one set earlier in the same
stage; a relative WORKDIR joins the previous one; shell forms wrap in the SHELL, `/bin/sh -c` by
default; ENV replaces a variable in place), so each gets a unit test.

`config` is the `config` object of an OCI/Docker image config: Env, Cmd, Entrypoint,
WorkingDir, User, ExposedPorts, Labels, Volumes, StopSignal, Healthcheck, Shell.
"""

from __future__ import annotations

import posixpath
import re
import signal
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "DEFAULT_SHELL",
    "entrypoint_and_cmd",
    "env_list_to_dict",
    "expose",
    "image_argv",
    "parse_duration",
    "set_cmd",
    "set_entrypoint",
    "set_env",
    "set_healthcheck",
    "set_workdir",
    "shell_form",
    "stop_signal",
]

DEFAULT_SHELL: tuple[str, ...] = ("/bin/sh", "-c")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}


def shell_form(config: Mapping[str, Any], command: str) -> list[str]:
    """A shell-form command as argv: the stage's SHELL (default `/bin/sh -c`) + the text."""
    shell = config.get("Shell") or list(DEFAULT_SHELL)
    return [*shell, command]


def env_list_to_dict(env: Iterable[str]) -> dict[str, str]:
    """`["A=1", "B=2"]` -> `{"A": "1", "B": "2"}` (a bare `A` means empty)."""
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def set_env(config: dict[str, Any], pairs: Sequence[tuple[str, str]]) -> None:
    """ENV: each variable replaces an existing one in place, or is appended."""
    env: list[str] = list(config.get("Env") or [])
    for key, value in pairs:
        item = f"{key}={value}"
        for i, existing in enumerate(env):
            if existing.partition("=")[0] == key:
                env[i] = item
                break
        else:
            env.append(item)
    config["Env"] = env


def set_cmd(config: dict[str, Any], argv: list[str]) -> None:
    """CMD: replaces the command (the caller remembers the stage set it, for ENTRYPOINT)."""
    config["Cmd"] = argv


def set_entrypoint(config: dict[str, Any], argv: list[str], *, cmd_set_in_stage: bool) -> None:
    """ENTRYPOINT: replaces the entrypoint and, unless this stage already set CMD, drops the
    CMD inherited from the base image (it was meant for the old entrypoint).
    """
    config["Entrypoint"] = argv
    if not cmd_set_in_stage:
        config["Cmd"] = None


def set_workdir(config: dict[str, Any], path: str) -> str:
    """WORKDIR: an absolute path, or one relative to the previous WORKDIR (`/` if none).
    Returns the new working directory.
    """
    base = config.get("WorkingDir") or "/"
    new = posixpath.normpath(posixpath.join(base, path))
    if new.startswith("//"):
        new = "/" + new.lstrip("/")
    config["WorkingDir"] = new
    return new


def expose(config: dict[str, Any], ports: Iterable[str]) -> None:
    """EXPOSE: `80` -> `80/tcp`, `53/udp`, ranges `8000-8002/tcp` expand to each port."""
    exposed: dict[str, Any] = dict(config.get("ExposedPorts") or {})
    for spec in ports:
        port, _, proto = spec.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise ValueError(f"invalid proto: {proto!r}")
        start, dash, end = port.partition("-")
        if not start.isdigit() or (dash and not end.isdigit()):
            raise ValueError(f"invalid containerPort: {port!r}")
        lo, hi = int(start), int(end) if dash else int(start)
        if not (0 < lo <= hi <= 65535):
            raise ValueError(f"invalid port range: {port!r}")
        for p in range(lo, hi + 1):
            exposed[f"{p}/{proto}"] = {}
    config["ExposedPorts"] = exposed


def parse_duration(text: str) -> int:
    """A Go duration (`30s`, `1m30s`, `500ms`) in nanoseconds, as Healthcheck stores them."""
    if text == "0":
        return 0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r}")
    return int(total)


def set_healthcheck(config: dict[str, Any], test: list[str],
                    options: Mapping[str, str | None]) -> None:
    """HEALTHCHECK NONE (`test == ["NONE"]`) or CMD with its timing options."""
    if test == ["NONE"]:
        config["Healthcheck"] = {"Test": ["NONE"]}
        return
    check: dict[str, Any] = {"Test": test}
    names = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
             "start-interval": "StartInterval"}
    for flag, key in names.items():
        value = options.get(flag)
        if value is not None:
            ns = parse_duration(value)
            if ns and ns < 1_000_000:
                raise ValueError(f"--{flag} cannot be less than 1ms")
            check[key] = ns
    retries = options.get("retries")
    if retries is not None:
        if not retries.isdigit() or int(retries) < 1:
            raise ValueError("--retries must be at least 1")
        check["Retries"] = int(retries)
    config["Healthcheck"] = check


_RT_SIGNAL = re.compile(r"RTMIN(\+([1-9]|1[0-5]))?|RTMAX(-([1-9]|1[0-4]))?")


def stop_signal(text: str) -> str:
    """STOPSIGNAL: checked as Docker's ParseSignal does (a non-zero number, or a signal name
    with or without SIG), and stored as written.
    """
    if text.isdigit():
        if int(text) == 0:
            raise ValueError(f"Invalid signal: {text}")
        return text
    name = text.upper().removeprefix("SIG")
    if f"SIG{name}" not in signal.Signals.__members__ and not _RT_SIGNAL.fullmatch(name):
        raise ValueError(f"Invalid signal: {text}")
    return text


def entrypoint_and_cmd(config: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The image's (Entrypoint, Cmd), empty lists for unset ones."""
    return list(config.get("Entrypoint") or []), list(config.get("Cmd") or [])


def image_argv(config: Mapping[str, Any], args: Sequence[str] | None = None) -> list[str]:
    """What `docker run IMAGE [ARGS]` executes: Entrypoint + (ARGS or Cmd)."""
    entrypoint, cmd = entrypoint_and_cmd(config)
    return entrypoint + (list(args) if args else cmd)
