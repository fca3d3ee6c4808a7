"""Running a process in an image being built (RUN), or in a built image (tests, tools).

Why through `llmos.runtime` and the snapshotter: a RUN step is a real container, isolated like
any other (pid, mount, ipc, uts and cgroup namespaces, Docker's capabilities and seccomp
profile), over an overlay whose upper directory is an active snapshot. When the process ends,
that upper directory *is* the step's diff. The overlay is mounted by the C executor inside
the container's own mount namespace, so nothing is ever mounted on the host and nothing can be
left mounted when a build dies.

Network: `network="default"` (what `llmos build` gives RUN, as Docker does) is a network
namespace of the step's own on the default bridge, out through NAT: the builder makes and
wires it (llmos/build/network.py) and the container joins it (`ProcessSpec.netns`).
`network="host"` shares the host's namespace; `network="none"` gives an empty one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos.image import Image, ImageStore, Mount
from llmos.plan import Overlay

from . import config as rules
from .errors import BuildError
from .rootfs import ExecUser, LowerView, resolve_user

__all__ = ["HOST_FILES", "LogFollower", "ProcessSpec", "StartedImage", "container_config",
           "image_process", "overlay_from_mounts", "run_container", "run_image",
           "started_image"]

HOST_FILES = ("/etc/resolv.conf", "/etc/hosts")
"""Files a RUN container gets from the host (read-only binds) when the image has none."""


@dataclass(frozen=True)
class ProcessSpec:
    """What to run and as whom."""

    argv: list[str]
    env: list[str]
    cwd: str = "/"
    user: ExecUser = field(default_factory=lambda: ExecUser(0, 0))
    network: str = "host"
    hostname: str = "llmos-build"
    binds: Sequence[tuple[str, str]] = field(default_factory=tuple)  # (host path, dest)
    netns: str | None = None  # network="default": the wired namespace to join


def container_config(spec: ProcessSpec, rootfs: str | os.PathLike[str]) -> dict[str, Any]:
    """The OCI config of a build container: Docker's defaults (llmos's include
    no_new_privileges: the C executor loads seccomp after dropping capabilities, which the
    kernel only allows with it), the process as asked, and the network namespace left out
    for `network="host"`.
    """
    from llmos.spec import default_spec

    if spec.network not in ("host", "none", "default"):
        raise BuildError(f"network {spec.network!r}: want host, none or default")
    config = default_spec(spec.argv).to_dict()
    config["root"] = {"path": os.fspath(rootfs), "readonly": False}
    config["hostname"] = spec.hostname
    process = config["process"]
    process["terminal"] = False
    process["env"] = list(spec.env)
    process["cwd"] = spec.cwd or "/"
    process["user"] = {"uid": spec.user.uid, "gid": spec.user.gid}
    if spec.user.additional_gids:
        process["user"]["additionalGids"] = list(spec.user.additional_gids)
    if spec.network == "host":
        config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"]
                                         if ns["type"] != "network"]
    elif spec.network == "default":
        if not spec.netns:
            raise BuildError("network default: no network namespace was made for the step")
        for ns in config["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = spec.netns
    for source, dest in spec.binds:
        config["mounts"].append({"destination": dest, "type": "bind", "source": source,
                                 "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]})
    return config


def overlay_from_mounts(mounts: Sequence[Mount], empty_lower: Path) -> Overlay:
    """The runtime's Overlay from a snapshot's mount description. A snapshot with no parent
    is a plain bind of its upper directory; overlayfs needs a lower, so an empty directory
    stands in (a RUN on `FROM scratch`).
    """
    if len(mounts) != 1:
        raise BuildError(f"snapshot: expected one mount, got {len(mounts)}")
    m = mounts[0]
    if m.type == "bind":
        upper = Path(m.source)
        return Overlay(lower=[str(empty_lower)], upper=str(upper), work=str(upper.parent / "work"))
    opts: dict[str, str] = {}
    for o in m.options:
        key, _, value = o.partition("=")
        opts[key] = value

    def absolute(p: str) -> str:
        return p if p.startswith("/") or m.chdir is None else os.path.join(m.chdir, p)

    try:
        lower = [absolute(p) for p in opts["lowerdir"].split(":")]
        return Overlay(lower=lower, upper=absolute(opts["upperdir"]),
                       work=absolute(opts["workdir"]))
    except KeyError as e:
        raise BuildError(f"snapshot: overlay mount without {e.args[0]}") from None


class LogFollower:
    """Reads a CRI-format log file as it grows and hands out whole lines of output."""

    def __init__(self, path: Path, emit: Callable[[str], None]) -> None:
        self.path = path
        self.emit = emit
        self.offset = 0
        self.pending = ""
        self.partial = ""

    def poll(self) -> None:
        """Emit the lines written since the last poll."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        text = self.pending + data.decode(errors="replace")
        lines = text.split("\n")
        self.pending = lines.pop()
        for line in lines:
            parts = line.split(" ", 3)
            if len(parts) < 3:
                continue
            content = parts[3] if len(parts) == 4 else ""
            if parts[2] == "P":
                self.partial += content
                continue
            self.emit(self.partial + content)
            self.partial = ""

    def flush(self) -> None:
        """Emit a last unterminated line, if any."""
        self.poll()
        if self.partial:
            self.emit(self.partial)
            self.partial = ""


