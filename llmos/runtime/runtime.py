"""The low-level runtime: OCI lifecycle verbs on bundles, as a library.

Each verb has the same shape (youki's): load state -> re-derive status from the kernel ->
`can_X()` guard -> act -> save state -> hooks. The CLI (`llmos runtime ...`) and the engine
are thin callers of this class, so both behave the same.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal as signal_mod
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos.errors import (
    AlreadyExists,
    ConfigError,
    InvalidState,
    RuntimeError_,
)
from llmos.plan import Overlay, Plan, PlanContext, host_cgroup_hierarchies, plan_container
from llmos.runtime import hooks as hooks_mod
from llmos.runtime import native
from llmos.runtime.state import (
    ExitStatus,
    State,
    StateDir,
    Status,
    derive_status,
    process_start_time,
    process_state_letter,
)

DEFAULT_ROOT = "/run/llmos/runtime"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")
_SECCOMP_CACHE: dict[str, bytes] = {}


@dataclass
class ContainerState:
    """The OCI state of a container, plus what llmos knows beyond it."""

    id: str
    status: Status
    pid: int
    bundle: str
    annotations: dict[str, str]
    created_ns: int
    exit: ExitStatus | None
    oom_killed: bool

    def oci(self) -> dict[str, Any]:
        state = hooks_mod.oci_state(
            self.id, self.status.value, self.pid, self.bundle, self.annotations
        )
        if self.status is Status.PAUSED:
            state["status"] = "paused"
        return state


def parse_signal(sig: str | int) -> int:
    """`TERM`, `SIGTERM`, `15` -> 15, with a clear error otherwise."""
    if isinstance(sig, int):
        return sig
    text = sig.strip().upper()
    if text.isdigit():
        return int(text)
    if not text.startswith("SIG"):
        text = "SIG" + text
    rt = re.fullmatch(r"SIGRT(MIN|MAX)(?:([+-])(\d+))?", text)
    if rt is not None:  # Docker's RTMIN+n / RTMAX-n (STOPSIGNAL SIGRTMIN+3 for systemd)
        base = signal_mod.SIGRTMIN if rt.group(1) == "MIN" else signal_mod.SIGRTMAX
        offset = int(rt.group(3) or 0) * (-1 if rt.group(2) == "-" else 1)
        number = int(base) + offset
        if signal_mod.SIGRTMIN <= number <= signal_mod.SIGRTMAX:
            return number
        raise ConfigError(f"signal {sig!r}: outside SIGRTMIN..SIGRTMAX")
    try:
        return int(signal_mod.Signals[text])
    except KeyError:
        raise ConfigError(f"unknown signal {sig!r}") from None


def _compile_seccomp(config: Mapping[str, Any]) -> bytes:
    seccomp = (config.get("linux") or {}).get("seccomp")
    if not seccomp:
        return b""
    key = json.dumps(seccomp, sort_keys=True)
    prog = _SECCOMP_CACHE.get(key)
    if prog is None:
        from llmos.spec import Seccomp, compile_seccomp, to_bytes

        prog = to_bytes(compile_seccomp(Seccomp.from_dict(seccomp, "linux.seccomp")))
        _SECCOMP_CACHE[key] = prog
    return prog


class Runtime:
    """Containers from bundles, the OCI way; state under `root`, cgroups under `cgroup_root`."""

    def __init__(
        self,
        root: str | os.PathLike[str] = DEFAULT_ROOT,
        cgroup_root: str = "/sys/fs/cgroup",
    ) -> None:
        self.root = Path(root)
        self.cgroup_root = cgroup_root
        self._hierarchies: list[Any] | None = None
        self._host_security: Any = None

    # ---- helpers -----------------------------------------------------------------------

    def _dir(self, container_id: str) -> StateDir:
        if not _ID_RE.match(container_id):
            raise ConfigError(
                f"invalid container id {container_id!r}: use letters, digits, '_', '.', '-'"
            )
        return StateDir(self.root, container_id)

    def _cgroup(self, state: State) -> Any:
        from llmos.cgroups import open_cgroup

        return open_cgroup(state.cgroup, root=state.cgroup_root)

    def _status(self, sd: StateDir, state: State) -> Status:
        status = derive_status(sd, state)
        if status is Status.RUNNING and state.cgroup:
            try:
                if self._cgroup(state).frozen():
                    return Status.PAUSED
            except Exception:
                pass
        return status

    def _load(self, container_id: str) -> tuple[StateDir, State, Status]:
        sd = self._dir(container_id)
        state = sd.load()
        return sd, state, self._status(sd, state)

    def _cgroup_name(self, config: Mapping[str, Any], container_id: str) -> str:
        path = (config.get("linux") or {}).get("cgroupsPath")
        if not path:
            return f"llmos/{container_id}"
        if ":" in path:
            raise ConfigError(
                f"linux.cgroupsPath: {path!r} is a systemd slice path; llmos drives cgroupfs"
            )
        # Every llmos cgroup lives below the `llmos` parent, whatever the config asks.
        rel = str(path).strip("/")
        return rel if rel.startswith("llmos/") else f"llmos/{rel}"

    # ---- verbs -------------------------------------------------------------------------

    def create(
        self,
        container_id: str,
        bundle: str | os.PathLike[str],
        *,
        overlay: Overlay | None = None,
        console_socket: str | None = None,
        pid_file: str | None = None,
        stdio: tuple[int, int, int] = (-1, -1, -1),
        log_file: str | None = None,
        preserve_fds: int = 0,
        start_now: bool = False,
        config: Mapping[str, Any] | None = None,
        loopback_up: bool = False,
    ) -> ContainerState:
        """Create the container; it waits for `start` (or runs at once with start_now)."""
        from llmos.spec import Spec, SpecError, unsupported_fields

        bundle_path = Path(bundle).resolve()
        sd = self._dir(container_id)
        config_text: str | None = None
        if config is None:
            cfg_file = bundle_path / "config.json"
            try:
                config_text = cfg_file.read_text()
                config = json.loads(config_text)
            except FileNotFoundError:
                raise ConfigError(f"{cfg_file}: no such file") from None
            except ValueError as e:
                raise ConfigError(f"{cfg_file}: not valid JSON: {e}") from None
            where = f"{cfg_file}: "
        else:
            where = ""
        try:
            # Validation only: the plan is made from the JSON itself, which is also what is
            # kept (no round trip through the model).
            spec = Spec.from_dict(config)
        except SpecError as e:
            raise ConfigError(f"{where}{e}") from None
        assert config is not None
        if self._host_security is None:
            from llmos.spec import HostSecurity

            self._host_security = HostSecurity.probe()
        bad = unsupported_fields(spec, self._host_security)
        if bad:
            raise ConfigError("unsupported by llmos on this host: " + ", ".join(bad))
        self._check_rlimits(spec)

        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            sd.path.mkdir(mode=0o700)
        except FileExistsError:
            raise AlreadyExists(f"container {container_id!r} already exists") from None
        cgroup = None
        try:
            state = State(
                id=container_id,
                bundle=str(bundle_path),
                created_ns=time.time_ns(),
                cgroup=self._cgroup_name(config, container_id),
                cgroup_root=self.cgroup_root,
                log_file=log_file,
                annotations=dict(config.get("annotations") or {}),
                config=dict(config),
            )
            sd.save_config(state.config, config_text)
            sd.save(state)  # pid 0: "creating"; a crash from here on is garbage-collectable
            cgroup = self._setup_cgroup(state, config)
            if not start_now:
                os.mkfifo(sd.fifo, 0o600)
            ctx = PlanContext(
                bundle=bundle_path,
                overlay=overlay,
                cgroup_procs=cgroup.procs_files(),
                cgroup_v2_dir=_clone_into(cgroup),
                cgroup_hierarchies=self._cgroup_hierarchies(),
                exec_fifo=None if start_now else str(sd.fifo),
                console_socket=console_socket,
                attach_socket=str(sd.path / "attach.sock")
                if log_file and not console_socket else None,
                stdio=stdio,
                preserve_fds=preserve_fds,
                shim_path=native.shim_path(),
                exit_file=str(sd.exit_file),
                log_file=log_file,
                seccomp=_compile_seccomp(config),
            )
            plan = plan_container(config, ctx)
            plan.loopback_up = loopback_up
            spawned = self._spawn(plan, state, config)
            state.pid = spawned.pid
            state.shim_pid = spawned.shim_pid
            state.pid_start = process_start_time(spawned.pid) or 0
            state.started = start_now
            sd.save(state)
        except BaseException as e:
            shim = getattr(e, "shim_pid", 0)
            if shim:
                # The shim records the failed child's exit into the state directory: let it
                # finish before the directory goes, or it would come back.
                _wait_shim(State(id=container_id, bundle="", shim_pid=shim), fresh=True)
            self._teardown(sd, cgroup)
            raise
        if pid_file:
            tmp = f"{pid_file}.tmp"
            with open(tmp, "w") as f:
                f.write(str(state.pid))
            os.replace(tmp, pid_file)
        if start_now:
            self._poststart(state)
        return self._container_state(sd, state)

    def _check_rlimits(self, spec: Any) -> None:
        from llmos.spec import SpecError, check_rlimits

        process = getattr(spec, "process", None)
        if process is None or not process.rlimits:
            return
        try:
            check_rlimits(process.rlimits, clamp=False)
        except SpecError as e:
            raise ConfigError(str(e)) from None

    def _cgroup_hierarchies(self) -> list[Any]:
        if self._hierarchies is None:
            with open("/proc/self/mountinfo") as f:
                self._hierarchies = host_cgroup_hierarchies(f.read())
        return self._hierarchies

    def _setup_cgroup(self, state: State, config: Mapping[str, Any]) -> Any:
        from llmos.cgroups import CgroupError, Resources

        cgroup = self._cgroup(state)
        resources = (config.get("linux") or {}).get("resources") or {}
        try:
            res = Resources.from_oci(resources)
            cgroup.create()
            cgroup.apply(res)
        except CgroupError as e:
            raise ConfigError(f"linux.resources: {e}") from None
        return cgroup

    def _spawn(self, plan: Plan, state: State, config: Mapping[str, Any]) -> native.Spawned:
        pre = hooks_mod.hooks_of(config, "prestart") + hooks_mod.hooks_of(config, "createRuntime")
        in_ctr = hooks_mod.hooks_of(config, "createContainer")
        if not (pre or in_ctr):
            return native.spawn(plan)
        plan.hooks_sync = True

        def on_hooks(pid: int) -> None:
            st = hooks_mod.oci_state(state.id, "creating", pid, state.bundle, state.annotations)
            hooks_mod.run_hooks("prestart", hooks_mod.hooks_of(config, "prestart"), st)
            hooks_mod.run_hooks("createRuntime", hooks_mod.hooks_of(config, "createRuntime"), st)
            hooks_mod.run_hooks(
                "createContainer",
                in_ctr,
                st,
                container_pid=pid,
                namespaces=plan.clone_flags & ~0x00000080,
            )

        return native.spawn(plan, on_hooks)

    def _teardown(self, sd: StateDir, cgroup: Any) -> None:
        """Undo a half-made container: process, cgroup, state directory."""
        try:
            state = sd.load()
        except RuntimeError_:
            state = None
        if state is not None and state.pid:
            start = process_start_time(state.pid)
            if start is not None and start == state.pid_start:
                try:
                    os.kill(state.pid, signal_mod.SIGKILL)
                except ProcessLookupError:
                    pass
        if cgroup is None and state is not None and state.cgroup:
            try:
                cgroup = self._cgroup(state)
            except Exception:
                cgroup = None
        if cgroup is not None:
            try:
                cgroup.kill_all()
            except Exception:
                pass
            _destroy_cgroup(cgroup)
        _wait_shim(state)
        _remove_dir(sd.path)

    def start(self, container_id: str) -> None:
        sd, state, status = self._load(container_id)
        if not status.can_start():
            raise InvalidState(f"container {container_id!r} is {status.value}, not created")
        config = state.config
        start_hooks = hooks_mod.hooks_of(config, "startContainer")
        if start_hooks:
            st = hooks_mod.oci_state(
                state.id, "created", state.pid, state.bundle, state.annotations
            )
            try:
                hooks_mod.run_hooks(
                    "startContainer",
                    start_hooks,
                    st,
                    container_pid=state.pid,
                    namespaces=_ns_flags(config),
                )
            except hooks_mod.HookError:
                self._kill_pid(state, signal_mod.SIGKILL)
                raise
        # Opening the FIFO releases the child; reading its byte proves it went on.
        fd = os.open(sd.fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            deadline = time.monotonic() + 10
            while True:
                r, _, _ = select.select([fd], [], [], 0.1)
                if r:
                    data = os.read(fd, 1)
                    if data:
                        break
                if process_start_time(state.pid) != state.pid_start:
                    raise RuntimeError_(f"container {container_id!r} exited before it started")
                if time.monotonic() > deadline:
                    raise RuntimeError_(f"container {container_id!r} did not start within 10 s")
        finally:
            os.close(fd)
        try:
            sd.fifo.unlink()
        except FileNotFoundError:
            pass
        state.started = True
        sd.save(state)
        self._poststart(state)

    def _poststart(self, state: State) -> None:
        post = hooks_mod.hooks_of(state.config, "poststart")
        if post:
            st = hooks_mod.oci_state(
                state.id, "running", state.pid, state.bundle, state.annotations
            )
            hooks_mod.run_hooks("poststart", post, st)

    def state(self, container_id: str) -> ContainerState:
        sd = self._dir(container_id)
        state = sd.load(config=False)
        return self._container_state(sd, state)

    def _container_state(self, sd: StateDir, state: State) -> ContainerState:
        status = self._status(sd, state)
        exit_status = sd.exit_status() if status is Status.STOPPED else None
        if status is Status.STOPPED and exit_status is None and state.shim_pid:
            # The process is gone but the shim is still draining its pipes: it records the
            # exit status in a moment.
            _wait_shim(state)
            exit_status = sd.exit_status()
        oom = state.oom_killed
        if status is Status.STOPPED and not oom and state.cgroup:
            oom = self._oom_killed(state, exit_status)
            if oom:
                state.oom_killed = True
                sd.save(state)
        return ContainerState(
            id=state.id,
            status=status,
            pid=state.pid if status is not Status.STOPPED else 0,
            bundle=state.bundle,
            annotations=state.annotations,
            created_ns=state.created_ns,
            exit=exit_status,
            oom_killed=oom,
        )

    def _oom_killed(self, state: State, exit_status: ExitStatus | None) -> bool:
        if exit_status is None or exit_status.signal != signal_mod.SIGKILL:
            return False
        try:
            return bool(self._cgroup(state).oom_kill_count() > 0)
        except Exception:
            return False

    def list(self) -> list[ContainerState]:
        out: list[ContainerState] = []
        if not self.root.is_dir():
            return out
        for entry in sorted(self.root.iterdir()):
            sd = StateDir(self.root, entry.name)
            try:
                state = sd.load()
            except RuntimeError_:
                continue
            out.append(self._container_state(sd, state))
        return out

    def kill(self, container_id: str, sig: str | int = "TERM", *, all: bool = False) -> None:
        _, state, status = self._load(container_id)
        if not status.can_kill():
            raise InvalidState(f"container {container_id!r} is {status.value}: nothing to kill")
        signum = parse_signal(sig)
        if all:
            cg = self._cgroup(state)
            if status is Status.PAUSED and signum == signal_mod.SIGKILL:
                cg.kill_all(signum)
                return
            for pid in cg.pids():
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass
            return
        self._kill_pid(state, signum)

    def _kill_pid(self, state: State, signum: int) -> None:
        # A pidfd pins the process: no reused pid can receive the signal.
        try:
            pidfd = os.pidfd_open(state.pid)
        except ProcessLookupError:
            return
        try:
            if process_start_time(state.pid) != state.pid_start:
                return
            signal_mod.pidfd_send_signal(pidfd, signum)
        except ProcessLookupError:
            pass
        finally:
            os.close(pidfd)

    def wait(self, container_id: str, timeout: float | None = None) -> ExitStatus:
        """Block until the container's process has ended and its status is recorded."""
        sd = self._dir(container_id)
        state = sd.load(config=False)
        deadline = None if timeout is None else time.monotonic() + timeout
        fds = []
        for pid in (state.shim_pid,):
            if pid and process_start_time(pid) is not None:
                try:
                    fds.append(os.pidfd_open(pid))
                except ProcessLookupError:
                    pass
        try:
            while True:
                es = sd.exit_status()
                if es is not None:
                    return es
                if derive_status(sd, state) is Status.STOPPED and not any(
                    process_start_time(p) is not None for p in (state.shim_pid,) if p
                ):
                    # No shim to write it: the process is gone without a record.
                    return ExitStatus(code=255, signal=0, finished_ns=time.time_ns())
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if left == 0.0:
                    raise TimeoutError(f"container {container_id!r} still running")
                select.select(fds, [], [], min(left, 0.5) if left is not None else 0.5)
        finally:
            for fd in fds:
                os.close(fd)

    def delete(self, container_id: str, *, force: bool = False) -> None:
        sd, state, status = self._load(container_id)
        if not status.can_delete():
            if not force:
                raise InvalidState(
                    f"container {container_id!r} is {status.value}; stop it first or use --force"
                )
        cg = self._cgroup(state) if state.cgroup else None
        if status is not Status.STOPPED and status is not Status.CREATING:
            self._kill_pid(state, signal_mod.SIGKILL)
        # A stopped container's cgroup is normally empty already (a pid namespace's init
        # exits only after every other process in it is gone): try to remove it first and
        # sweep it with kill_all only if something is left, which saves reading every
        # hierarchy's cgroup.procs twice on each delete.
        sweep_first = status is not Status.STOPPED
        if cg is not None and sweep_first:
            try:
                if cg.exists():
                    cg.kill_all()
            except Exception:
                pass
        _wait_shim(state)
        if state.pid and not sd.exit_file.exists():
            _wait_gone(state.pid, state.pid_start, 5.0)
        if cg is not None:
            if sweep_first:
                _destroy_cgroup(cg)
            else:
                try:
                    cg.destroy(timeout=0.05)
                except Exception:
                    try:
                        cg.kill_all()
                    except Exception:
                        pass
                    _destroy_cgroup(cg)
        _remove_dir(sd.path)
        post = hooks_mod.hooks_of(state.config, "poststop")
        if post:
            st = hooks_mod.oci_state(state.id, "stopped", 0, state.bundle, state.annotations)
            hooks_mod.run_hooks("poststop", post, st)

    def pause(self, container_id: str) -> None:
        _, state, status = self._load(container_id)
        if not status.can_pause():
            raise InvalidState(f"container {container_id!r} is {status.value}, not running")
        self._cgroup(state).freeze()

    def resume(self, container_id: str) -> None:
        _, state, status = self._load(container_id)
        if not status.can_resume():
            raise InvalidState(f"container {container_id!r} is {status.value}, not paused")
        self._cgroup(state).thaw()

    def exec(
        self,
        container_id: str,
        process: Mapping[str, Any] | Sequence[str],
        *,
        stdio: tuple[int, int, int] = (-1, -1, -1),
        detach: bool = False,
    ) -> int:
        """Run a process in the container; returns its exit code (or its pid with detach).

        `process` is an OCI process object (as `runc exec --process`) or just argv, which then
        inherits the container's own process settings (user, env, cwd, capabilities...).
        """
        _, state, status = self._load(container_id)
        if not status.can_exec():
            raise InvalidState(f"container {container_id!r} is {status.value}, not running")
        proc = dict(process) if isinstance(process, Mapping) else {
            "args": list(process), "terminal": False}
        from llmos.plan import CLONE_NEWUSER

        plan = self._exec_plan(state, proc, PlanContext(bundle=Path(state.bundle), stdio=stdio))
        plan.join_pid = state.pid
        plan.clone_flags = _ns_flags(state.config)
        if not plan.clone_flags & CLONE_NEWUSER:
            plan.uid_map = plan.gid_map = None
        waiter, pid = native.exec_process(plan)
        if process_start_time(state.pid) != state.pid_start:
            raise RuntimeError_(f"container {container_id!r} exited during exec")
        if detach:
            return pid
        _, status_code = os.waitpid(waiter, 0)
        return os.waitstatus_to_exitcode(status_code)

    def _exec_plan(self, state: State, process: Mapping[str, Any], ctx: PlanContext) -> Plan:
        """A process in the running container: its settings over the container's own, and
        none of the container-wide setup (mounts, hostname), which it joins, not makes."""
        proc = {**dict(state.config.get("process") or {}), **process}
        config = {**state.config, "process": proc}
        ctx.seccomp = _compile_seccomp(config)
        plan = plan_container(
            {k: v for k, v in config.items() if k not in ("mounts", "hostname", "domainname")}
            | {"linux": {**(config.get("linux") or {}), "namespaces": []}},
            ctx,
        )
        plan.cgroup_procs = list(self._cgroup(state).procs_files())
        return plan

    def exec_monitored(
        self,
        container_id: str,
        process: Mapping[str, Any],
        *,
        exec_dir: Path,
        hold: bool = False,
        stdio: tuple[int, int, int] = (-1, -1, -1),
    ) -> native.Spawned:
        """Run a process in the container under an llmos-shim of its own (`docker exec -t`).

        Unlike `exec`, nobody has to stay to reap it: the shim holds its terminal (served at
        exec_dir/attach.sock, as a container's is) and records its exit in exec_dir/exit.
        It is made like a container's first process, joining the container's namespaces by
        path instead of making new ones. With `hold` it waits before execve until
        `exec_release`, so a client can attach first and miss none of a short command's
        output.
        """
        _, state, status = self._load(container_id)
        if not status.can_exec():
            raise InvalidState(f"container {container_id!r} is {status.value}, not running")
        fifo_fd = -1
        if hold:
            os.mkfifo(exec_dir / "start", 0o600)
            fifo_fd = os.open(exec_dir / "start", os.O_PATH | os.O_CLOEXEC)
        try:
            ctx = PlanContext(
                bundle=Path(state.bundle),
                stdio=stdio,
                attach_socket=str(exec_dir / "attach.sock") if process.get("terminal") else None,
                shim_path=native.shim_path(),
                exit_file=str(exec_dir / "exit"),
                # The child opens the FIFO once in the container's mount namespace, where no
                # host path is visible: through the fd it inherited (as runc does).
                exec_fifo=f"/proc/self/fd/{fifo_fd}" if hold else None,
            )
            plan = self._exec_plan(state, process, ctx)
            plan.join = _ns_paths(state.config, state.pid)
            return native.spawn(plan)
        finally:
            if fifo_fd >= 0:
                os.close(fifo_fd)

    def exec_release(self, exec_dir: Path, pid: int, pid_start: int) -> None:
        """Let a process held by `exec_monitored(hold=True)` go on to execve."""
        fifo = exec_dir / "start"
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise InvalidState("the exec was already started") from None
        try:
            deadline = time.monotonic() + 10
            while True:
                r, _, _ = select.select([fd], [], [], 0.1)
                if r and os.read(fd, 1):
                    break
                if process_start_time(pid) != pid_start:
                    raise RuntimeError_("the exec'd process ended before it started")
                if time.monotonic() > deadline:
                    raise RuntimeError_("the exec'd process did not start within 10 s")
        finally:
            os.close(fd)
            fifo.unlink(missing_ok=True)

    def run(
        self,
        container_id: str,
        bundle: str | os.PathLike[str],
        *,
        detach: bool = False,
        **kwargs: Any,
    ) -> int:
        """create + start; without detach, wait and delete, returning the exit code."""
        self.create(container_id, bundle, start_now=True, **kwargs)
        if detach:
            return 0
        try:
            es = self.wait(container_id)
        except KeyboardInterrupt:
            self.kill(container_id, "KILL")
            es = self.wait(container_id)
        self.delete(container_id, force=True)
        return es.code


