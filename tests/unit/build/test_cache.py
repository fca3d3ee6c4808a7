"""Cache keys and the persisted step cache."""

from __future__ import annotations

from pathlib import Path

from llmos.build import BuildCache
from llmos.build.cache import state_id, step_key
from llmos.image import Descriptor, LayerBlob

LAYER = LayerBlob(Descriptor("application/vnd.oci.image.layer.v1.tar+gzip",
                             "sha256:" + "a" * 64, 10), "sha256:" + "b" * 64)


def test_state_id_ignores_key_order_but_not_content() -> None:
    a = {"config": {"Env": ["A=1"]}, "rootfs": {"diff_ids": ["x"]}}
    b = {"rootfs": {"diff_ids": ["x"]}, "config": {"Env": ["A=1"]}}
    assert state_id(a) == state_id(b)
    assert state_id(a) != state_id({**a, "rootfs": {"diff_ids": ["y"]}})


def test_step_key_covers_parent_instruction_and_inputs() -> None:
    base = step_key("p", "RUN x", "")
    assert base == step_key("p", "RUN x", "")
    assert base != step_key("q", "RUN x", "")
    assert base != step_key("p", "RUN y", "")
    assert base != step_key("p", "RUN x", "sha256:1")
    # no ambiguity from concatenation
    assert step_key("ab", "c") != step_key("a", "bc")


def test_cache_survives_reopening(tmp_path: Path) -> None:
    cache = BuildCache(tmp_path)
    assert cache.get("k") is None
    cache.put("k", {"config": {"Cmd": ["sh"]}}, [LAYER])
    again = BuildCache(tmp_path)
    hit = again.get("k")
    assert hit is not None
    assert hit.config == {"config": {"Cmd": ["sh"]}}
    assert hit.layers == (LAYER,)
    again.forget("k")
    assert cache.get("k") is None
    cache.put("a", {}, [])
    assert cache.clear() == 1
