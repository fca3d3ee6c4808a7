"""Must show 6: builds from a busybox-static base image, with real RUN containers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from llmos.build import ContextError, DockerfileError, StepFailed
from llmos.image import Image, ImageStore
from tests.integration.build.conftest import BASE, Builds, ContextFactory

pytestmark = pytest.mark.root


def layer_names(store: ImageStore, image: Image, index: int) -> list[str]:
    with store.content.open(image.layers[index].digest) as f, \
            tarfile.open(fileobj=f, mode="r|*") as tf:
        return [m.name for m in tf]


def test_run_files_reach_the_next_stage_and_deletions_are_whiteouts(
        builds: Builds, store: ImageStore, context: ContextFactory) -> None:
    ctx = context(f"""FROM {BASE} AS first
RUN echo made > /made && rm /bin/vi && mkdir -p /opt/gone /opt/kept && rm -r /opt/gone
FROM first
RUN test "$(cat /made)" = made && test ! -e /bin/vi && test ! -e /opt/gone \\
    && echo second > /second
""")
    image = builds(ctx, tag="stages:1")
    first_run = layer_names(store, image, 1)
    assert "bin/.wh.vi" in first_run
    assert "made" in first_run
    assert not any("gone" in n for n in first_run)  # made and removed in one step: no trace
    assert "etc" not in first_run  # the resolv.conf/hosts mount points leave nothing
    assert layer_names(store, image, 2) == ["second"]
    code, out = builds.run(image, ["sh", "-c", "cat /made /second; ls /bin/vi || echo novi"])
    assert code == 0, out
    assert out.split() == ["made", "second", "novi"] or "novi" in out


def test_second_build_is_fully_cached_in_another_process(
        builds: Builds, store: ImageStore, context: ContextFactory, runtime_root: Path) -> None:
    ctx = context(f"""FROM {BASE}
ARG GREETING=hello
ENV WHO=world
RUN echo "$GREETING $WHO" > /greeting
COPY data.txt /data/
WORKDIR /data
EXPOSE 8080
LABEL purpose=test
CMD ["cat", "/greeting"]
""", {"data.txt": "payload\n"})
    first = builds(ctx, tag="cached:1")
    assert builds.cached == 0
    script = (
        "import json, sys\n"
        "from llmos.image import ImageStore\n"
        "from llmos.build import build\n"
        "lines = []\n"
        f"img = build(ImageStore({str(store.root)!r}), {str(ctx)!r}, tag='cached:1',\n"
        f"            runtime_root={str(runtime_root)!r}, progress=lines.append,\n"
        "            network='host')\n"
        "print(json.dumps({'id': img.id, 'lines': lines}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[3]).stdout
    result = json.loads(out.splitlines()[-1])
    cached = [ln for ln in result["lines"] if ln.strip() == "---> CACHED"]
    steps = [ln for ln in result["lines"] if ln.startswith("Step ")]
    assert len(steps) == 9
    assert len(cached) == 8  # every step but FROM
    assert result["id"] == first.id
    code, text = builds.run(store.get("cached:1"))
    assert (code, text) == (0, "hello world\n")


def test_changed_copy_input_invalidates_from_that_step_on(
        builds: Builds, context: ContextFactory) -> None:
    ctx = context(f"""FROM {BASE}
RUN echo before > /before
COPY app.sh /app.sh
RUN cp /app.sh /copy.sh
CMD ["sh", "/app.sh"]
""", {"app.sh": "echo v1\n"})
    first = builds(ctx)
    builds(ctx)
    assert builds.cached == 4
    (ctx / "app.sh").write_text("echo v2\n")
    second = builds(ctx)
    cached_steps = [builds.lines[i - 1] for i, ln in enumerate(builds.lines)
                    if ln.strip() == "---> CACHED"]
    assert cached_steps == ["Step 2/5 : RUN echo before > /before"]
    assert second.id != first.id
    assert builds.run(second)[1] == "v2\n"
    os.chmod(ctx / "app.sh", 0o755)  # a mode change is a change too
    builds(ctx)
    assert builds.cached == 1


def test_multi_stage_copy_from_keeps_owner_and_mode(
        builds: Builds, context: ContextFactory) -> None:
    ctx = context(f"""FROM {BASE} AS builder
