"""How instructions combine into the image config, as Docker combines them."""

from __future__ import annotations

from typing import Any

import pytest

from llmos.build import config as rules


def test_shell_form_uses_the_stage_shell() -> None:
    assert rules.shell_form({}, "echo hi") == ["/bin/sh", "-c", "echo hi"]
    assert rules.shell_form({"Shell": ["/bin/bash", "-eo", "pipefail", "-c"]}, "x") == [
        "/bin/bash", "-eo", "pipefail", "-c", "x"]


def test_env_replaces_in_place_and_appends() -> None:
    cfg: dict[str, Any] = {"Env": ["PATH=/bin", "A=1"]}
    rules.set_env(cfg, [("PATH", "/usr/bin:/bin"), ("B", "2")])
    assert cfg["Env"] == ["PATH=/usr/bin:/bin", "A=1", "B=2"]


def test_entrypoint_drops_inherited_cmd() -> None:
    cfg: dict[str, Any] = {"Cmd": ["bash"]}
    rules.set_entrypoint(cfg, ["/app"], cmd_set_in_stage=False)
    assert cfg == {"Entrypoint": ["/app"], "Cmd": None}
    assert rules.image_argv(cfg) == ["/app"]


def test_entrypoint_keeps_cmd_set_in_the_same_stage() -> None:
    cfg: dict[str, Any] = {"Cmd": ["bash"]}
    rules.set_cmd(cfg, ["--flag"])
    rules.set_entrypoint(cfg, ["/app"], cmd_set_in_stage=True)
    assert rules.image_argv(cfg) == ["/app", "--flag"]
    assert rules.image_argv(cfg, ["other"]) == ["/app", "other"]


def test_cmd_after_entrypoint_is_its_default_arguments() -> None:
    cfg: dict[str, Any] = {"Entrypoint": ["/bin/echo"]}
    rules.set_cmd(cfg, ["hello"])
    assert rules.image_argv(cfg) == ["/bin/echo", "hello"]


def test_workdir_is_relative_to_the_previous_one() -> None:
    cfg: dict[str, Any] = {}
    assert rules.set_workdir(cfg, "a") == "/a"
    assert rules.set_workdir(cfg, "b/../c") == "/a/c"
    assert rules.set_workdir(cfg, "/abs") == "/abs"
    assert rules.set_workdir(cfg, "..") == "/"


def test_expose_normalises_ports() -> None:
    cfg: dict[str, Any] = {"ExposedPorts": {"22/tcp": {}}}
    rules.expose(cfg, ["80", "53/UDP", "8000-8002"])
    assert sorted(cfg["ExposedPorts"]) == ["22/tcp", "53/udp", "80/tcp", "8000/tcp",
                                           "8001/tcp", "8002/tcp"]


@pytest.mark.parametrize("bad", ["http", "80/xyz", "0", "9-1", "70000"])
def test_expose_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        rules.expose({}, [bad])


@pytest.mark.parametrize(("text", "ns"), [("30s", 30_000_000_000), ("1m30s", 90_000_000_000),
                                          ("500ms", 500_000_000), ("1h", 3_600_000_000_000),
                                          ("1.5s", 1_500_000_000), ("0", 0)])
def test_durations(text: str, ns: int) -> None:
    assert rules.parse_duration(text) == ns


@pytest.mark.parametrize("bad", ["", "5", "s", "5x", "5s garbage"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError):
        rules.parse_duration(bad)


def test_healthcheck() -> None:
    cfg: dict[str, Any] = {}
    rules.set_healthcheck(cfg, ["CMD-SHELL", "curl -f x"], {"interval": "5s", "retries": "3"})
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "curl -f x"],
                                  "Interval": 5_000_000_000, "Retries": 3}
    rules.set_healthcheck(cfg, ["NONE"], {})
    assert cfg["Healthcheck"] == {"Test": ["NONE"]}
    with pytest.raises(ValueError, match="retries"):
        rules.set_healthcheck(cfg, ["CMD", "x"], {"retries": "0"})


def test_env_list_to_dict() -> None:
    assert rules.env_list_to_dict(["A=1", "B=x=y", "C"]) == {"A": "1", "B": "x=y", "C": ""}


@pytest.mark.parametrize("ok", ["SIGQUIT", "quit", "9", "64", "SIGRTMIN", "RTMIN+3",
                                "SIGRTMAX-2", "SIGKILL"])
def test_stop_signal_accepts_what_docker_accepts(ok: str) -> None:
    assert rules.stop_signal(ok) == ok  # stored as written


@pytest.mark.parametrize("bad", ["NOPE", "0", "SIG", "RTMIN+16", "-9", "SIGTERM "])
def test_stop_signal_refuses(bad: str) -> None:
    with pytest.raises(ValueError, match="Invalid signal"):
        rules.stop_signal(bad)