def run_container(runtime_root: str | os.PathLike[str], container_id: str, bundle: Path,
                  overlay: Overlay, config: dict[str, Any], *,
                  output: Callable[[str], None] | None = None) -> int:
    """Run a container to its end, streaming its output lines; returns its exit code (the
    shim's: 128+n for a signal). The container is deleted whatever happens, Ctrl-C included.
    """
    from llmos.runtime import Runtime

    runtime = Runtime(runtime_root)
    log = bundle / "output.log"
    follower = LogFollower(log, output or (lambda _line: None))
    rootfs = Path(config["root"]["path"])
    rootfs.mkdir(parents=True, exist_ok=True)
    runtime.create(container_id, bundle, overlay=overlay, start_now=True, log_file=str(log),
                   config=config)
    try:
        while True:
            try:
                status = runtime.wait(container_id, timeout=0.25)
                break
            except TimeoutError:
                follower.poll()
        follower.flush()
        return status.code
    finally:
        with contextlib.suppress(Exception):
            runtime.kill(container_id, "KILL")
        runtime.delete(container_id, force=True)


# -- running a built image ------------------------------------------------------------------

def image_process(config: Mapping[str, Any], view: LowerView, args: Sequence[str] | None = None,
                  *, network: str = "none") -> ProcessSpec:
    """What `docker run IMAGE [ARGS]` would start: Entrypoint + (ARGS or Cmd), the image's
    Env, WorkingDir and User (resolved in the image's own /etc/passwd and /etc/group).
    """
    argv = rules.image_argv(config, args)
    if not argv:
        raise BuildError("the image has neither Entrypoint nor Cmd, and no command was given")
    try:
        user = resolve_user(str(config.get("User") or ""),
                            (view.read_bytes("/etc/passwd") or b"").decode(errors="replace"),
                            (view.read_bytes("/etc/group") or b"").decode(errors="replace"))
    except LookupError as e:
        raise BuildError(str(e)) from None
    return ProcessSpec(argv=argv, env=list(config.get("Env") or []),
                       cwd=str(config.get("WorkingDir") or "/"), user=user, network=network,
                       hostname="llmos")


@dataclass(frozen=True)
class StartedImage:
    """A running container of an image (see `started_image`)."""

    runtime_root: Path
    container_id: str
    pid: int
    log: Path


@contextlib.contextmanager
def started_image(store: ImageStore, image: Image, *, runtime_root: str | os.PathLike[str],
                  args: Sequence[str] | None = None, network: str = "none"
                  ) -> Iterator[StartedImage]:
    """Run an image in a container on a fresh snapshot; on exit the container, the snapshot
    and the bundle directory are removed. For tests and tools; the engine has its own.
    `network="none"` gives the container its own (empty) network namespace.
    """
    from llmos.runtime import Runtime

    sn = store.snapshotter
    (store.root / "build-tmp").mkdir(exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix="run-", dir=store.root / "build-tmp"))
    runtime = Runtime(runtime_root)
    cid = f"llmos-run-{uuid.uuid4().hex[:12]}"
    key = cid  # not "extract-": prune must leave a running container's rootfs alone
    created = False
    try:
        view = LowerView([sn.layer_dir(c) for c in reversed(image.chain_ids)])
        spec = image_process(image.config.config, view, args, network=network)
        mounts = sn.prepare(key, image.chain_id)
        (tmp / "empty").mkdir()
        (tmp / "rootfs").mkdir()
        config = container_config(spec, tmp / "rootfs")
        log = tmp / "output.log"
        state = runtime.create(cid, tmp, overlay=overlay_from_mounts(mounts, tmp / "empty"),
                               start_now=True, log_file=str(log), config=config)
        created = True
        yield StartedImage(Path(runtime_root), cid, state.pid, log)
    finally:
        if created:
            with contextlib.suppress(Exception):
                runtime.kill(cid, "KILL")
            runtime.delete(cid, force=True)
        if sn.exists(key):
            sn.remove(key)
        shutil.rmtree(tmp, ignore_errors=True)


def run_image(store: ImageStore, image: Image, *, runtime_root: str | os.PathLike[str],
              args: Sequence[str] | None = None, network: str = "none",
              timeout: float = 60) -> tuple[int, str]:
    """Run an image to its end; returns (exit code, output)."""
    from llmos.runtime import Runtime

    lines: list[str] = []
    with started_image(store, image, runtime_root=runtime_root, args=args,
                       network=network) as c:
        status = Runtime(runtime_root).wait(c.container_id, timeout=timeout)
        follower = LogFollower(c.log, lines.append)
        follower.flush()
    return status.code, "".join(line + "\n" for line in lines)