RUN mkdir -p /out && echo built > /out/artifact && chown 1000:1000 /out/artifact \\
    && chmod 0750 /out/artifact && ln -s artifact /out/link
FROM {BASE}
COPY --from=builder /out/ /app/
COPY --from=builder --chown=7:8 /out/artifact /owned
""")
    image = builds(ctx, tag="multi:1")
    code, out = builds.run(image, ["sh", "-c",
                                   "cat /app/artifact; stat -c '%u:%g %a' /app/artifact /owned;"
                                   " readlink /app/link"])
    assert code == 0, out
    assert out.splitlines() == ["built", "1000:1000 750", "7:8 750", "artifact"]


def test_user_workdir_env_entrypoint_cmd_combine_like_docker(
        builds: Builds, store: ImageStore, context: ContextFactory) -> None:
    show = 'echo "argv=$0 $*"; echo "uid=$(id -u) gid=$(id -g)"; echo "cwd=$(pwd)"; ' \
           'echo "A=$A B=$B"'
    ctx = context(f"""FROM {BASE} AS entry
ENV A=1 B=unset
ENV B=$A-2
WORKDIR /srv
WORKDIR app
USER nobody
ENTRYPOINT ["/bin/sh", "-c", {json.dumps(show)}, "zero"]
FROM entry AS withcmd
CMD ["one", "two"]
FROM withcmd AS reset
ENTRYPOINT echo shell form "$A"
""")
    entry = builds(ctx, tag="combine:entry", target="entry")
    assert entry.config.config["Cmd"] is None  # the base image's ["sh"] is dropped
    code, out = builds.run(entry)
    assert code == 0, out
    assert out.splitlines() == ["argv=zero ", "uid=65534 gid=65534", "cwd=/srv/app",
                                "A=1 B=1-2"]
    withcmd = builds(ctx, tag="combine:cmd", target="withcmd")
    assert builds.run(withcmd)[1].splitlines()[0] == "argv=zero one two"
    reset = builds(ctx, tag="combine:reset")
    cfg = reset.config.config
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", 'echo shell form "$A"']
    assert cfg["Cmd"] is None  # CMD came from the parent stage, not this one: dropped
    assert builds.run(reset)[1] == "shell form 1\n"


def test_dockerignore_excluded_files_are_absent(builds: Builds, context: ContextFactory) -> None:
    ctx = context(f"""FROM {BASE}
