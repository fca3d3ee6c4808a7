"""`llmos build`: a Dockerfile and a context directory in, an image in the store out.

The shape is Docker's classic builder: stages in order (up to `--target`), each instruction a
step that either comes from the cache or runs, printing `Step N/M : INSTRUCTION` and
`---> CACHED` / `---> <short id>`. A step turns one build state (an image config document,
which lists its layers) into the next:

- RUN runs in a container over an overlay of the current layers (`run.py`); its upper
  directory becomes the new layer;
- COPY, ADD and a WORKDIR that must create its directory write a layer tar directly
  (`copy.py`), no container;
- everything else changes only the config (`config.py` has the rules).

Each new layer is stored with `ImageStore.add_layer` and committed as the snapshot its chain
id names, so the next RUN stacks on it and `commit_image` at the end has nothing to unpack.
The whole build holds the store's shared GC lease: a concurrent prune cannot take its layers.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos.image import (
    AlreadyExists,
    ImageError,
    ImageStore,
    LayerBlob,
    NotFound,
    Platform,
    apply_layer,
    chain_ids,
)
from llmos.image import Image as StoredImage
from llmos.image.progress import ProgressCallback, emit, reading

from . import config as rules
from .cache import BuildCache, state_id, step_key
from .copy import SourceTree, parse_chown, plan_copy, plan_mkdir, write_copy_tar
from .dockerfile import Dockerfile, Instruction, Stage, parse
from .dockerignore import Matcher, read_dockerignore
from .errors import BuildError, ContextError, DockerfileError, StepFailed
from .layer import remove_if_empty, write_upper_tar
from .network import OWNER_PREFIX, BuildNetwork, open_build_network
from .rootfs import LowerView, resolve_user
from .run import HOST_FILES, ProcessSpec, container_config, overlay_from_mounts, run_container
from .shell import SubstitutionError, expand, expand_words

__all__ = ["DEFAULT_RUNTIME_ROOT", "BuildProgress", "build"]

DEFAULT_RUNTIME_ROOT = "/run/llmos/build"
MAX_DOWNLOAD = 4 << 30  # ADD <url>: a bound, so a endless response cannot fill the disk
"""Where build containers' runtime state lives, apart from the engine's containers."""

BuildProgress = Callable[[str], None]
"""Receives each progress line (`Step 2/5 : RUN make`, ` ---> CACHED`, RUN output)."""

PROXY_ARGS = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY",
                        "http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy"})
"""Build args Docker accepts without an ARG line; they reach RUN but not the cache key."""


@dataclass
class _State:
    """A build state: the image config document (with rootfs.diff_ids) and its layers."""

    doc: dict[str, Any]
    layers: list[LayerBlob]

    @property
    def id(self) -> str:
        return state_id(self.doc)

    @property
    def run_config(self) -> dict[str, Any]:
        cfg = self.doc.setdefault("config", {})
        assert isinstance(cfg, dict)
        return cfg

    @property
    def chains(self) -> list[str]:
        return chain_ids([lb.diff_id for lb in self.layers])


@dataclass
class _StageRun:
    stage: Stage
    state: _State
    args: dict[str, str | None] = field(default_factory=dict)
    cmd_set: bool = False


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


class Builder:
    """One build; see `build` for the parameters."""

    def __init__(self, store: ImageStore, context_dir: str | os.PathLike[str], *,
                 dockerfile: str = "Dockerfile", build_args: Mapping[str, str] | None = None,
                 target: str | None = None,
                 runtime_root: str | os.PathLike[str] = DEFAULT_RUNTIME_ROOT,
                 progress: BuildProgress | None = None, no_cache: bool = False,
                 network: str = "default", build_network: BuildNetwork | None = None,
                 layer_progress: ProgressCallback | None = None) -> None:
        self.store = store
        self.context = Path(context_dir).resolve()
        if not self.context.is_dir():
            raise ContextError(f"build context {self.context}: not a directory")
        path = Path(dockerfile)
        self.dockerfile_path = path if path.is_absolute() else self.context / path
        self.build_args = dict(build_args or {})
        self.target = target
        self.runtime_root = Path(runtime_root)
        self.progress = progress or (lambda _line: None)
        self.layer_progress = layer_progress
        self.no_cache = no_cache
        self.network = network
        self.build_network = build_network
        self._own_network: BuildNetwork | None = None  # opened here, closed when run ends
        self.cache = BuildCache(store.root)
        self.used_args: set[str] = set()
        self.stages: list[_StageRun] = []
        self.tmp = Path()
        self.step = 0
        self.total = 0

    # -- driver ---------------------------------------------------------------------------
    def run(self, tag: str | None) -> StoredImage:
        try:
            text = self.dockerfile_path.read_text()
        except OSError as e:
            raise ContextError(f"{self.dockerfile_path}: cannot read the Dockerfile: "
                               f"{e.strerror}") from None
        df = parse(text, self.dockerfile_path.name)
        self.df = df
        self.matcher = Matcher(read_dockerignore(self.context))
        self.context_tree = SourceTree.context(self.context, self.matcher)
        stages = list(df.stages)
        if self.target is not None:
            last = df.stage(self.target)
            stages = stages[: last.index + 1]
        self.total = sum(1 + len(s.instructions) for s in stages)
        self.global_args = self._global_args(df)
        (self.store.root / "build-tmp").mkdir(exist_ok=True, mode=0o700)
        self.tmp = Path(tempfile.mkdtemp(prefix="build-", dir=self.store.root / "build-tmp"))
        try:
            with self.store.lease():
                for stage in stages:
                    self._build_stage(stage)
                final = self.stages[-1].state
                unused = sorted(set(self.build_args) - self.used_args - PROXY_ARGS)
                if unused:
                    self.progress(f"[Warning] One or more build-args {unused} were not "
                                  "consumed")
                image = self.store.commit_image(tag, copy.deepcopy(final.doc), final.layers)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if self._own_network is not None:
                self._own_network.close()
                self._own_network = None
        self.progress(f"Successfully built {_short(image.id)}")
        if tag:
            self.progress(f"Successfully tagged {tag}")
        return image

    def _global_args(self, df: Dockerfile) -> dict[str, str | None]:
        values: dict[str, str | None] = {}
        for ins in df.global_args:
            for name, default in ins.pairs:
                if name in self.build_args:
                    values[name] = self.build_args[name]
                    self.used_args.add(name)
                elif default is not None:
                    values[name] = self._expand(ins, default, _set(values))
                else:
                    values[name] = None
        return values

    def _announce(self, ins: Instruction) -> None:
        self.step += 1
        self.progress(f"Step {self.step}/{self.total} : {ins.text}")

    def _expand(self, ins: Instruction, word: str, env: Mapping[str, str]) -> str:
        try:
            return expand(word, env, escape=self.df.escape)
        except SubstitutionError as e:
            raise ins.error(str(e)) from None

    # -- FROM -----------------------------------------------------------------------------
    def _build_stage(self, stage: Stage) -> None:
        ins = stage.from_instruction
        self._announce(ins)
        base = self._expand(ins, stage.base, _set(self.global_args))
        state = self._base_state(ins, base, stage.platform)
        run = _StageRun(stage, state)
        self.stages.append(run)
        onbuild = run.state.run_config.get("OnBuild")
        if onbuild:
            self.progress(f"[Warning] {base}: ONBUILD triggers of the base image are not run "
                          f"by llmos build: {onbuild}")
        self.progress(f" ---> {_short(state.id)}")
        for ins in stage.instructions:
            self._announce(ins)
            self._dispatch(run, ins)

    def _base_state(self, ins: Instruction, base: str, platform: str | None) -> _State:
        for earlier in self.stages:
            if earlier.stage.name is not None and earlier.stage.name == base.lower():
                return _State(copy.deepcopy(earlier.state.doc), list(earlier.state.layers))
        if base == "scratch":
            doc: dict[str, Any] = {"architecture": self.store.platform.architecture,
                                   "os": "linux", "config": {},
                                   "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
            return _State(doc, [])
        image = self._image(ins, base, platform)
        layers = [LayerBlob(d, diff) for d, diff in zip(image.layers, image.diff_ids,
                                                        strict=True)]
        doc = image.config.doc
        doc.setdefault("config", {})
        return _State(doc, layers)

    def _image(self, ins: Instruction, ref: str, platform: str | None = None) -> StoredImage:
        try:
            plat = Platform.parse(platform) if platform else None
            return self.store.get(ref, platform=plat)
        except NotFound:
            raise ins.error(f"image {ref!r} is not in the store: make it with "
                            f"`llmos bootstrap` or `llmos build`, or `llmos pull` it") from None
        except ImageError as e:
            raise ins.error(f"image {ref!r}: {e}") from None

    # -- steps ----------------------------------------------------------------------------
    def _env(self, run: _StageRun) -> dict[str, str]:
        """Variables for substitution: ARGs in scope, overridden by ENV (Docker's rule)."""
        env = _set(run.args)
        env.update(rules.env_list_to_dict(run.state.run_config.get("Env") or []))
        return env

    def _dispatch(self, run: _StageRun, ins: Instruction) -> None:
        kw = ins.keyword
        if kw == "ARG":
            self._arg(run, ins)
        elif kw == "RUN":
            self._run(run, ins)
        elif kw in ("COPY", "ADD"):
            self._copy(run, ins)
        elif kw == "WORKDIR":
            self._workdir(run, ins)
        else:
            self._metadata(run, ins)

    def _arg(self, run: _StageRun, ins: Instruction) -> None:
        env = self._env(run)
        for name, default in ins.pairs:
            if name in self.build_args:
                run.args[name] = self.build_args[name]
                self.used_args.add(name)
            elif default is not None:
                run.args[name] = self._expand(ins, default, env)
            elif self.global_args.get(name) is not None:
                run.args[name] = self.global_args[name]
            else:
                run.args[name] = None
        shown = " ".join(f"{k}={v}" for k, v in run.args.items() if v is not None)
        self._cached_step(run, ins, f"ARG {shown}", "", lambda: (run.state.doc, [], None))

    def _metadata(self, run: _StageRun, ins: Instruction) -> None:
        env = self._env(run)
        kw = ins.keyword
        doc = copy.deepcopy(run.state.doc)
        cfg = doc.setdefault("config", {})
        shown = ins.text
        try:
            if kw in ("ENV", "LABEL"):
                pairs = [(self._expand(ins, k, env), self._expand(ins, v or "", env))
                         for k, v in ins.pairs]
                if kw == "ENV":
                    rules.set_env(cfg, pairs)
                else:
                    cfg["Labels"] = {**(cfg.get("Labels") or {}), **dict(pairs)}
                shown = kw + " " + " ".join(f"{k}={json.dumps(v)}" if " " in v else f"{k}={v}"
                                            for k, v in pairs)
            elif kw in ("CMD", "ENTRYPOINT"):
                argv = list(ins.args) if ins.json else (
                    rules.shell_form(cfg, ins.args[0]) if ins.args else [])
                if kw == "CMD":
                    rules.set_cmd(cfg, argv)
                    run.cmd_set = True
                else:
                    rules.set_entrypoint(cfg, argv, cmd_set_in_stage=run.cmd_set)
                shown = f"{kw} {json.dumps(argv)}"
            elif kw == "USER":
                cfg["User"] = self._expand(ins, ins.args[0], env)
                shown = f"USER {cfg['User']}"
            elif kw == "EXPOSE":
                ports = expand_words(ins.args[0], env, escape=self.df.escape)
                rules.expose(cfg, ports)
                shown = "EXPOSE " + " ".join(sorted(cfg["ExposedPorts"]))
            elif kw == "VOLUME":
                paths = [self._expand(ins, a, env) for a in ins.args]
                if any(not p for p in paths):
                    raise ins.error("VOLUME specified can not be an empty string")
                cfg["Volumes"] = {**(cfg.get("Volumes") or {}), **{p: {} for p in paths}}
                shown = f"VOLUME {json.dumps(paths)}"
            elif kw == "STOPSIGNAL":
                cfg["StopSignal"] = rules.stop_signal(self._expand(ins, ins.args[0], env))
                shown = f"STOPSIGNAL {cfg['StopSignal']}"
            elif kw == "SHELL":
                cfg["Shell"] = list(ins.args)
            elif kw == "HEALTHCHECK":
                rules.set_healthcheck(cfg, list(ins.args), ins.flags)
            elif kw == "MAINTAINER":
                doc["author"] = ins.args[0]
            else:  # pragma: no cover (the parser knows no other keyword)
                raise ins.error("unsupported instruction")
        except ValueError as e:
            raise ins.error(str(e)) from None
        self._cached_step(run, ins, shown, "", lambda: (doc, [], shown))

    # -- the cache ------------------------------------------------------------------------
    def _cached_step(self, run: _StageRun, ins: Instruction, key_text: str, inputs: str,
                     compute: Callable[[], tuple[dict[str, Any], list[LayerBlob],
                                                 str | None]]) -> None:
        """Take the step from the cache, or compute it: `compute` returns the new config
        document (without history/rootfs updates), the layers it added, and the history
        text (None: the step leaves the config as it is, like ARG).
        """
        key = step_key(run.state.id, key_text, inputs)
        if not self.no_cache:
            hit = self.cache.get(key)
            if hit is not None and all(self.store.content.exists(lb.descriptor.digest)
                                       for lb in hit.layers):
                run.state = _State(hit.config, run.state.layers + list(hit.layers))
                self.progress(" ---> CACHED")
                self.progress(f" ---> {_short(run.state.id)}")
                return
        doc, layers, history = compute()
        if history is not None:
            doc = copy.deepcopy(doc)
            now = _now()
            entry: dict[str, Any] = {"created": now, "created_by": history,
                                     "comment": "llmos build"}
            if not layers:
                entry["empty_layer"] = True
            doc.setdefault("history", []).append(entry)
            doc["created"] = now
            all_layers = run.state.layers + layers
            doc["rootfs"] = {"type": "layers", "diff_ids": [lb.diff_id for lb in all_layers]}
        self.cache.put(key, doc, layers)
        run.state = _State(doc, run.state.layers + layers)
        self.progress(f" ---> {_short(run.state.id)}")

    # -- snapshots ------------------------------------------------------------------------
    def _ensure_snapshots(self, state: _State) -> None:
        """Every layer of `state` as a committed snapshot (a cache hit may name layers whose
        snapshots a prune removed; their blobs are still there).
        """
        sn = self.store.snapshotter
        parent: str | None = None
        for lb, chain in zip(state.layers, state.chains, strict=True):
            if not sn.exists(chain):
                with self.store.content.open(lb.descriptor.digest) as f:
                    self._extract(f, chain, parent)
            parent = chain

    def _extract(self, f: Any, chain: str, parent: str | None) -> None:
        sn = self.store.snapshotter
        key = f"extract-build-{uuid.uuid4().hex}"
        sn.prepare(key, parent)
        try:
            apply_layer(f, sn.upper_dir(key), lowers=sn.lower_dirs(key))
            try:
                sn.commit(chain, key)
            except AlreadyExists:
                sn.remove(key)
        except BaseException:
            if sn.exists(key):
                sn.remove(key)
            raise

    def _view(self, state: _State) -> LowerView:
        self._ensure_snapshots(state)
        sn = self.store.snapshotter
        return LowerView([sn.layer_dir(c) for c in reversed(state.chains)])

    def _add_layer(self, state: _State, tar_path: Path, *, upper_key: str | None = None
                   ) -> LayerBlob:
        """Store a layer tar and make it the committed snapshot on top of `state`: the RUN
        container's upper directory itself (`upper_key`), or an extraction of the tar.
        """
        item = f"Step {self.step}/{self.total}"
        with open(tar_path, "rb") as f:
            blob = self.store.add_layer(
                reading(f, self.layer_progress, "export", item, os.fstat(f.fileno()).st_size),
                compression="gzip")
        emit(self.layer_progress, "done", item, blob.descriptor.size, blob.descriptor.size,
             _short(blob.descriptor.digest))
        chain = chain_ids([*(lb.diff_id for lb in state.layers), blob.diff_id])[-1]
        sn = self.store.snapshotter
        parent = state.chains[-1] if state.layers else None
        if upper_key is not None:
            try:
                sn.commit(chain, upper_key)
            except AlreadyExists:
                sn.remove(upper_key)
        elif not sn.exists(chain):
            with open(tar_path, "rb") as f:
                self._extract(f, chain, parent)
        return blob

    # -- RUN ------------------------------------------------------------------------------
    def _run(self, run: _StageRun, ins: Instruction) -> None:
        for bad in ("mount", "security"):
            if bad in ins.flags:
                raise ins.error(f"--{bad} is not supported by llmos build")
        network = ins.flag("network", self.network) or self.network
        if network not in ("host", "none", "default"):
            raise ins.error(f"--network={network}: want default, host or none")
        cfg = run.state.run_config
        if ins.json:
            argv = list(ins.args)
        else:
            command = ins.args[0]
            if ins.heredocs:
                first = ins.heredocs[0]
                if command.strip() in (f"<<{first.name}", f"<<-{first.name}",
                                       f"<<'{first.name}'", f'<<"{first.name}"'):
                    command = first.content
                else:
                    command += "\n" + "".join(h.content + h.name + "\n" for h in ins.heredocs)
            argv = rules.shell_form(cfg, command)
        args_env = {k: v for k, v in run.args.items() if v is not None}
        proxies = {k: v for k, v in self.build_args.items() if k in PROXY_ARGS}
        shown_args = " ".join(f"{k}={v}" for k, v in sorted(args_env.items()))
        prefix = f"|{len(args_env)} {shown_args} " if args_env else ""
        history = f"RUN {prefix}{' '.join(argv) if not ins.json else json.dumps(argv)}"
        key_text = f"RUN {json.dumps(argv)} network={network} args={json.dumps(args_env)}"

        def compute() -> tuple[dict[str, Any], list[LayerBlob], str | None]:
            env = list(cfg.get("Env") or [])
            present = rules.env_list_to_dict(env)
            env += [f"{k}={v}" for k, v in {**args_env, **proxies}.items() if k not in present]
            blob = self._run_container(run, ins, argv, env, network)
            return run.state.doc, [blob], history

        self._cached_step(run, ins, key_text, "", compute)

    def _run_container(self, run: _StageRun, ins: Instruction, argv: list[str],
                       env: list[str], network: str) -> LayerBlob:
        state = run.state
        view = self._view(state)
        cfg = state.run_config
        try:
            user = resolve_user(str(cfg.get("User") or ""),
                                (view.read_bytes("/etc/passwd") or b"").decode(errors="replace"),
                                (view.read_bytes("/etc/group") or b"").decode(errors="replace"))
        except LookupError as e:
            raise ins.error(str(e)) from None
        bundle = self.tmp / f"step{self.step}"
        (bundle / "rootfs").mkdir(parents=True)
        cid = f"{OWNER_PREFIX}{uuid.uuid4().hex[:12]}"
        if network == "default":
            # Docker's way: the engine's files name the step's resolvers, over the image's.
            binds = [(str(bundle / os.path.basename(p)), p) for p in HOST_FILES]
        else:
            binds = [(p, p) for p in HOST_FILES if os.path.exists(p) and not view.exists(p)]
        # mount points the executor may create in the upper dir; removed again afterwards
        made = [p for p in ("/proc", "/sys", "/dev", "/etc", *HOST_FILES)
                if view.lstat(p) is None]
        sn = self.store.snapshotter
        key = f"extract-run-{uuid.uuid4().hex}"
        mounts = sn.prepare(key, state.chains[-1] if state.layers else None)
        committed = False
        try:
            with self._step_network(network, bundle, cid) as netns:
                spec = ProcessSpec(argv=argv, env=env, cwd=str(cfg.get("WorkingDir") or "/"),
                                   user=user, network=network, binds=binds, netns=netns)
                empty = self.tmp / "empty"
                empty.mkdir(exist_ok=True)
                overlay = overlay_from_mounts(mounts, empty)
                config = container_config(spec, bundle / "rootfs")
                self.progress(f" ---> Running in {cid[-12:]}")
                code = run_container(self.runtime_root, cid, bundle, overlay, config,
                                     output=self.progress)
            if code != 0:
                raise StepFailed(f"{ins.filename}:{ins.line}: RUN: the command "
                                 f"{json.dumps(argv)} returned a non-zero code: {code}", code)
            upper = sn.upper_dir(key)
            for p in sorted(made, key=lambda s: -s.count("/")):
                remove_if_empty(upper, p)
            if binds and view.lstat("/etc") is not None:
                remove_if_empty(upper, "/etc", view.lstat("/etc"))  # copied up for the binds
            tar_path = bundle / "layer.tar"
            with open(tar_path, "wb") as f:
                write_upper_tar(upper, f)
            blob = self._add_layer(state, tar_path, upper_key=key)
            committed = True
            tar_path.unlink()
            return blob
        finally:
            if not committed and sn.exists(key):
                sn.remove(key)

    @contextlib.contextmanager
    def _step_network(self, network: str, bundle: Path, owner: str) -> Iterator[str | None]:
        """For network="default": a namespace held at BUNDLE/netns, wired to the default
        bridge, its hosts and resolv.conf written beside it; all undone when the step ends."""
        if network != "default":
            yield None
            return
        from llmos.runtime import native

        if self.build_network is None and self._own_network is None:
            self._own_network = open_build_network()
        net = self.build_network or self._own_network
        assert net is not None
        path = str(bundle / "netns")
        native.netns_new(path)
        try:
            files = net.attach(path, owner, "llmos-build")
            try:
                for name in ("hosts", "resolv.conf"):
                    (bundle / name).write_text(files[name])
                yield path
            finally:
                net.detach(owner)
        finally:
            native.netns_remove(path)

    # -- COPY / ADD / WORKDIR ---------------------------------------------------------------
    def _copy(self, run: _StageRun, ins: Instruction) -> None:
        for bad in ("parents", "exclude", "keep-git-dir"):
            if bad in ins.flags:
                raise ins.error(f"--{bad} is not supported by llmos build")
        env = self._env(run)
        words = [self._expand(ins, a, env) for a in ins.args]
        *sources, dest = words
        heredocs = {f"<<{h.name}": h for h in ins.heredocs}
        heredocs.update({f"<<-{h.name}": h for h in ins.heredocs})
        inline = [(h.name, h.content.encode()) for s in sources if (h := heredocs.get(s))]
        sources = [s for s in sources if s not in heredocs]
        urls = [s for s in sources if "://" in s or s.startswith("git@")]
        for s in urls:
            if ins.keyword == "COPY":
                raise ins.error(f"{s}: COPY takes files of the build context; ADD downloads "
                                "URLs")
            if not s.startswith(("http://", "https://")):
                raise ins.error(f"{s}: only http:// and https:// URLs can be added (git "
                                "sources are not supported by llmos build)")
        checksum = ins.flag("checksum")
        if checksum is not None and (ins.keyword != "ADD" or len(urls) != 1 or
                                     len(sources) != 1):
            raise ins.error("--checksum: ADD of exactly one URL only")
        downloads = [self._download(ins, u, self._expand(ins, checksum, env)
                                    if checksum else None) for u in urls]
        sources = [s for s in sources if s not in urls]
        src_from = ins.flag("from")
        tree = self.context_tree
        from_id = ""
        if src_from is not None:
            src_from = self._expand(ins, src_from, env)
            tree, from_id = self._from_tree(ins, run, src_from)
        view = self._view(run.state)
        try:
            owner = parse_chown(self._expand(ins, ins.flags["chown"] or "", env), view) \
                if ins.flags.get("chown") else None
            chmod_flag = ins.flag("chmod")
            chmod = int(chmod_flag, 8) if chmod_flag else None
            plan = plan_copy([(tree, s) for s in sources], dest,
                             workdir=str(run.state.run_config.get("WorkingDir") or "/"),
                             image=view, owner=owner, chmod=chmod,
                             extract_archives=ins.keyword == "ADD", inline=inline,
                             downloads=downloads)
        except ContextError as e:
            raise ins.error(str(e)) from None
        except ValueError:
            raise ins.error(f"--chmod={ins.flag('chmod')}: not an octal mode") from None
        flags = " ".join(f"--{k}={v}" for k, v in sorted(ins.flags.items()) if k != "from")
        history = f"{ins.keyword} {flags + ' ' if flags else ''}{' '.join(words)}"
        key_text = f"{history} from={from_id}"

        def compute() -> tuple[dict[str, Any], list[LayerBlob], str | None]:
            tar_path = self.tmp / f"copy{self.step}.tar"
            with open(tar_path, "wb") as f:
                write_copy_tar(plan, f)
            blob = self._add_layer(run.state, tar_path)
            tar_path.unlink()
            return run.state.doc, [blob], history

        self._cached_step(run, ins, key_text, plan.digest(), compute)

    def _download(self, ins: Instruction, url: str, checksum: str | None
                  ) -> tuple[str, Path, float]:
        """ADD <url>: fetched by the builder (as Docker's daemon fetches it, from the host),
        into the build's directory; the layer's cache key covers the bytes, not the URL
        alone, so a changed file at the same URL is a new layer."""
        import email.utils
        import hashlib
        import urllib.error
        import urllib.parse
        import urllib.request

        name = posixpath.basename(urllib.parse.urlsplit(url).path)
        path = self.tmp / f"download{self.step}-{uuid.uuid4().hex[:8]}"
        h = hashlib.sha256()
        size = 0
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(path, "wb") as out:
                while chunk := resp.read(1 << 20):
                    size += len(chunk)
                    if size > MAX_DOWNLOAD:
                        raise ins.error(f"{url}: larger than {MAX_DOWNLOAD >> 20} MiB")
                    h.update(chunk)
                    out.write(chunk)
                modified = resp.headers.get("Last-Modified")
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = f"HTTP {e.code} {e.reason}" if isinstance(e, urllib.error.HTTPError) \
                else getattr(e, "reason", None) or e
            raise ins.error(f"{url}: cannot download: {reason}") from None
        if checksum is not None and checksum != f"sha256:{h.hexdigest()}":
            raise ins.error(f"{url}: checksum mismatch: want {checksum}, got "
                            f"sha256:{h.hexdigest()}")
        mtime = 0.0
        if modified:
            with contextlib.suppress(TypeError, ValueError):
                mtime = email.utils.parsedate_to_datetime(modified).timestamp()
        return name, path, mtime

    def _from_tree(self, ins: Instruction, run: _StageRun, ref: str) -> tuple[SourceTree, str]:
        for earlier in self.stages:
            if earlier is run:
                break
            name = earlier.stage.name
            if (name is not None and name == ref.lower()) or ref == str(earlier.stage.index):
                return (SourceTree(self._view(earlier.state), keep_owner=True,
                                   what=f"stage {ref}"), earlier.state.id)
        if ref.lower() == (run.stage.name or "") or ref == str(run.stage.index):
            raise ins.error(f"--from={ref}: a stage cannot copy from itself")
        image = self._image(ins, ref)
        layers = [LayerBlob(d, diff) for d, diff in zip(image.layers, image.diff_ids,
                                                        strict=True)]
        state = _State(image.config.doc, layers)
        return SourceTree(self._view(state), keep_owner=True, what=f"image {ref}"), image.id

    def _workdir(self, run: _StageRun, ins: Instruction) -> None:
        env = self._env(run)
        path = self._expand(ins, ins.args[0], env)
        doc = copy.deepcopy(run.state.doc)
        new = rules.set_workdir(doc.setdefault("config", {}), path)
        history = f"WORKDIR {new}"

        def compute() -> tuple[dict[str, Any], list[LayerBlob], str | None]:
            view = self._view(run.state)
            if view.is_dir(new):
                return doc, [], history
            plan = plan_mkdir(new, view)
            tar_path = self.tmp / f"workdir{self.step}.tar"
            with open(tar_path, "wb") as f:
                write_copy_tar(plan, f)
            blob = self._add_layer(run.state, tar_path)
            tar_path.unlink()
            return doc, [blob], history

        self._cached_step(run, ins, history, "", compute)


def _set(values: Mapping[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in values.items() if v is not None}


def build(store: ImageStore, context_dir: str | os.PathLike[str], *,
          dockerfile: str = "Dockerfile", tag: str | None = None,
          build_args: Mapping[str, str] | None = None, target: str | None = None,
          runtime_root: str | os.PathLike[str] = DEFAULT_RUNTIME_ROOT,
          progress: BuildProgress | None = None, no_cache: bool = False,
          network: str = "default", build_network: BuildNetwork | None = None,
          layer_progress: ProgressCallback | None = None) -> StoredImage:
    """Build the Dockerfile (`dockerfile`, relative to the context unless absolute) with the
    context directory, name the result `tag` (None: unnamed) and return it.

    `build_args` fill ARGs; `target` stops after that stage; `progress` receives Docker-like
    lines and `layer_progress` the bytes of each new layer as it is compressed and stored
    (for a terminal's live line); `no_cache` runs every step (results still refresh the
    cache); `network` is what RUN containers get: "default" (a namespace of their own on the
    default bridge, out through NAT, wired by `build_network` or else by llmosd or this
    process, see network.py), "host" (the host's network namespace) or "none".
    Raises DockerfileError (located), ContextError, StepFailed or BuildError.
    """
    try:
        return Builder(store, context_dir, dockerfile=dockerfile, build_args=build_args,
                       target=target, runtime_root=runtime_root, progress=progress,
                       no_cache=no_cache, network=network, build_network=build_network,
                       layer_progress=layer_progress).run(tag)
    except (DockerfileError, ContextError, StepFailed):
        raise
    except ImageError as e:
        raise BuildError(str(e)) from e
