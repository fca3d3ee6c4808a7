"""docker-py keyword arguments become llmos run options (pure translation, no daemon)."""

from __future__ import annotations

import pytest

from llmos.client.client import _run_options
from llmos.network.ports import parse_port_specs


def test_ports_in_docker_py_forms_become_port_specs() -> None:
    opts = _run_options("web", None, {"ports": {
        "80/tcp": 8080, 53: ("127.0.0.1", 5353), "81": None, "82/udp": [8082, 9082],
        90: ("127.0.0.1",)}})
    assert opts["ports"] == ["8080:80/tcp", "127.0.0.1:5353:53/tcp", "81/tcp", "8082:82/udp",
                             "9082:82/udp", "127.0.0.1::90/tcp"]
    parsed = parse_port_specs(opts["ports"])  # each one is a valid -p
    assert [(p.container_start, p.host_start, p.proto) for p in parsed][:2] == [
        (80, 8080, "tcp"), (53, 5353, "tcp")]


def test_network_and_publish_all() -> None:
    opts = _run_options("web", "true", {"network": "front", "publish_all_ports": True})
    assert opts["network"] == "front" and opts["publish_all"] is True
    assert opts["command"] == ["/bin/sh", "-c", "true"]


def test_unknown_argument_is_named() -> None:
    with pytest.raises(TypeError, match="unsupported arguments: bogus"):
        _run_options("web", None, {"bogus": 1})
