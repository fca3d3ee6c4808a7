"""llmos-sim: the numbers as JSON or text, and bad input as exit code 2 with a location."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scheduler.simulate import generate, write_trace
from scheduler.simulate.cli import main

REQUIRED = {"nodes_total", "nodes_used_peak", "lower_bound_peak", "placed", "pending",
            "preemptions", "placements_per_s"}


@pytest.fixture
def trace_files(tmp_path: Path) -> tuple[str, str]:
    nodes, pods = tmp_path / "nodes.csv", tmp_path / "pods.csv"
    write_trace(generate("bimodal", 20, seed=4), nodes, pods)
    return str(nodes), str(pods)


@pytest.mark.parametrize("strategy", ["binpack", "spread", "least-allocated", "most-allocated"])
def test_json_has_the_promised_fields(trace_files: tuple[str, str], strategy: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*trace_files, "--strategy", strategy, "--seed", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert REQUIRED <= set(out)
    assert out["nodes_total"] == 20
    assert out["strategy"] == strategy and out["seed"] == 3
    assert out["placed"] + out["pending"] >= 1
    assert out["nodes_used_peak"] >= out["lower_bound_peak"] > 0


def test_text_shows_the_same_numbers(trace_files: tuple[str, str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*trace_files, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert main(list(trace_files)) == 0
    text = capsys.readouterr().out
    assert f"nodes used peak  {data['nodes_used_peak']}" in text
    assert f"lower bound peak {data['lower_bound_peak']}" in text
    assert f"pending          {data['pending']}" in text
    assert "placements/s" in text


def test_bad_csv_exits_2_naming_file_line_column(tmp_path: Path, trace_files: tuple[str, str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad-pods.csv"
    bad.write_text("name,arrival_s,duration_s,cpu_m,memory_mib\np1,0,0,100,64\np2,0,0,x,64\n")
    assert main([trace_files[0], str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3: column cpu_m: 'x' is not valid" in err


def test_missing_file_and_bad_strategy_exit_2(tmp_path: Path, trace_files: tuple[str, str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope.csv"), trace_files[1]]) == 2
    assert "nope.csv" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main([*trace_files, "--strategy", "random"])
    assert info.value.code == 2


def test_plot_writes_a_png(tmp_path: Path, trace_files: tuple[str, str]) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "u.png"
    assert main([*trace_files, "--plot", str(png), "--json"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
