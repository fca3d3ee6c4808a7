"""`llmos ps` wording follows Docker's (pure formatting, no daemon)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from llmos.cli import listing

NOW = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("seconds", "text"), [
    (0.2, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (3599, "59 minutes"), (3600, "About an hour"),
    (5400, "2 hours"), (47 * 3600, "47 hours"), (48 * 3600, "2 days"), (15 * 86400, "2 weeks"),
    (61 * 86400, "2 months"), (800 * 86400, "2 years"),
])
def test_human_duration_matches_docker(seconds: float, text: str) -> None:
    assert listing.human_duration(seconds) == text


def _container(state: dict[str, object], ports: dict[str, object] | None = None) -> SimpleNamespace:
    attrs = {
        "Created": "2026-11-27T11:57:00.123456789Z",
        "Path": "nginx", "Args": ["-g", "daemon off;"],
        "Config": {"Image": "nginx"},
        "State": state,
        "NetworkSettings": {"Ports": ports or {}},
    }
    return SimpleNamespace(short_id="e0e414f411ff", name="web", attrs=attrs)


def test_ps_rows_running_with_ports() -> None:
    c = _container({"Status": "running", "StartedAt": "2026-11-27T11:59:55Z"},
                   {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "443/tcp": None,
                    "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}]})
    header, row = listing.ps_rows([c], NOW)
    assert header == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert row[3] == "2 minutes ago"  # 2 min 59.9 s: Docker truncates
    assert row[4] == "Up 5 seconds"
    assert row[5] == "127.0.0.1:5353->53/udp, 0.0.0.0:8080->80/tcp, 443/tcp"
    assert row[2] == '"nginx -g daemon off;"'


def test_ps_rows_exited_created_paused() -> None:
    exited = _container({"Status": "exited", "ExitCode": 3, "StartedAt": "2026-11-27T11:58:00Z",
                         "FinishedAt": "2026-11-27T11:59:00Z"})
    created = _container({"Status": "created", "StartedAt": listing.ZERO_TIME})
    paused = _container({"Status": "paused", "StartedAt": "2026-11-27T10:00:00Z"})
    rows = listing.ps_rows([exited, created, paused], NOW)
    assert [r[4] for r in rows[1:]] == ["Exited (3) About a minute ago", "Created",
                                        "Up 2 hours (Paused)"]


def test_table_columns_line_up() -> None:
    text = listing.format_table([["A", "LONGER", "Z"], ["wide-cell", "b", "c"]])
    first, second = text.splitlines()
    assert first.index("LONGER") == second.index("b") == len("wide-cell") + 3
    assert first.index("Z") == second.rindex("c") == 21