COPY . /ctx/
""", {".dockerignore": "secret.txt\nlogs\n**/*.tmp\n*.md\n!KEEP.md\n",
      "secret.txt": "s", "logs/a.log": "l", "src/x.tmp": "t", "src/main.c": "c",
      "README.md": "r", "KEEP.md": "k"})
    image = builds(ctx)
    code, out = builds.run(image, ["sh", "-c", "cd /ctx && find . -type f | sort"])
    assert code == 0, out
    assert out.split() == ["./.dockerignore", "./Dockerfile", "./KEEP.md", "./src/main.c"]
    bad = context(f"FROM {BASE}\nCOPY secret.txt /\n",
                  {".dockerignore": "secret.txt\n", "secret.txt": "s"})
    with pytest.raises(DockerfileError, match=r"Dockerfile:2: COPY: secret.txt: not found .*"
                                               r"dockerignore"):
        builds(bad)


def test_failing_run_is_reported_and_leaves_no_snapshot(
        builds: Builds, store: ImageStore, context: ContextFactory) -> None:
    before = {i.key for i in store.snapshotter.walk()}
    ctx = context(f"FROM {BASE}\nRUN echo visible; exit 3\n")
    with pytest.raises(StepFailed, match="returned a non-zero code: 3") as err:
        builds(ctx)
    assert err.value.code == 3
    assert "visible" in builds.lines
    assert {i.key for i in store.snapshotter.walk()} == before


def test_add_extracts_local_archives_and_copy_refuses_urls(
        builds: Builds, context: ContextFactory, work: Path) -> None:
    src = work / "tree"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "file").write_text("inside\n")
    with tarfile.open(work / "a.tar.gz", "w:gz") as tf:
        tf.add(src / "pkg", arcname="pkg")
    ctx = context(f"FROM {BASE}\nADD a.tar.gz /opt/\n",
                  {"a.tar.gz": (work / "a.tar.gz").read_bytes()})
    image = builds(ctx)
    assert builds.run(image, ["cat", "/opt/pkg/file"])[1] == "inside\n"
    url = context(f"FROM {BASE}\nCOPY https://example.com/x /x\n")
    with pytest.raises(DockerfileError, match="COPY takes files of the build context"):
        builds(url)


def test_missing_base_image_is_a_clear_error(builds: Builds, context: ContextFactory) -> None:
    with pytest.raises(DockerfileError, match="Dockerfile:1: FROM: image 'nosuch:1' is not "
                                              "in the store"):
        builds(context("FROM nosuch:1\n"))
    with pytest.raises(ContextError):
        builds(context(f"FROM {BASE}\n"), dockerfile="Missing.Dockerfile")


def test_build_args_and_scratch(builds: Builds, context: ContextFactory) -> None:
    ctx = context(f"""ARG BASE={BASE}
FROM $BASE AS tools
ARG NAME=default
RUN echo "$NAME" > /name
FROM scratch
COPY --from=tools /name /bin/busybox /
""")
    image = builds(ctx, build_args={"NAME": "given"})
    assert len(image.layers) == 1
    files = layer_names(builds.store, image, 0)
    assert sorted(files) == ["busybox", "name"]
    code, out = builds.run(image, ["/busybox", "cat", "/name"])
    assert (code, out) == (0, "given\n")


def stored_config(store: ImageStore, image: Image) -> dict[str, Any]:
    """The image's run config as written in its config blob (what Docker would store)."""
    with store.content.open(image.id) as f:
        doc = json.load(f)
    assert isinstance(doc, dict)
    config = doc["config"]
    assert isinstance(config, dict)
    return config


def test_healthcheck_stopsignal_volume_label_are_stored_like_docker(
        builds: Builds, store: ImageStore, context: ContextFactory) -> None:
    ctx = context(f"""FROM {BASE} AS checked
ARG VER=1.2
LABEL version="$VER" "com.example.vendor"="ACME Incorporated" multi=one \\
      other=two
LABEL legacy value with spaces
STOPSIGNAL SIGQUIT
VOLUME /data /var/log
VOLUME ["/json", "/with space"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=1m30s --retries=4 \\
  CMD wget -q -O- http://localhost/ || exit 1
FROM checked AS execform
HEALTHCHECK --interval=250ms CMD ["cat", "/etc/passwd"]
STOPSIGNAL 9
LABEL version=2
VOLUME /more
FROM execform AS nocheck
HEALTHCHECK NONE
""")
    base = store.get(BASE)
    checked = builds(ctx, tag="meta:checked", target="checked")
    assert len(checked.layers) == len(base.layers)  # metadata adds no layer
    cfg = stored_config(store, checked)
    labels = {"version": "1.2", "com.example.vendor": "ACME Incorporated", "multi": "one",
              "other": "two", "legacy": "value with spaces"}
    assert cfg["Labels"] == labels
    assert cfg["StopSignal"] == "SIGQUIT"
    assert cfg["Volumes"] == {"/data": {}, "/var/log": {}, "/json": {}, "/with space": {}}
    assert cfg["Healthcheck"] == {
        "Test": ["CMD-SHELL", "wget -q -O- http://localhost/ || exit 1"],
        "Interval": 30_000_000_000, "Timeout": 5_000_000_000,
        "StartPeriod": 90_000_000_000, "Retries": 4}
    assert cfg["Cmd"] == ["sh"]  # none of these touch the command
    with store.content.open(checked.id) as f:
        history = json.load(f)["history"]
    assert [h["created_by"].split()[0] for h in history[-6:]] == [
        "LABEL", "LABEL", "STOPSIGNAL", "VOLUME", "VOLUME", "HEALTHCHECK"]
    assert all(h.get("empty_layer") is True for h in history[-6:])

    execform = builds(ctx, tag="meta:exec", target="execform")
    cfg = stored_config(store, execform)
    # exec form: "CMD" then the argv; options not given are left out, as Docker's omitempty
    assert cfg["Healthcheck"] == {"Test": ["CMD", "cat", "/etc/passwd"],
                                  "Interval": 250_000_000}
    assert cfg["StopSignal"] == "9"
    assert cfg["Labels"] == {**labels, "version": "2"}
    assert cfg["Volumes"] == {"/data": {}, "/var/log": {}, "/json": {}, "/with space": {},
                              "/more": {}}

    nocheck = builds(ctx, tag="meta:none")
    cfg = stored_config(store, nocheck)
    assert cfg["Healthcheck"] == {"Test": ["NONE"]}
    assert cfg["StopSignal"] == "9" and cfg["Labels"]["version"] == "2"
    assert store.get("meta:none").config.config["Healthcheck"] == {"Test": ["NONE"]}


