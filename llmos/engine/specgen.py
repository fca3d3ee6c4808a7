"""Image config + run options -> the OCI config a container runs with (pure code).

Docker's rules for combining them: --entrypoint replaces the image's ENTRYPOINT and drops its
CMD; a command replaces CMD; env from -e overrides the image's; --workdir, --user and
--hostname override; the image's WORKDIR and USER apply otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llmos.engine.options import Mount, RunOptions
from llmos.errors import ConfigError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def command_line(image_config: Mapping[str, Any], opts: RunOptions) -> list[str]:
    entrypoint = opts.entrypoint if opts.entrypoint is not None else list(
        image_config.get("Entrypoint") or []
    )
    if opts.command:
        cmd = list(opts.command)
    elif opts.entrypoint is not None:
        cmd = []  # Docker: --entrypoint resets the image's CMD
    else:
        cmd = list(image_config.get("Cmd") or [])
    argv = [*entrypoint, *cmd]
    if not argv:
        raise ConfigError(f"{opts.image}: no command given and the image has no CMD or ENTRYPOINT")
    return argv


def merge_env(image_env: Sequence[str], user_env: Sequence[str]) -> list[str]:
    merged: dict[str, str] = {}
    for item in [*image_env, *user_env]:
        key, sep, value = item.partition("=")
        if not sep:
            continue
        merged[key] = value
    if "PATH" not in merged:
        merged["PATH"] = DEFAULT_PATH
    return [f"{k}={v}" for k, v in merged.items()]


UserResolver = Callable[[str], tuple[int, int, list[int]]]


def parse_user(text: str, resolve: UserResolver | None) -> tuple[int, int, list[int]]:
    """`1000`, `1000:1000`, `nobody`, `nobody:nogroup` -> (uid, gid, extra gids)."""
    user, _, group = text.partition(":")
    if user.isdigit() and (not group or group.isdigit()):
        return int(user), int(group) if group else 0, []
    if resolve is None:
        raise ConfigError(f"--user: cannot resolve {text!r} without the image's /etc/passwd")
    return resolve(text)


def generate(
    image_config: Mapping[str, Any],
    opts: RunOptions,
    *,
    container_id: str,
    rootfs: str,
    volume_paths: Mapping[str, str],
    resolve_user: UserResolver | None = None,
    hosts_files: Mapping[str, str] | None = None,
    shared_netns: str | None = None,
) -> dict[str, Any]:
    """The OCI config for a container; `volume_paths` maps named volumes to host dirs."""
    from llmos.spec import default_spec

    argv = command_line(image_config, opts)
    cfg = default_spec(argv).to_dict()
    process = cfg["process"]
    process["terminal"] = bool(opts.tty)
    if opts.tty and opts.tty_size:
        process["consoleSize"] = {"height": opts.tty_size[0], "width": opts.tty_size[1]}
    user_env = [*opts.env, *(["TERM=xterm"] if opts.tty else [])]
    env = merge_env(list(image_config.get("Env") or []), user_env)
    process["env"] = [*env, f"HOSTNAME={opts.hostname or container_id[:12]}"]
    process["cwd"] = opts.workdir or image_config.get("WorkingDir") or "/"
    user_text = opts.user if opts.user is not None else (image_config.get("User") or "")
    if user_text:
        uid, gid, extra = parse_user(user_text, resolve_user)
        process["user"] = {"uid": uid, "gid": gid}
        if extra:
            process["user"]["additionalGids"] = extra
    cfg["hostname"] = opts.hostname or container_id[:12]
    cfg["root"] = {"path": rootfs, "readonly": bool(opts.read_only)}
    linux = cfg["linux"]
    linux["cgroupsPath"] = f"llmos/{container_id}"
    resources: dict[str, Any] = {}
    if opts.memory:
        resources["memory"] = {"limit": opts.memory, "swap": opts.memory}
    if opts.nano_cpus:
        period = 100000
        resources["cpu"] = {"quota": opts.nano_cpus * period // 10**9, "period": period}
    if opts.pids_limit is not None:
        resources["pids"] = {"limit": opts.pids_limit if opts.pids_limit > 0 else -1}
    if resources:
        linux["resources"] = {**linux.get("resources", {}), **resources}
    if opts.network == "host":
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    elif opts.network.startswith("container:") and shared_netns:
        linux["namespaces"] = [
            {"type": "network", "path": shared_netns} if ns["type"] == "network" else ns
            for ns in linux["namespaces"]]
    cfg["mounts"].extend(_mounts(opts.mounts, volume_paths))
    for dest, src in (hosts_files or {}).items():
        cfg["mounts"].append(
            {"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rw"]}
        )
    cfg["annotations"] = {"io.llmos.image": opts.image, **opts.labels}
    return cfg


def _mounts(mounts: Sequence[Mount], volume_paths: Mapping[str, str]) -> list[dict[str, Any]]:
    out = []
    for m in mounts:
        if m.type == "tmpfs":
            opts = ["nosuid", "nodev", *([o for o in m.options.split(",") if o])]
            out.append({"destination": m.target, "type": "tmpfs", "source": "tmpfs",
                        "options": opts})
            continue
        source = m.source if m.type == "bind" else volume_paths[m.source]
        options = ["rbind", "ro" if m.read_only else "rw"]
        out.append({"destination": m.target, "type": "bind", "source": source,
                    "options": options})
    return out


def resolve_user_in(passwd: str, group: str) -> UserResolver:
    """A resolver over the text of the image's /etc/passwd and /etc/group."""

    def resolve(text: str) -> tuple[int, int, list[int]]:
        user, _, grp = text.partition(":")
        users = {f[0]: f for f in (ln.split(":") for ln in passwd.splitlines()) if len(f) >= 4}
        groups = {f[0]: f for f in (ln.split(":") for ln in group.splitlines()) if len(f) >= 3}
        if user.isdigit():
            uid = int(user)
            gid = next((int(f[3]) for f in users.values() if f[2] == user), 0)
            name = next((f[0] for f in users.values() if f[2] == user), None)
        elif user in users:
            uid, gid, name = int(users[user][2]), int(users[user][3]), user
        else:
            raise ConfigError(f"--user: no user {user!r} in the image's /etc/passwd")
        if grp:
            if grp.isdigit():
                gid = int(grp)
            elif grp in groups:
                gid = int(groups[grp][2])
            else:
                raise ConfigError(f"--user: no group {grp!r} in the image's /etc/group")
        extra = sorted(
            {int(f[2]) for f in groups.values() if name and name in f[3].split(",")} - {gid}
        ) if len(groups) else []
        return uid, gid, extra

    return resolve
