"""The engine: Docker's container verbs over images, snapshots and the runtime.

One Engine serves both the daemon (llmosd, over RPC) and the in-process client, so the two
behave the same. Container records keep Docker's inspect shape, so `inspect` is the record
itself and users' jq filters carry over. The source of truth for whether a container runs
is the kernel (through the runtime's state and the shim's exit file), not the record: the
record is refreshed from it whenever it is read.
"""

from __future__ import annotations

import builtins
import datetime as dt
import logging
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from llmos.engine import specgen
from llmos.engine.exec_verbs import ExecVerbs
from llmos.engine.logs import LogLine, read_log
from llmos.engine.options import RunOptions
from llmos.engine.records import RecordStore
from llmos.errors import ConfigError, InvalidState, NotFound, RuntimeError_
from llmos.plan import Overlay
from llmos.runtime import Runtime, Status

ZERO_TIME = "0001-01-01T00:00:00Z"
# Seconds for name lookup plus TCP connect when `run`/`create` pulls a missing image.
RUN_PULL_CONNECT_TIMEOUT = 5.0


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iso_from_ns(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Engine(ExecVerbs):
    """Containers and images under `root` (persistent) and `run_root` (per boot)."""

    def __init__(
        self,
        root: str | os.PathLike[str] = "/var/lib/llmos",
        run_root: str | os.PathLike[str] = "/run/llmos",
        default_network: str = "bridge",
        insecure_registries: Iterable[str] = (),
    ) -> None:
        from llmos.image import ImageStore, RegistryConfig
        from llmos.image.registry import parse_insecure_registry

        if default_network not in ("bridge", "none", "host"):
            raise ConfigError(f"default network: {default_network!r} is not bridge, none or host")
        try:
            insecure = {parse_insecure_registry(entry) for entry in insecure_registries}
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.default_network = default_network
        self.root = Path(root)
        self.run_root = Path(run_root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.run_root.mkdir(parents=True, exist_ok=True, mode=0o711)
        # Registry credentials (`llmos login`), in Docker's config.json format, and CAs in
        # ROOT/certs.d/HOST/ca.crt as Docker keeps them.
        self.auth_file = self.root / "auth.json"
        self.registry_config = RegistryConfig.from_docker_config(
            self.auth_file, certs_dir=self.root / "certs.d", insecure=insecure)
        self.images = ImageStore(self.root / "image", registry_config=self.registry_config)
        self.runtime = Runtime(self.run_root / "runtime")
        self.records = RecordStore(self.root / "containers")
        self._lock = threading.RLock()
        # One thread records a container's exit (the supervisor and a client's wait or
        # inspect may notice it at once): the "die" event is emitted exactly once.
        self._exit_lock = threading.Lock()
        self._network: Any = None
        # Exit codes of containers removed right after they ended (--rm), for late waiters.
        self._tombstones: dict[str, int] = {}

    def network(self) -> Any:
        """The network manager, made on first use: --network none/host never pay for it."""
        with self._lock:
            if self._network is None:
                from llmos.network import NetworkManager

                self._network = NetworkManager(str(self.root / "network"))
            return self._network

    def close(self) -> None:
        self.records.close()
        if self._network is not None:
            self._network.close()
            self._network = None

    # ---- images ------------------------------------------------------------------------

    def import_rootfs(self, tar: str, name: str) -> dict[str, Any]:
        img = self.images.import_rootfs(tar, name)
        return {"Id": img.id, "RepoTags": [name]}

    def image_list(self) -> list[dict[str, Any]]:
        out = []
        for img in self.images.list():
            ref = img.reference
            tags = [ref.familiar()] if ref is not None else []
            out.append({"Id": img.id, "RepoTags": tags, "Size": img.size})
        return out

    # ---- containers: create -------------------------------------------------------------

    def image_for_run(self, ref: str) -> Any:
        """The local image, or pulled from its registry as Docker does when it is missing.

        The pull gets a short connect timeout: on a machine with no route out, `llmos run
        nginx` should say within seconds that Docker Hub is out of reach and how to build the
        image, not sit a minute on a connect that cannot succeed. Reads keep the long timeout.
        """
        import dataclasses

        from llmos.image import NotFound as ImageNotFound
        from llmos.image import Reference, RegistryError
        from llmos.image.transfer import pull

        try:
            return self.images.get(ref)
        except ImageNotFound:
            pass
        try:
            registry = Reference.parse(ref).registry
        except Exception:
            registry = "?"
        config = dataclasses.replace(self.registry_config,
                                     connect_timeout=RUN_PULL_CONNECT_TIMEOUT)
        try:
            return pull(self.images, Reference.parse(ref), platform=self.images.platform,
                        config=config)
        except (RegistryError, ImageNotFound) as e:
            raise NotFound(
                f"image {ref!r} is not here and could not be pulled from {registry} ({e}); "
                f"build it (llmos build -t {ref} DIR), load it (llmos load -i FILE) or import "
                f"a rootfs (llmos import FILE {ref})"
            ) from None

    def login(self, registry: str, username: str, password: str) -> str:
        """Check the credentials against the registry, then keep them for pulls and pushes."""
        import base64
        import json as _json

        from llmos.image import NotFound as ImageNotFound
        from llmos.image import Reference, RegistryConfig, RegistryError, Unauthorized
        from llmos.image.registry import RegistryClient

        probe = RegistryConfig(credentials={registry: (username, password)},
                               certs_dir=self.registry_config.certs_dir,
                               insecure=set(self.registry_config.insecure))
        repo = RegistryClient(probe).repository(
            Reference.parse(f"{registry}/llmos/login-probe:probe"), "pull")
        try:
            repo.ping()
            repo.get_manifest("probe")
        except Unauthorized as e:
            raise InvalidState(f"login to {registry} failed: {e}") from None
        except (ImageNotFound, RegistryError) as e:
            if "401" in str(e) or "unauthorized" in str(e).lower():
                raise InvalidState(f"login to {registry} failed: {e}") from None
        doc: dict[str, Any] = {}
        if self.auth_file.exists():
            doc = _json.loads(self.auth_file.read_text())
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        doc.setdefault("auths", {})[registry] = {"auth": token}
        tmp = self.auth_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            _json.dump(doc, f)
        os.replace(tmp, self.auth_file)
        self.registry_config.credentials[registry] = (username, password)
        return "Login Succeeded"

    def pull(self, ref: str, progress: Any = None) -> dict[str, Any]:
        img = self.images.pull(ref, progress=progress)
        return {"Id": img.id, "RepoTags": [ref]}

    def image_remove(self, ref: str, force: bool = False) -> list[str]:
        in_use = [r["Name"].lstrip("/") for r in self.records.all()
                  if r["Config"]["Image"] == ref or r["Image"] == ref]
        if in_use and not force:
            raise InvalidState(f"image {ref} is used by container(s) {', '.join(in_use)}; "
                               "remove them first or use -f")
        return list(self.images.remove(ref, force=force))

    def create(self, opts: RunOptions) -> str:
        image = self.image_for_run(opts.image)
        if opts.publish_all:
            exposed = sorted((image.config.config.get("ExposedPorts") or {}).keys())
            opts.ports = [*opts.ports, *exposed]
        if opts.network == "default":
            opts.network = self.default_network
        if opts.network.startswith("container:"):
            # Share another container's network namespace (Docker's --network container:X).
            other = self.get(opts.network.split(":", 1)[1])
            if not other["State"]["Running"]:
                raise InvalidState(f"--network {opts.network}: that container is not running")
            opts.network = f"container:{other['Id']}"
        elif opts.network not in ("none", "host", "bridge"):
            self.network().get_network(opts.network)  # raises if there is no such network
        if opts.ports and (opts.network in ("none", "host")
                           or opts.network.startswith("container:")):
            raise ConfigError(f"-p: ports cannot be published with --network {opts.network}")
        if opts.network_aliases and (opts.network in ("none", "host", "bridge")
                                     or opts.network.startswith("container:")):
            # Docker's rule: the default bridge has no name service, so an alias would lie.
            raise ConfigError("--network-alias: only containers on a user-defined network "
                              f"can have aliases (network is {opts.network})")
        if opts.ports:
            from llmos.network import parse_port_spec

            for spec in opts.ports:
                parse_port_spec(spec)
        cid = secrets.token_hex(32)
        rec = self._new_record(cid, opts, image)
        self.records.add(rec)  # the name is taken atomically here
        try:
            self.records.dir(cid).mkdir(parents=True)
            self._prepare(cid, opts, image, rec)
        except BaseException:
            self._remove_files(cid)
            raise
        self.records.event("create", rec)
        return cid

    def _new_record(self, cid: str, opts: RunOptions, image: Any) -> dict[str, Any]:
        icfg = dict(image.config.config)
        return {
            "Id": cid,
            "Name": "/" + (opts.name or f"llmos_{cid[:8]}"),
            "Created": now_iso(),
            "Image": image.id,
            "Path": "",
            "Args": [],
            "State": {
                "Status": "created", "Running": False, "Paused": False, "Restarting": False,
                "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
                "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME,
            },
            "RestartCount": 0,
            "Config": {
                "Hostname": opts.hostname or cid[:12],
                "User": opts.user if opts.user is not None else icfg.get("User", ""),
                "Env": specgen.merge_env(icfg.get("Env") or [], opts.env),
                "Cmd": opts.command if opts.command else icfg.get("Cmd"),
                "Entrypoint": opts.entrypoint if opts.entrypoint is not None
                else icfg.get("Entrypoint"),
                "WorkingDir": opts.workdir or icfg.get("WorkingDir", ""),
                "Image": opts.image,
                "Labels": dict(opts.labels),
                "Tty": opts.tty,
                "OpenStdin": opts.interactive,
                "ExposedPorts": icfg.get("ExposedPorts") or {},
                "StopSignal": opts.stop_signal or icfg.get("StopSignal") or "SIGTERM",
                "StopTimeout": opts.stop_timeout,
            },
            "HostConfig": {
                "Binds": [f"{m.source}:{m.target}{':ro' if m.read_only else ''}"
                          for m in opts.mounts if m.type in ("bind", "volume")],
                "Tmpfs": {m.target: m.options for m in opts.mounts if m.type == "tmpfs"},
                "Memory": opts.memory or 0,
                "NanoCpus": opts.nano_cpus or 0,
                "PidsLimit": opts.pids_limit,
                "RestartPolicy": {"Name": opts.restart.name,
                                  "MaximumRetryCount": opts.restart.maximum_retry_count},
                "AutoRemove": opts.auto_remove,
                "ReadonlyRootfs": opts.read_only,
                "NetworkMode": opts.network,
                "PortBindings": {},
            },
            "Mounts": [],
            "NetworkSettings": {"Networks": {}, "Ports": {}, "IPAddress": ""},
            "LogPath": str(self.records.dir(cid) / "container.log"),
            "AttachSocket": str(self.runtime.root / cid / "attach.sock") if opts.tty else "",
            "Options": opts.to_dict(),
        }

    def _prepare(self, cid: str, opts: RunOptions, image: Any, rec: dict[str, Any]) -> None:
        cdir = self.records.dir(cid)
        mounts = self.images.snapshotter.prepare(cid, image.chain_id)
        overlay = _overlay_from(mounts)
        (cdir / "rootfs").mkdir()
        volume_paths = {}
        for m in opts.mounts:
            if m.type == "volume":
                path = self.root / "volumes" / m.source / "_data"
                path.mkdir(parents=True, exist_ok=True)
                volume_paths[m.source] = str(path)
            elif m.type == "bind" and not os.path.exists(m.source):
                raise ConfigError(f"-v: bind source path does not exist: {m.source}")
        rec["Mounts"] = [
            {"Type": m.type, "Name": m.source if m.type == "volume" else "",
             "Source": volume_paths.get(m.source, m.source), "Destination": m.target,
             "RW": not m.read_only}
            for m in opts.mounts if m.type != "tmpfs"
        ]
        resolver = _image_user_resolver(overlay)
        hosts = self._hosts_files(cid, opts)
        config = specgen.generate(
            image.config.config, opts, container_id=cid, rootfs=str(cdir / "rootfs"),
            volume_paths=volume_paths, resolve_user=resolver, hosts_files=hosts,
            shared_netns="/proc/0/ns/net" if opts.network.startswith("container:") else None,
        )
        rec["Path"], rec["Args"] = config["process"]["args"][0], config["process"]["args"][1:]
        rec["Overlay"] = {"lower": list(overlay.lower), "upper": overlay.upper,
                          "work": overlay.work}
        import json

        (cdir / "config.json").write_text(json.dumps(config))
        self.records.save(rec)

    def _hosts_files(self, cid: str, opts: RunOptions) -> dict[str, str]:
        """Per-container /etc/hostname, /etc/hosts, /etc/resolv.conf, as Docker writes them."""
        cdir = self.records.dir(cid)
        hostname = opts.hostname or cid[:12]
        (cdir / "hostname").write_text(hostname + "\n")
        (cdir / "hosts").write_text(
            f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"127.0.1.1\t{hostname}\n"
        )
        try:
            resolv = Path("/etc/resolv.conf").read_text()
        except OSError:
            resolv = ""
        if opts.network != "host":
            # 127.0.0.x resolvers of the host are not reachable from another namespace.
            resolv = "\n".join(ln for ln in resolv.splitlines()
                               if not ln.strip().startswith("nameserver 127."))
        (cdir / "resolv.conf").write_text(resolv + "\n")
        return {"/etc/hostname": str(cdir / "hostname"), "/etc/hosts": str(cdir / "hosts"),
                "/etc/resolv.conf": str(cdir / "resolv.conf")}

    # ---- containers: lifecycle ----------------------------------------------------------

    def get(self, ref: str) -> dict[str, Any]:
        rec = self.records.resolve(ref)
        return self._refresh(rec)

    def _refresh(self, rec: dict[str, Any]) -> dict[str, Any]:
        """Bring State up to date with the kernel; record exits that happened meanwhile."""
        st = rec["State"]
        if st["Status"] not in ("running", "paused", "restarting"):
            return rec
        try:
            cs = self.runtime.state(rec["Id"])
        except NotFound:
            cs = None
        if cs is not None and cs.status in (Status.RUNNING, Status.PAUSED, Status.CREATED):
            paused = cs.status is Status.PAUSED
            if st["Paused"] != paused:
                st.update(Paused=paused, Status="paused" if paused else "running")
                self.records.save(rec)
            return rec
        with self._exit_lock:
            try:
                fresh = self.records.resolve(rec["Id"])
            except NotFound:
                return rec  # removed meanwhile
            if fresh["State"]["Status"] not in ("running", "paused", "restarting") or (
                    fresh["State"]["StartedAt"] != st["StartedAt"]):
                rec.clear()
                rec.update(fresh)  # another thread recorded this exit (or a restart) first
                return rec
            code = cs.exit.code if cs is not None and cs.exit is not None else 255
            finished = (_iso_from_ns(cs.exit.finished_ns) if cs is not None and cs.exit
                        else now_iso())
            st.update(Status="exited", Running=False, Paused=False, Restarting=False, Pid=0,
                      ExitCode=code, FinishedAt=finished,
                      OOMKilled=bool(cs is not None and cs.oom_killed))
            if st["OOMKilled"]:
                self.records.event("oom", rec)
            self.records.event("die", rec, exitCode=code)
            if _networked(rec):
                # Its namespace is gone with it: release the address, DNS name and ports.
                self._disconnect(rec["Id"])
                rec["NetworkSettings"] = {"Networks": {}, "Ports": {}, "IPAddress": ""}
            self.records.save(rec)
        return rec

    def start(self, ref: str) -> None:
        with self._lock:
            rec = self.get(ref)
            if rec["State"]["Running"]:
                return  # Docker: starting a running container is a no-op
            self._start(rec)

    def _start(self, rec: dict[str, Any]) -> None:
        cid = rec["Id"]
        cdir = self.records.dir(cid)
        try:
            self.runtime.delete(cid, force=True)  # the previous run's runtime state
        except NotFound:
            pass
        ov = rec["Overlay"]
        networked = _networked(rec)
        mode = rec["HostConfig"]["NetworkMode"]
        if mode.startswith("container:"):
            self._join_netns_of(rec, mode.split(":", 1)[1])
        try:
            if networked:
                # The namespace first, wired, then the container started into it at once
                # (the runtime's fast path): nothing waits paused for the network.
                netns = self._netns_file(cid)
                try:
                    self._new_netns(netns)
                    self._connect(rec, str(netns))
                    self._point_netns(rec, str(netns))
                except BaseException:
                    self._disconnect(cid)
                    raise
            try:
                cs = self.runtime.create(
                    cid, cdir, overlay=Overlay(ov["lower"], ov["upper"], ov["work"]),
                    log_file=rec["LogPath"], start_now=True, loopback_up=True,
                )
            except BaseException:
                if networked:
                    self._disconnect(cid)
                raise
        except Exception as e:
            rec["State"].update(Status="exited" if rec["State"]["StartedAt"] != ZERO_TIME
                                else "created", Error=str(e),
                                ExitCode=getattr(e, "exit_code", 125))
            self.records.save(rec)
            raise
        rec["State"].update(Status="running", Running=True, Paused=False, Restarting=False,
                            Pid=cs.pid, ExitCode=0, Error="", StartedAt=now_iso(),
                            FinishedAt=ZERO_TIME, OOMKilled=False)
        self.records.save(rec)
        self.records.event("start", rec)

    def _join_netns_of(self, rec: dict[str, Any], other_id: str) -> None:
        """Point the config at the other container's network namespace, as it is now."""
        other = self.get(other_id)
        if not other["State"]["Running"]:
            raise InvalidState(f"container {other['Name'][1:]} (whose network this one "
                               "shares) is not running")
        self._point_netns(rec, f"/proc/{other['State']['Pid']}/ns/net")

    def _point_netns(self, rec: dict[str, Any], path: str) -> None:
        """Have the container join the network namespace at `path` instead of making one."""
        import json as _json

        cfg = self.records.dir(rec["Id"]) / "config.json"
        config = _json.loads(cfg.read_text())
        for ns in config["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = path
        cfg.write_text(_json.dumps(config))

    def _netns_file(self, cid: str) -> Path:
        return self.run_root / "netns" / cid

    def _new_netns(self, path: Path) -> None:
        from llmos.runtime import native

        path.parent.mkdir(mode=0o700, exist_ok=True)
        native.netns_remove(str(path))  # a previous run's, if its exit went unrecorded
        native.netns_new(str(path))

    def _connect(self, rec: dict[str, Any], netns: str) -> None:
        """Attach the container's network namespace (not yet entered by any process) to its
        network, publish its ports, and write its /etc files now that its address is known."""
        net = self.network()
        cid = rec["Id"]
        mode = rec["HostConfig"]["NetworkMode"]
        name = "bridge" if mode in ("bridge", "default") else mode
        cname = rec["Name"].lstrip("/")
        aliases = list(rec["Options"].get("network_aliases") or [])
        ep = net.connect(name, cid, netns, name=cname, aliases=aliases)
        ports = rec["Options"].get("ports") or []
        bindings = net.publish(cid, ports) if ports else []
        hostname = rec["Config"]["Hostname"]
        files = net.container_files(cid, hostname, aliases=[cname, *aliases])
        cdir = self.records.dir(cid)
        for fname, key in (("hosts", "hosts"), ("resolv.conf", "resolv.conf"),
                           ("hostname", "hostname")):
            # In place, not rename: the container's bind mount holds this very inode.
            with open(cdir / fname, "r+") as f:
                f.truncate(0)
                f.write(files[key])
        port_map = _port_map(bindings)
        rec["NetworkSettings"] = {
            "IPAddress": str(ep.ip),
            "Gateway": str(ep.gateway),
            "MacAddress": ep.mac,
            "Ports": port_map,
            "Networks": {name: {"IPAddress": str(ep.ip), "Gateway": str(ep.gateway),
                                "MacAddress": ep.mac, "IPPrefixLen": ep.prefixlen,
                                "Aliases": [cname, *aliases]}},
        }
        self.records.save(rec)

    def network_connect(self, network: str, ref: str, aliases: list[str] | None = None) -> None:
        """`llmos network connect`: one more interface (eth1, ...) in a running container."""
        rec = self.get(ref)
        if not rec["State"]["Running"] or not _networked(rec):
            raise InvalidState(f"container {rec['Name'][1:]} must be running on a bridge "
                               "network to connect it to another")
        cname = rec["Name"].lstrip("/")
        network = self.network().get_network(network).name  # an id (prefix) names it too
        ep = self.network().connect(network, rec["Id"], f"/proc/{rec['State']['Pid']}/ns/net",
                                    name=cname, aliases=list(aliases or []))
        rec["NetworkSettings"]["Networks"][network] = {
            "IPAddress": str(ep.ip), "Gateway": str(ep.gateway), "MacAddress": ep.mac,
            "IPPrefixLen": ep.prefixlen, "Aliases": [cname, *(aliases or [])]}
        self.records.save(rec)

    def network_disconnect(self, network: str, ref: str) -> None:
        rec = self.get(ref)
        net = self.network()
        network = net.get_network(network).name
        net.disconnect(network, rec["Id"])
        rec["NetworkSettings"]["Networks"].pop(network, None)
        # Ports published through that network went with it.
        rec["NetworkSettings"]["Ports"] = _port_map(net.ports(rec["Id"]))
        self.records.save(rec)

    def _disconnect(self, cid: str) -> None:
        """Release the container's addresses, ports and DNS names, and its namespace."""
        self._disconnect_network(cid)
        self._release_netns(cid)

    def _disconnect_network(self, cid: str) -> None:
        if self._network is not None or (self.root / "network").exists():
            try:
                self.network().disconnect_all(cid)
            except Exception as e:
                # Removal goes on (the container is gone either way); the daemon's next
                # start sweeps what this left, and the log says why it was left.
                logging.getLogger("llmos.engine").warning(
                    "container %s: releasing its network: %s", cid[:12], e)

    def _release_netns(self, cid: str) -> None:
        netns = self._netns_file(cid)
        if os.path.lexists(netns):
            from llmos.runtime import native

            try:
                native.netns_remove(str(netns))
            except OSError:
                pass

    def wait(self, ref: str, timeout: float | None = None) -> int:
        if ref in self._tombstones:
            return self._tombstones[ref]
        try:
            rec = self.get(ref)
        except NotFound:
            if ref in self._tombstones:  # removed (--rm) while we looked
                return self._tombstones[ref]
            raise
        if rec["State"]["Running"]:
            try:
                self.runtime.wait(rec["Id"], timeout=timeout)
            except NotFound:
                pass
            if rec["Id"] in self._tombstones:
                return self._tombstones[rec["Id"]]
            rec = self._refresh(rec)
        return int(rec["State"]["ExitCode"])

    def remove_exited(self, rec: dict[str, Any]) -> None:
        """--rm: the daemon removes the container once it ended, keeping its exit code."""
        self._tombstones[rec["Id"]] = int(rec["State"]["ExitCode"])
        while len(self._tombstones) > 1000:
            self._tombstones.pop(next(iter(self._tombstones)))
        self._remove_files(rec["Id"])
        self.records.event("destroy", rec)

    def kill(self, ref: str, sig: str | int = "KILL") -> None:
        rec = self.get(ref)
        if not rec["State"]["Running"]:
            raise InvalidState(f"container {rec['Name'][1:]} is not running")
        self._stopping(rec)
        self.runtime.kill(rec["Id"], sig)

    def _stopping(self, rec: dict[str, Any]) -> None:
        """A user stop is not a failure: restart policies must not bring it back."""
        rec["UserStopped"] = True
        self.records.save(rec)

    def stop(self, ref: str, timeout: float | None = None) -> None:
        rec = self.get(ref)
        if not rec["State"]["Running"]:
            return
        self._stopping(rec)
        cid = rec["Id"]
        if timeout is None:
            timeout = rec["Config"].get("StopTimeout") or 10
        try:
            if rec["State"]["Paused"]:
                self.runtime.resume(cid)
            self.runtime.kill(cid, rec["Config"].get("StopSignal") or "TERM")
            self.runtime.wait(cid, timeout=timeout)
        except TimeoutError:
            self.runtime.kill(cid, "KILL", all=True)
            self.runtime.wait(cid, timeout=30)
        except InvalidState:
            pass
        self._refresh(rec)

    def restart(self, ref: str, timeout: float | None = None) -> None:
        self.stop(ref, timeout)
        rec = self.get(ref)
        rec.pop("UserStopped", None)
        self._start(rec)

    def pause(self, ref: str) -> None:
        rec = self.get(ref)
        self.runtime.pause(rec["Id"])
        self._refresh(rec)

    def unpause(self, ref: str) -> None:
        rec = self.get(ref)
        self.runtime.resume(rec["Id"])
        self._refresh(rec)

    def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        rec = self.get(ref)
        if rec["State"]["Running"] and not force:
            raise InvalidState(
                f"cannot remove running container {rec['Name'][1:]}: stop it first or use -f"
            )
        self._remove_files(rec["Id"])
        self.records.event("destroy", rec)

    def _remove_files(self, cid: str) -> None:
        """Everything a container owns, in an order that is safe to repeat after a crash."""
        self._disconnect(cid)
        try:
            self.runtime.delete(cid, force=True)
        except NotFound:
            pass
        from llmos.engine import execs

        execs.end_all(self.records.dir(cid))  # `exec -t` shims, which no cgroup holds
        try:
            self.images.snapshotter.remove(cid)
        except Exception:
            pass
        shutil.rmtree(self.records.dir(cid), ignore_errors=True)
        self.records.remove(cid)

    def list(self, all: bool = False) -> list[dict[str, Any]]:
        out = []
        for rec in self.records.all():
            rec = self._refresh(rec)
            if all or rec["State"]["Running"]:
                out.append(rec)
        out.sort(key=lambda r: r["Created"], reverse=True)
        return out

    def logs(
        self, ref: str, *, follow: bool = False, tail: int | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> Iterator[LogLine]:
        rec = self.get(ref)
        cid = rec["Id"]

        def running() -> bool:
            try:
                return self.runtime.state(cid).status in (Status.RUNNING, Status.PAUSED)
            except NotFound:
                return False

        return read_log(rec["LogPath"], tail=tail, follow=follow, still_running=running,
                        stop=stop)

    def stats(self, ref: str) -> dict[str, Any]:
        from llmos.cgroups import open_cgroup

        rec = self.get(ref)
        if not rec["State"]["Running"]:
            raise InvalidState(f"container {rec['Name'][1:]} is not running")
        s = open_cgroup(f"llmos/{rec['Id']}").stats()
        host_memory = _host_memory()
        limit = s.memory_limit
        if limit is None or (host_memory and limit > host_memory):
            limit = host_memory  # unlimited: the machine's memory is the limit (as Docker)
        return {
            "id": rec["Id"], "name": rec["Name"],
            "memory_stats": {"usage": s.memory_usage, "limit": limit,
                             "stats": {"cache": s.memory_cache or 0}},
            # Docker's fields for CPU %: the container's time against all CPUs' time, both
            # in ns, between two reads.
            "cpu_stats": {"cpu_usage": {"total_usage": s.cpu_usage_ns},
                          "system_cpu_usage": _system_cpu_ns(),
                          "online_cpus": os.cpu_count() or 1},
            "pids_stats": {"current": s.pids_current},
            "read": now_iso(),
        }


def _system_cpu_ns() -> int:
    """Time all CPUs spent, busy or idle, since boot (/proc/stat's first line, as Docker)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return sum(int(x) for x in fields) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _port_map(bindings: Iterable[Any]) -> dict[str, list[dict[str, str]]]:
    """Docker's NetworkSettings.Ports from published bindings."""
    port_map: dict[str, list[dict[str, str]]] = {}
    for b in bindings:
        port_map.setdefault(f"{b.container_port}/{b.proto}", []).append(
            {"HostIp": b.host_ip, "HostPort": str(b.host_port)})
    return port_map


def _networked(rec: dict[str, Any]) -> bool:
    mode = rec["HostConfig"]["NetworkMode"]
    return mode not in ("none", "host") and not mode.startswith("container:")


def _overlay_from(mounts: builtins.list[Any]) -> Overlay:
    if len(mounts) != 1:
        raise RuntimeError_(f"unexpected snapshot mounts: {mounts!r}")
    m = mounts[0]
    opts = {k: v for k, _, v in (o.partition("=") for o in m.options)}
    base = m.chdir or ""
    lower = [os.path.join(base, p) for p in opts.get("lowerdir", "").split(":") if p]
    if m.type != "overlay" or not lower:
        raise RuntimeError_(f"unexpected snapshot mount {m.type} {m.options}")
    return Overlay(lower=lower, upper=os.path.join(base, opts["upperdir"]),
                   work=os.path.join(base, opts["workdir"]))


def _image_user_resolver(overlay: Overlay) -> specgen.UserResolver:
    """Resolve user names against the image's /etc/passwd, read from its topmost layer."""

    def find(rel: str) -> str:
        for layer in [overlay.upper, *overlay.lower]:
            p = Path(layer) / rel
            if p.is_file():
                return p.read_text(errors="replace")
        return ""

    def resolve(text: str) -> tuple[int, int, list[int]]:
        return specgen.resolve_user_in(find("etc/passwd"), find("etc/group"))(text)

    return resolve
