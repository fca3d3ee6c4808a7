"""The kind of test our users write: start a web server in a container, talk to it, and let
the `llmos_container` fixture remove it afterwards, whatever happens."""

from __future__ import annotations

import time
from typing import Any

SERVE = ("mkdir -p /www && echo '<h1>it works</h1>' > /www/index.html && "
         "exec httpd -f -p 8000 -h /www")
GET = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 127.0.0.1 8000"


def wait_for_http(container: Any, tries: int = 50) -> bytes:
    for _ in range(tries):
        result = container.exec_run(["sh", "-c", GET])
        if result.exit_code == 0 and b"200 OK" in result.output:
            return bytes(result.output)
        time.sleep(0.1)
    raise AssertionError(f"no answer; logs: {container.logs()!r}")


def test_page_is_served(llmos_container: Any, busybox_image: str) -> None:
    web = llmos_container(busybox_image, ["sh", "-c", SERVE], name="example-web")
    reply = wait_for_http(web)
    assert b"<h1>it works</h1>" in reply


def test_limits_are_applied(llmos_container: Any, busybox_image: str) -> None:
    box = llmos_container(busybox_image, ["sleep", "60"], mem_limit="32m", pids_limit=20)
    box.reload()
    assert box.attrs["HostConfig"]["Memory"] == 32 << 20
    r = box.exec_run("cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max")
    assert r.output.strip() == b"20"


def test_environment_reaches_the_process(llmos_client: Any, busybox_image: str) -> None:
    out = llmos_client.containers.run(busybox_image, "echo $GREETING", remove=True,
                                      environment={"GREETING": "hello"})
    assert out == b"hello\n"
