"""Must show 6: errors name the step and errno, and leave nothing behind."""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Any

import pytest

from llmos.runtime import ConfigError, StepError


def _nothing_left(runtime: Any, cid: str) -> None:
    assert not (Path(runtime.root) / cid).exists()
    assert not glob.glob(f"/sys/fs/cgroup/*/llmos/{cid}")


def test_missing_executable(runtime: Any, make_bundle: Any) -> None:
    with pytest.raises(StepError) as e:
        runtime.create("noexe", make_bundle(["/bin/nope"]))
    assert str(e.value) == "exec /bin/nope: No such file or directory"
    assert e.value.exit_code == 127
    _nothing_left(runtime, "noexe")


def test_missing_in_path(runtime: Any, make_bundle: Any) -> None:
    with pytest.raises(StepError) as e:
        runtime.create("nopath", make_bundle(["nope"]))
    assert 'executable file not found in $PATH' in str(e.value)
    _nothing_left(runtime, "nopath")


def test_missing_rootfs(runtime: Any, make_bundle: Any, tmp_path: Path) -> None:
    bundle = make_bundle(["true"], rootfs=tmp_path / "does-not-exist")
    with pytest.raises(ConfigError) as e:
        runtime.create("norootfs", bundle)
    assert "root.path" in str(e.value) and "does-not-exist" in str(e.value)
    _nothing_left(runtime, "norootfs")


def test_bad_field(runtime: Any, make_bundle: Any) -> None:
    bundle = make_bundle(["true"])
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["linux"]["namespaces"].append({"type": "bogus"})
    (bundle / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError) as e:
        runtime.create("badfield", bundle)
    assert "linux.namespaces[" in str(e.value) and "bogus" in str(e.value)
    _nothing_left(runtime, "badfield")


def test_failing_mount_step(runtime: Any, make_bundle: Any) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["mounts"].append({"destination": "/mnt", "type": "nosuchfs", "source": "x"})

    with pytest.raises(StepError) as e:
        runtime.create("badmount", make_bundle(["true"], edit=edit))
    assert e.value.step == "mount"
    assert "No such device" in str(e.value)
    _nothing_left(runtime, "badmount")