def _clone_into(cgroup: Any) -> str | None:
    """The cgroup2 directory for clone3(CLONE_INTO_CGROUP), on pure v2 hosts only.

    On hybrid hosts the unified hierarchy holds no controllers and the v1 hierarchies need
    cgroup.procs writes anyway; measured here, cloning into the unified cgroup added about
    6 ms per container (against 0.4 ms for writing its cgroup.procs like the others).
    """
    from llmos.cgroups import V2Manager

    return cgroup.unified_dir() if isinstance(cgroup, V2Manager) else None


def _ns_flags(config: Mapping[str, Any]) -> int:
    from llmos.plan import NAMESPACE_FLAGS

    flags = 0
    for ns in (config.get("linux") or {}).get("namespaces") or []:
        flags |= NAMESPACE_FLAGS.get(ns.get("type"), 0)
    return flags & ~0x00000080  # a time namespace is joined by children only


def _ns_paths(config: Mapping[str, Any], pid: int) -> list[tuple[str, int]]:
    """The namespaces of the container's process `pid`, as paths to join (setns).

    The mount namespace comes last: once in it, /proc is the container's and /proc/PID
    names another process, or none.
    """
    from llmos.plan import CLONE_NEWNS, CLONE_NEWTIME, NAMESPACE_FLAGS

    proc_names = {"mount": "mnt", "network": "net"}
    out = []
    for ns in (config.get("linux") or {}).get("namespaces") or []:
        flag = NAMESPACE_FLAGS.get(ns.get("type"), 0)
        if flag and flag != CLONE_NEWTIME:  # joined by children only, like _ns_flags
            out.append((f"/proc/{pid}/ns/{proc_names.get(ns['type'], ns['type'])}", flag))
    return sorted(out, key=lambda item: item[1] == CLONE_NEWNS)


