"""`llmos ps` as Docker prints it: CREATED, STATUS with ages, and PORTS.

Scripts and people compare `llmos ps` with `docker ps`; the wording of ages follows Docker's
(go-units HumanDuration) so the two read the same.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"


def human_duration(seconds: float) -> str:
    """Docker's coarse age words ("About a minute", "3 hours")."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def parse_time(value: str | None) -> dt.datetime | None:
    """An engine timestamp (RFC 3339, nanoseconds allowed) or None for Docker's zero time."""
    if not value or value == ZERO_TIME:
        return None
    text = value.rstrip("Z")
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    try:
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def _age(value: str | None, now: dt.datetime) -> str | None:
    when = parse_time(value)
    return None if when is None else human_duration((now - when).total_seconds())


def status_text(state: dict[str, Any], now: dt.datetime) -> str:
    status = str(state.get("Status", ""))
    if status in ("running", "paused"):
        up = _age(state.get("StartedAt"), now)
        text = f"Up {up}" if up else "Up"
        return f"{text} (Paused)" if status == "paused" else text
    if status == "exited":
        ago = _age(state.get("FinishedAt"), now)
        code = state.get("ExitCode", 0)
        return f"Exited ({code}) {ago} ago" if ago else f"Exited ({code})"
    return status.capitalize()


def ports_text(ports: dict[str, Any] | None) -> str:
    """0.0.0.0:8080->80/tcp, 80/tcp (exposed only), in Docker's order (by container port)."""
    parts: list[str] = []
    for key, bindings in sorted((ports or {}).items(), key=lambda kv: _port_key(kv[0])):
        if not bindings:
            parts.append(key)
            continue
        for b in bindings:
            parts.append(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}->{key}")
    return ", ".join(parts)


def _port_key(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    return (int(port) if port.isdigit() else 0, proto)


def ps_rows(containers: Iterable[Any], now: dt.datetime | None = None) -> list[list[str]]:
    """One row per container (objects with short_id, name and Docker's inspect attrs)."""
    now = now or dt.datetime.now(dt.UTC)
    rows = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]]
    for c in containers:
        attrs = c.attrs
        cmd = " ".join([attrs.get("Path", ""), *attrs.get("Args", [])])
        cmd = (cmd[:18] + "...") if len(cmd) > 21 else cmd
        created = _age(attrs.get("Created"), now)
        rows.append([
            c.short_id,
            attrs["Config"]["Image"],
            json.dumps(cmd),
            f"{created} ago" if created else "",
            status_text(attrs["State"], now),
            ports_text((attrs.get("NetworkSettings") or {}).get("Ports")),
            c.name,
        ])
    return rows


def format_table(rows: list[list[str]]) -> str:
    """Columns padded to their widest cell plus three spaces, as Docker's tabwriter does."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [cell.ljust(widths[i] + 3) for i, cell in enumerate(r[:-1])]
        lines.append("".join(cells) + r[-1])
    return "\n".join(lines)
