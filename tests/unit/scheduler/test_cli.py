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


def _write(tmp_path: Path, nodes: str, pods: str) -> list[str]:
    (tmp_path / "n.csv").write_text("name,cpu_m,memory_mib\n" + nodes)
    (tmp_path / "p.csv").write_text(
        "name,arrival_s,duration_s,cpu_m,memory_mib,priority\n" + pods)
    return [str(tmp_path / "n.csv"), str(tmp_path / "p.csv")]


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main([*args, "--json"]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_batch_places_largest_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Arriving together: one at a time, the two small pods share n0 and the second big pod
    # finds no room; as a batch, the big ones go first and everything fits.
    files = _write(tmp_path, "n0,4000,4096\nn1,4000,4096\n",
                   "s1,0,0,1000,64,0\ns2,0,0,1000,64,0\nb1,0,0,3000,64,0\nb2,0,0,3000,64,0\n")
    one = _run(files, capsys)
    assert one["batch"] is False and one["pending"] == 1
    batched = _run([*files, "--batch"], capsys)
    assert batched["batch"] is True and batched["pending"] == 0 and batched["placed"] == 4
    assert main([*files, "--batch"]) == 0
    assert "batches" in capsys.readouterr().out


def test_no_preemption_leaves_the_urgent_pod_waiting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    files = _write(tmp_path, "n0,2000,2048\n", "low,0,0,1500,64,0\nurgent,1,0,1500,64,10\n")
    with_ = _run(files, capsys)
    assert with_["preemptions"] == 1 and with_["pending"] == 1  # low waits instead
    without = _run([*files, "--no-preemption"], capsys)
    assert without["preemptions"] == 0 and without["pending"] == 1
    assert without["placed"] == 1 and with_["placed"] == 2


def test_make_room_moves_small_pods_for_a_big_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    # x and y fill the big node (largest first); huge fits only there. Moving x and y to
    # the two small nodes makes room; without the flag huge waits to the end.
    files = _write(tmp_path, "big,8000,8192\ns1,4000,4096\ns2,4000,4096\n",
                   "x,0,0,3000,512,0\ny,1,0,3000,512,0\nhuge,2,0,6000,1024,0\n")
    plain = _run(files, capsys)
    assert plain["pending"] == 1 and plain["moves"] == 0
    moved = _run([*files, "--make-room"], capsys)
    assert moved["pending"] == 0 and moved["moves"] == 2 and moved["placed"] == 3


def test_text_output_shows_waiting_beside_the_ratio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    files = _write(tmp_path, "n0,2000,2048\n", "a,0,0,1500,64,0\nb,1,0,1500,64,0\n")
    data = _run(files, capsys)
    assert data["pending_at_peak"] == 1 and data["pending_max"] == 1
    assert data["lower_bound_peak"] == 2 and data["running_bound_peak"] == 1
    assert main(files) == 0
    text = capsys.readouterr().out
    assert "waiting at peak  1 (most waiting at once: 1)" in text
    assert "running bound    1" in text
