"""Contents of a container's /etc/hosts, /etc/resolv.conf and /etc/hostname.

Pure functions returning text: the runtime decides where the files live (bind-mounted from the
container's state directory, as Docker does, so the image is not modified).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address

from llmos.network.errors import InvalidArgument

# Docker's fallback when the host has only loopback resolvers and no embedded DNS is used.
FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@dataclass
class ResolvConf:
    nameservers: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


def parse_resolv_conf(text: str) -> ResolvConf:
    """The parts of resolv.conf that carry over into a container (comments dropped)."""
    conf = ResolvConf()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        key, args = words[0], words[1:]
        if key == "nameserver" and args:
            conf.nameservers.append(args[0])
        elif key in ("search", "domain") and args:
            conf.search = list(args)  # the last search/domain line wins, as in glibc
        elif key == "options":
            conf.options.extend(args)
    return conf


def validate_hostname(hostname: str) -> str:
    """RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens."""
    if not hostname or len(hostname) > 253:
        raise InvalidArgument(f"hostname {hostname!r}: must be 1-253 characters")
    for label in hostname.split("."):
        if not _LABEL.match(label):
            raise InvalidArgument(
                f"hostname {hostname!r}: label {label!r} must be 1-63 letters, digits or "
                "inner hyphens"
            )
    return hostname


def hostname_content(hostname: str) -> str:
    """/etc/hostname: the name and a newline."""
    return validate_hostname(hostname) + "\n"


def hosts_content(
    hostname: str,
    addresses: Sequence[str] = (),
    aliases: Sequence[str] = (),
    extra_hosts: Iterable[tuple[str, str]] | Mapping[str, str] = (),
) -> str:
    """/etc/hosts: Docker's loopback block, then the container's own addresses.

    ``extra_hosts`` are ``--add-host NAME:IP`` pairs (name, address). Containers on the same
    network are not listed: they come from the DNS responder, so the file does not go stale
    when peers come and go.
    """
    validate_hostname(hostname)
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::\tip6-localnet",
        "ff00::\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    names = " ".join([hostname, *[a for a in aliases if a != hostname]])
    for addr in addresses:
        ip_address(addr)  # ValueError for garbage, before anything is written
        lines.append(f"{addr}\t{names}")
    if not addresses:
        lines.append(f"127.0.1.1\t{names}")  # the hostname must resolve even with --network none
    pairs = extra_hosts.items() if isinstance(extra_hosts, Mapping) else extra_hosts
    for name, addr in pairs:
        ip_address(addr)
        lines.append(f"{addr}\t{name}")
    return "\n".join(lines) + "\n"


def resolv_conf_content(
    nameservers: Sequence[str], search: Sequence[str] = (), options: Sequence[str] = ()
) -> str:
    """Render a resolv.conf."""
    lines = [f"nameserver {ns}" for ns in nameservers]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def container_resolv_conf(host_resolv_conf: str, dns_server: str | None) -> str:
    """A container's resolv.conf derived from the host's.

    With llmos's DNS responder (``dns_server`` = the network gateway) that is the only
    nameserver; search and options carry over. Without it (``--network host`` uses the host's
    file directly; this is for the rest) loopback resolvers are dropped because they are not
    reachable from the container's namespace, falling back to public resolvers like Docker.
    """
    host = parse_resolv_conf(host_resolv_conf)
    if dns_server is not None:
        servers = [dns_server]
    else:
        servers = []
        for ns in host.nameservers:
            try:
                if not ip_address(ns).is_loopback:
                    servers.append(ns)
            except ValueError:
                continue  # a garbage line in the host's file is not the container's problem
        if not servers:
            servers = list(FALLBACK_NAMESERVERS)
    return resolv_conf_content(servers, host.search, host.options)
