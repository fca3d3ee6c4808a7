"""pytest plugin (entry point `llmos`): fixtures that run containers and always remove them.

    def test_web(llmos_container):
        web = llmos_container("myimage", ["httpd", "-f"], name="web")
        ...                       # removed after the test, passed or failed

`llmos_client` talks to llmosd (LLMOS_HOST, or the default socket) unless
`--llmos-embedded ROOT` is given (or LLMOS_EMBEDDED_ROOT is set): then the engine runs in the
test process itself, with no daemon.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmos")
    group.addoption(
        "--llmos-embedded",
        default=os.environ.get("LLMOS_EMBEDDED_ROOT"),
        metavar="ROOT",
        help="run llmos in-process with state under ROOT instead of talking to llmosd",
    )


@pytest.fixture(scope="session")
def llmos_client(pytestconfig: pytest.Config) -> Iterator[Any]:
    from llmos.client import Client

    root = pytestconfig.getoption("--llmos-embedded", default=None)
    if root:
        client = Client.embedded(root=os.path.join(root, "lib"),
                                 run_root=os.path.join(root, "run"))
    else:
        client = Client()
    yield client
    client.close()


@pytest.fixture
def llmos_container(llmos_client: Any) -> Iterator[Callable[..., Any]]:
    """A factory: llmos_container(image, command=None, **run_kwargs) -> started Container."""
    made: list[Any] = []

    def run(image: str, command: str | list[str] | None = None, **kwargs: Any) -> Any:
        c = llmos_client.containers.run(image, command, detach=True, **kwargs)
        made.append(c)
        return c

    try:
        yield run
    finally:
        for c in made:
            try:
                c.remove(force=True)
            except Exception:  # already gone: that is what we wanted
                pass
