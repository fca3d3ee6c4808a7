from __future__ import annotations

import pytest

from llmos.network.containerfiles import (
    container_resolv_conf,
    hostname_content,
    hosts_content,
    parse_resolv_conf,
    resolv_conf_content,
)
from llmos.network.errors import InvalidArgument

HOST_RESOLV = """# generated
nameserver 127.0.0.53
nameserver 10.0.0.2 # lan
search corp.example lab.example
options edns0 trust-ad
"""


def test_parse_resolv_conf() -> None:
    conf = parse_resolv_conf(HOST_RESOLV)
    assert conf.nameservers == ["127.0.0.53", "10.0.0.2"]
    assert conf.search == ["corp.example", "lab.example"]
    assert conf.options == ["edns0", "trust-ad"]


def test_container_resolv_conf_points_at_gateway() -> None:
    assert container_resolv_conf(HOST_RESOLV, "172.30.0.1") == (
        "nameserver 172.30.0.1\nsearch corp.example lab.example\noptions edns0 trust-ad\n"
    )


def test_container_resolv_conf_without_dns_drops_loopback() -> None:
    assert container_resolv_conf(HOST_RESOLV, None).splitlines()[0] == "nameserver 10.0.0.2"
    only_lo = container_resolv_conf("nameserver 127.0.0.53\n", None)
    assert only_lo == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"


def test_hosts() -> None:
    text = hosts_content(
        "web",
        ["172.30.0.2", "172.31.0.5"],
        aliases=["www", "web"],
        extra_hosts={"db.local": "10.0.0.7"},
    )
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert "172.30.0.2\tweb www" in lines and "172.31.0.5\tweb www" in lines
    assert lines[-1] == "10.0.0.7\tdb.local"
    assert text.endswith("\n")
    assert "127.0.1.1\tlonely" in hosts_content("lonely")  # --network none
    with pytest.raises(ValueError):
        hosts_content("web", ["not-an-ip"])


def test_hostname() -> None:
    assert hostname_content("web-1.example") == "web-1.example\n"
    for bad in ("", "-web", "web_1", "a" * 64, "web..x"):
        with pytest.raises(InvalidArgument, match="hostname"):
            hostname_content(bad)


def test_resolv_conf_content_minimal() -> None:
    assert resolv_conf_content(["1.1.1.1"]) == "nameserver 1.1.1.1\n"
