"""`llmos bootstrap debian:bookworm`: a base image made from the Debian archive.

Why: machines without a registry (like ours) still reach a Debian mirror through apt, so the
base of a build can be made locally. Debian's `mmdebstrap` writes a root filesystem tarball
(`--variant=minbase` is what Docker's debian images start from), and the store imports it as a
one-layer image with Docker's usual defaults (Env PATH, Cmd ["bash"]).

The mirror is read from this machine's apt sources (`/etc/apt/sources.list` and the deb822
`/etc/apt/sources.list.d/*.sources`): the entries for the suite and its `-updates` and
`-security` companions become the image's own sources, so `apt-get update` inside it reaches
the same mirror the host does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from llmos.image import Image, ImageStore, Reference

from .errors import BootstrapError

__all__ = ["bootstrap", "mirror_lines", "parse_sources"]

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def parse_sources(one_line: str, deb822: Sequence[str]) -> list[tuple[str, str, list[str]]]:
    """(uri, suite, components) of every binary (`deb`) source: one-line sources.list text and
    deb822 `.sources` texts. Options in brackets and disabled stanzas are skipped.
    """
    out: list[tuple[str, str, list[str]]] = []
    for line in one_line.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        words = line.split()[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = words[1:]
        if len(words) >= 2:
            out.append((words[0], words[1], words[2:]))
    for text in deb822:
        for stanza in text.split("\n\n"):
            fields: dict[str, str] = {}
            key = ""
            for raw in stanza.splitlines():
                if raw.startswith("#") or not raw.strip():
                    continue
                if raw[0] in " \t" and key:
                    fields[key] += " " + raw.strip()
                    continue
                key, _, value = raw.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
            if "deb" not in fields.get("types", "").split():
                continue
            if fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    out.append((uri, suite, fields.get("components", "").split()))
    return out


def mirror_lines(sources: Sequence[tuple[str, str, list[str]]], suite: str) -> list[str]:
    """The sources.list lines for `suite` (and `-updates`, `-security`) from the host's
    sources, as mmdebstrap MIRROR arguments; [] if the host has none for that suite.
    """
    wanted = (suite, f"{suite}-updates", f"{suite}-security")
    lines: list[str] = []
    for uri, s, components in sources:
        if s in wanted:
            line = f"deb {uri} {s} {' '.join(components or ['main'])}"
            if line not in lines:
                lines.append(line)
    # the suite itself first: mmdebstrap takes the first mirror for the bootstrap
    lines.sort(key=lambda ln: 0 if ln.split()[2] == suite else 1)
    return lines


def host_sources(etc: str | os.PathLike[str] = "/etc/apt") -> list[tuple[str, str, list[str]]]:
    """This machine's apt sources."""
    base = Path(etc)
    one = ""
    if (base / "sources.list").exists():
        one = (base / "sources.list").read_text(errors="replace")
    deb822: list[str] = []
    extra = base / "sources.list.d"
    if extra.is_dir():
        for p in sorted(extra.iterdir()):
            if p.suffix == ".sources":
                deb822.append(p.read_text(errors="replace"))
            elif p.suffix == ".list":
                one += "\n" + p.read_text(errors="replace")
    return parse_sources(one, deb822)


def bootstrap(store: ImageStore, ref: str = "debian:bookworm", *, variant: str = "minbase",
              include: Sequence[str] = (), name: str | None = None,
              progress: Callable[[str], None] | None = None,
              mirrors: Sequence[str] | None = None, mmdebstrap: str = "mmdebstrap") -> Image:
    """Make `ref` (`debian:SUITE`) with mmdebstrap and store it as `name` (default `ref`).

    `mirrors` overrides the sources read from the host (each a URI or a `deb ...` line).
    Raises BootstrapError when mmdebstrap is missing or fails (its last output lines are in
    the message).
    """
    say = progress or (lambda _line: None)
    parsed = Reference.parse(ref)
    suite = parsed.tag or "stable"
    if not parsed.name.endswith("/debian"):
        raise BootstrapError(f"{ref}: only debian:SUITE images can be bootstrapped")
    exe = shutil.which(mmdebstrap)
    if exe is None:
        raise BootstrapError("mmdebstrap is not installed: `apt-get install mmdebstrap` "
                             "(Debian's package) and try again")
    if mirrors is None:
        mirrors = mirror_lines(host_sources(), suite)
    (store.root / "build-tmp").mkdir(exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix="bootstrap-", dir=store.root / "build-tmp"))
    try:
        out = tmp / "rootfs.tar"
        argv = [exe, f"--variant={variant}"]
        if include:
            argv.append("--include=" + ",".join(include))
        argv += [suite, str(out), *mirrors]
        say(f"bootstrapping {suite} ({variant}) with mmdebstrap from "
            f"{', '.join(mirrors) or 'the default mirror'}")
        start = time.monotonic()
        tail: list[str] = []
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", cwd=tmp)
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail = [*tail[-19:], line]
            say(line)
        code = proc.wait()
        if code != 0 or not out.exists():
            raise BootstrapError(f"mmdebstrap {suite} failed (exit code {code}):\n"
                                 + "\n".join(tail))
        say(f"mmdebstrap finished in {time.monotonic() - start:.0f} s; importing")
        config = {
            "config": {"Env": [DEFAULT_PATH], "Cmd": ["bash"]},
            "history": [{"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         "created_by": " ".join(argv[:-len(mirrors) or None]).replace(
                             str(out), "rootfs.tar"),
                         "comment": "llmos bootstrap"}],
        }
        image = store.import_rootfs(out, name or ref, config=config)
        say(f"{name or ref}: {image.id}")
        return image
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
