"""The public surface: `llmos.daemon.__all__` names exactly what it resolves, lazily."""

from __future__ import annotations

import subprocess
import sys

import llmos.daemon as daemon
from llmos.daemon import errors


def test_all_lists_exactly_what_resolves() -> None:
    assert len(set(daemon.__all__)) == len(daemon.__all__)
    assert set(daemon.__all__) == set(daemon._WHERE)
    for name in daemon.__all__:
        value = getattr(daemon, name)
        module = sys.modules[f"llmos.daemon.{daemon._WHERE[name]}"]
        assert value is getattr(module, name) and name in module.__all__, name
    # "@py_*": pytest's assertion rewriting of a plugin's distribution (llmos is one).
    public = {n for n in dir(daemon) if not n.startswith(("_", "@"))}
    submodules = {"connection", "errors", "protocol", "records", "rpc", "store", "unixsock",
                  "annotations", "importlib", "TYPE_CHECKING", "Any"}
    assert public - submodules == set(daemon.__all__)


def test_every_error_is_a_daemon_error() -> None:
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, errors.DaemonError), name
            assert getattr(daemon, name) is obj


def test_the_client_does_not_import_the_server_or_sqlite() -> None:
    code = (
        "import sys; from llmos.daemon import Connection, NotFound; "
        "bad = {'sqlite3', 'llmos.daemon.rpc', 'llmos.daemon.store'} & "
        "set(sys.modules); print(sorted(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