@pytest.mark.parametrize(("line", "message"), [
    ("STOPSIGNAL NOPE", "Invalid signal: NOPE"),
    ("STOPSIGNAL 0", "Invalid signal: 0"),
    ("HEALTHCHECK --interval=1us CMD true", "less than 1ms"),
    ("HEALTHCHECK --retries=x CMD true", "retries"),
    ("HEALTHCHECK NONE --interval=1s", "NONE takes no other arguments"),
])
def test_bad_stopsignal_and_healthcheck_are_refused(
        builds: Builds, context: ContextFactory, line: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=f"Dockerfile:2: .*{message}"):
        builds(context(f"FROM {BASE}\n{line}\n"))


def test_copy_chown_from_the_context_by_name_and_number(
        builds: Builds, context: ContextFactory) -> None:
    ctx = context(f"""FROM {BASE}
RUN echo 'app:x:1234:4321::/home/app:/bin/sh' >> /etc/passwd \\
    && echo 'appgrp:x:4321:' >> /etc/group && mkdir /srv
COPY --chown=app:appgrp conf.txt /srv/
COPY --chown=app:appgrp tree/ /opt/new/deep/
COPY --chown=nobody:nogroup conf.txt /srv/nobody.txt
COPY --chown=55:66 conf.txt /srv/numeric.txt
COPY conf.txt /srv/plain.txt
""", {"conf.txt": "conf\n", "tree/a": "a\n", "tree/sub/b": "b\n"})
    # the context's own owner must not reach the image, with or without --chown
    for p in ("conf.txt", "tree", "tree/a", "tree/sub", "tree/sub/b"):
        os.lchown(ctx / p, 1000, 1000)
    image = builds(ctx, tag="chown:1")
    paths = ["/srv", "/srv/conf.txt", "/srv/nobody.txt", "/srv/numeric.txt", "/srv/plain.txt",
             "/opt", "/opt/new", "/opt/new/deep", "/opt/new/deep/a", "/opt/new/deep/sub",
             "/opt/new/deep/sub/b"]
    code, out = builds.run(image, ["sh", "-c", "stat -c '%n %u:%g' " + " ".join(paths)
                                   + "; cat /srv/conf.txt /opt/new/deep/sub/b"
                                   + "; ls -n /srv/conf.txt"])
    assert code == 0, out
    lines = out.splitlines()
    assert lines[:len(paths)] == [
        "/srv 0:0",  # existed before: left as it was
        "/srv/conf.txt 1234:4321",
        "/srv/nobody.txt 65534:65534",
        "/srv/numeric.txt 55:66",
        "/srv/plain.txt 0:0",
        # directories the COPY creates belong to the --chown owner (BuildKit's MkdirAll)
        "/opt 1234:4321",
        "/opt/new 1234:4321",
        "/opt/new/deep 1234:4321",
        "/opt/new/deep/a 1234:4321",
        "/opt/new/deep/sub 1234:4321",
        "/opt/new/deep/sub/b 1234:4321",
    ]
    assert lines[len(paths):len(paths) + 2] == ["conf", "b"]
    assert lines[-1].split()[2:4] == ["1234", "4321"]


