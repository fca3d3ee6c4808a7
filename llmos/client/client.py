"""`llmos.Client`: docker-py's shape (client.containers.run/get/list, container.logs/...).

    client = llmos.Client()                         # the daemon, via LLMOS_HOST or the default
    client = llmos.Client.embedded(root=tmpdir)     # no daemon: the engine in this process
    out = client.containers.run("busybox", ["echo", "hi"], remove=True)   # b"hi\\n"
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from llmos.client.transport import InProcessTransport, SocketTransport, Transport
from llmos.daemon.errors import NotFound, RpcError


class ContainerError(Exception):
    """A container run without detach exited non-zero (docker-py's ContainerError)."""

    def __init__(self, container: Container, exit_status: int, command: Any, image: str,
                 stderr: bytes) -> None:
        super().__init__(
            f"Command {command!r} in image {image!r} returned non-zero exit status "
            f"{exit_status}: {stderr.decode(errors='replace')}"
        )
        self.container = container
        self.exit_status = exit_status
        self.stderr = stderr


@dataclass
class ExecResult:
    exit_code: int
    output: bytes


class Container:
    """A handle on one container; `attrs` is its inspect document, `reload()` refreshes it."""

    def __init__(self, client: Client, attrs: dict[str, Any]) -> None:
        self.client = client
        self.attrs = attrs

    @property
    def id(self) -> str:
        return str(self.attrs["Id"])

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def name(self) -> str:
        return str(self.attrs["Name"]).lstrip("/")

    @property
    def status(self) -> str:
        return str(self.attrs["State"]["Status"])

    def __repr__(self) -> str:
        return f"<Container: {self.short_id}>"

    def _call(self, method: str, **params: Any) -> Any:
        return self.client.transport.call(method, {"id": self.id, **params})

    def reload(self) -> None:
        self.attrs = self._call("container.inspect")

    def start(self) -> None:
        self._call("container.start")

    def stop(self, timeout: float | None = None) -> None:
        self._call("container.stop", timeout=timeout)

    def restart(self, timeout: float | None = None) -> None:
        self._call("container.restart", timeout=timeout)

    def kill(self, signal: str | int = "KILL") -> None:
        self._call("container.kill", signal=signal)

    def pause(self) -> None:
        self._call("container.pause")

    def unpause(self) -> None:
        self._call("container.unpause")

    def remove(self, force: bool = False) -> None:
        self._call("container.remove", force=force)

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._call("container.wait", timeout=timeout)
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("container.stats")
        return result

    def logs(
        self,
        stdout: bool = True,
        stderr: bool = True,
        stream: bool = False,
        follow: bool = False,
        tail: int | str = "all",
        timestamps: bool = False,
    ) -> bytes | Iterator[bytes]:
        params: dict[str, Any] = {"id": self.id, "follow": follow}
        if tail != "all":
            params["tail"] = int(tail)

        def lines() -> Iterator[bytes]:
            for item in self.client.transport.stream("container.logs", params):
                if (item["stream"] == "stdout" and stdout) or (
                    item["stream"] == "stderr" and stderr
                ):
                    text = item["text"]
                    if timestamps:
                        text = f"{item['time']} {text}"
                    yield text.encode()

        if stream:
            return lines()
        return b"".join(lines())

    def exec_run(
        self,
        cmd: str | builtins.list[str],
        *,
        environment: builtins.list[str] | dict[str, str] | None = None,
        user: str | None = None,
        workdir: str | None = None,
        demux: bool = False,
    ) -> ExecResult:
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        env = _env_list(environment)
        r = self._call("container.exec", cmd=argv, env=env, user=user, workdir=workdir)
        out, err = bytes(r["Stdout"]), bytes(r["Stderr"])
        return ExecResult(int(r["ExitCode"]), (out, err) if demux else out + err)  # type: ignore[arg-type]


def _env_list(environment: builtins.list[str] | dict[str, str] | None) -> builtins.list[str]:
    if environment is None:
        return []
    if isinstance(environment, dict):
        return [f"{k}={v}" for k, v in environment.items()]
    return list(environment)


class ContainerCollection:
    """`client.containers`: create, run, get and list containers."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def create(self, image: str, command: str | builtins.list[str] | None = None,
               **kwargs: Any) -> Container:
        opts = _run_options(image, command, kwargs)
        cid = self.client.transport.call("container.create", {"options": opts})["Id"]
        return self.get(cid)

    def run(self, image: str, command: str | builtins.list[str] | None = None, *,
            detach: bool = False, remove: bool = False, stdout: bool = True,
            stderr: bool = False, **kwargs: Any) -> Container | bytes:
        """Like docker-py: detach returns the Container, else the output (raising
        ContainerError on a non-zero exit)."""
        c = self.create(image, command, auto_remove=False, **kwargs)
        try:
            c.start()
        except RpcError:
            c.remove(force=True)
            raise
        if detach:
            return c
        try:
            code = int(c.wait()["StatusCode"])
            out = c.logs(stdout=stdout, stderr=stderr)
            assert isinstance(out, bytes)
            if code != 0:
                err = c.logs(stdout=False, stderr=True)
                assert isinstance(err, bytes)
                raise ContainerError(c, code, command, image, err)
            return out
        finally:
            if remove:
                c.remove(force=True)

    def get(self, container_id: str) -> Container:
        return Container(self.client, self.client.transport.call(
            "container.inspect", {"id": container_id}))

    def list(self, all: bool = False) -> builtins.list[Container]:
        recs = self.client.transport.call("container.list", {"all": all})
        return [Container(self.client, r) for r in recs]


def _run_options(image: str, command: str | builtins.list[str] | None,
                 kw: dict[str, Any]) -> dict[str, Any]:
    """docker-py keyword arguments -> llmos RunOptions fields."""
    from llmos.engine.options import parse_cpus, parse_size, parse_tmpfs, parse_volume

    opts: dict[str, Any] = {"image": image}
    if command is not None:
        opts["command"] = ["/bin/sh", "-c", command] if isinstance(command, str) else list(
            command)
    simple = {"name": "name", "working_dir": "workdir", "user": "user",
              "hostname": "hostname", "tty": "tty", "stdin_open": "interactive",
              "read_only": "read_only", "auto_remove": "auto_remove",
              "network_mode": "network", "network": "network", "pids_limit": "pids_limit",
              "labels": "labels", "stop_signal": "stop_signal",
              "publish_all_ports": "publish_all"}
    for key, field in simple.items():
        if key in kw:
            opts[field] = kw.pop(key)
    if "entrypoint" in kw:
        ep = kw.pop("entrypoint")
        opts["entrypoint"] = [ep] if isinstance(ep, str) else list(ep)
    if "environment" in kw:
        opts["env"] = _env_list(kw.pop("environment"))
    if "mem_limit" in kw:
        opts["memory"] = parse_size(kw.pop("mem_limit"), "mem_limit")
    if "nano_cpus" in kw:
        opts["nano_cpus"] = int(kw.pop("nano_cpus"))
    if "cpus" in kw:
        opts["nano_cpus"] = parse_cpus(kw.pop("cpus"), "cpus")
    if "ports" in kw:
        opts["ports"] = _port_specs(kw.pop("ports") or {})
    if "restart_policy" in kw:
        rp = kw.pop("restart_policy") or {}
        opts["restart"] = {"name": rp.get("Name", "no"),
                           "maximum_retry_count": rp.get("MaximumRetryCount", 0)}
    mounts = []
    vols = kw.pop("volumes", None) or []
    if isinstance(vols, dict):
        vols = [f"{src}:{v['bind']}:{v.get('mode', 'rw')}" for src, v in vols.items()]
    mounts += [vars(parse_volume(v)) for v in vols]
    tmpfs = kw.pop("tmpfs", None) or {}
    mounts += [vars(parse_tmpfs(f"{k}:{v}" if v else k)) for k, v in tmpfs.items()]
    if mounts:
        opts["mounts"] = mounts
    if kw:
        raise TypeError(f"unsupported arguments: {', '.join(sorted(kw))}")
    return opts


def _port_specs(ports: dict[Any, Any]) -> builtins.list[str]:
    """docker-py's `ports` ({"80/tcp": 8080, 53: ("127.0.0.1", 5353), "81": None,
    "82/tcp": [8082, 9082]}) as `-p` specs."""
    specs: builtins.list[str] = []
    for key, value in ports.items():
        container = str(key) if "/" in str(key) else f"{key}/tcp"
        for host in value if isinstance(value, builtins.list) else [value]:
            if host is None:
                specs.append(container)
            elif isinstance(host, tuple):
                ip, *port = host
                specs.append(f"{ip}:{port[0] if port else ''}:{container}")
            else:
                specs.append(f"{host}:{container}")
    return specs


class ImageCollection:
    """`client.images`: list images, and import a rootfs tarball as an image."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def list(self) -> builtins.list[dict[str, Any]]:
        result: builtins.list[dict[str, Any]] = self.client.transport.call("image.list", {})
        return result

    def import_rootfs(self, path: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.client.transport.call(
            "image.import", {"path": path, "name": name})
        return result


class Client:
    """docker-py-like client over a transport (daemon socket, or in-process)."""

    def __init__(self, transport: Transport | None = None) -> None:
        self.transport: Transport = transport or SocketTransport()
        self.containers = ContainerCollection(self)
        self.images = ImageCollection(self)

    @classmethod
    def from_env(cls) -> Client:
        return cls(SocketTransport())

    @classmethod
    def embedded(cls, root: str = "/var/lib/llmos", run_root: str = "/run/llmos",
                 default_network: str = "none",
                 insecure_registries: Sequence[str] = ()) -> Client:
        """The engine in this process: no daemon needed (for test harnesses).

        Containers get no network unless asked (`network_mode="bridge"`): a test process
        should not set up bridges and firewall rules on its machine by surprise.
        `insecure_registries` is llmosd's --insecure-registry list.
        """
        return cls(InProcessTransport(root, run_root, default_network, insecure_registries))

    def ping(self) -> bool:
        return bool(self.transport.call("ping", {}) == "pong")

    def version(self) -> dict[str, Any]:
        result: dict[str, Any] = self.transport.call("version", {})
        return result

    def info(self) -> dict[str, Any]:
        result: dict[str, Any] = self.transport.call("info", {})
        return result

    def close(self) -> None:
        self.transport.close()


__all__ = ["Client", "Container", "ContainerError", "ExecResult", "NotFound"]