def _destroy_cgroup(cg: Any) -> None:
    try:
        cg.destroy()
    except Exception as e:
        raise RuntimeError_(f"cannot remove cgroup {getattr(cg, 'name', '?')}: {e}") from None


def _remove_dir(path: Path, timeout: float = 2.0) -> None:
    """rmtree that wins against a shim still writing its exit record into the directory
    (after a crash nobody knows the shim's pid to wait for it)."""
    deadline = time.monotonic() + timeout
    while True:
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists() or time.monotonic() > deadline:
            return
        time.sleep(0.01)


def _wait_gone(pid: int, start: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while process_start_time(pid) == start and time.monotonic() < deadline:
        time.sleep(0.005)


def _wait_shim(state: State | None, *, fresh: bool = False) -> None:
    """The shim writes the exit file and exits right after the container; let it finish."""
    if state is None or not state.shim_pid:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        # A zombie has finished: its parent (init, or whatever subreaper adopted it) reaps it.
        if process_state_letter(state.shim_pid) in (None, "Z", "X"):
            return
        if not fresh:
            # A pid recorded long ago may belong to another process by now.
            try:
                with open(f"/proc/{state.shim_pid}/comm") as f:
                    if f.read().strip() != "llmos-shim":
                        return
            except OSError:
                return
        time.sleep(0.001)