@pytest.fixture
def web(tmp_path: Path) -> Any:
    """An HTTP server on 127.0.0.1 serving tmp_path/www, with Last-Modified headers."""
    import functools
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    http.server.ThreadingHTTPServer.allow_reuse_address = True
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.root = root  # type: ignore[attr-defined]
    yield srv
    srv.shutdown()
    srv.server_close()


def test_add_url_downloads_like_docker(builds: Builds, context: ContextFactory,
                                       web: Any) -> None:
    """ADD <url>: the file as served, mode 0600, mtime from Last-Modified, a remote archive
    not unpacked, the name from the URL into a directory; --checksum checked; the cache key
    follows the bytes, not the URL."""
    import hashlib
    import io

    (web.root / "hello.txt").write_text("hello from the web\n")
    os.utime(web.root / "hello.txt", (1_600_000_000, 1_600_000_000))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("inside.txt")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    (web.root / "a.tar.gz").write_bytes(buf.getvalue())
    base = f"http://127.0.0.1:{web.server_address[1]}"
    good = "sha256:" + hashlib.sha256(b"hello from the web\n").hexdigest()
    dockerfile = f"""FROM {BASE}
ADD {base}/hello.txt /data/
ADD --checksum={good} {base}/hello.txt /named.txt
ADD {base}/a.tar.gz /data/
"""
    image = builds(context(dockerfile), tag="added:1")
    code, out = builds.run(image, ["sh", "-c",
                                   "stat -c '%n %a %Y %s' /data/hello.txt /named.txt "
                                   "/data/a.tar.gz; cat /named.txt; ls /data"])
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "/data/hello.txt 600 1600000000 19"
    assert lines[1] == "/named.txt 600 1600000000 19"
    assert lines[2].startswith("/data/a.tar.gz 600 ")
    assert lines[3] == "hello from the web"
    assert sorted(lines[4:]) == ["a.tar.gz", "hello.txt"]  # not unpacked
    # Same bytes: cached. Changed bytes at the same URL: that step and after run again.
    builds(context(dockerfile), tag="added:2")
    assert builds.cached == 3
    (web.root / "a.tar.gz").write_bytes(b"not a tarball any more")
    builds(context(dockerfile), tag="added:3")
    assert builds.cached == 2


@pytest.mark.parametrize(("line", "message"), [
    ("ADD {base}/missing /x", r"missing: cannot download: HTTP 404"),
    ("ADD --checksum=sha256:{zeros} {base}/hello.txt /x", r"checksum mismatch"),
    ("COPY {base}/hello.txt /x", r"COPY takes files of the build context; ADD downloads"),
    ("ADD git@example.test:repo.git /x", r"only http:// and https:// URLs"),
    ("ADD {base}/ /dir/", r"cannot determine a file name from the URL"),
])
def test_add_url_errors_are_clear(builds: Builds, context: ContextFactory, web: Any,
                                  line: str, message: str) -> None:
    (web.root / "hello.txt").write_text("hello\n")
    base = f"http://127.0.0.1:{web.server_address[1]}"
    text = f"FROM {BASE}\n" + line.format(base=base, zeros="0" * 64) + "\n"
    with pytest.raises(DockerfileError, match=message):
        builds(context(text))
