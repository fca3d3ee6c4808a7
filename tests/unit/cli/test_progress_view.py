"""The progress renderer of pull, push, load and build: in place on a terminal (with a speed),
one plain line per change of state elsewhere (no escapes, no line per chunk)."""

from __future__ import annotations

import io
import re

from llmos.cli.progress_view import ProgressView, human_size, human_speed
from llmos.image.progress import Progress, reading

ESC = re.compile(r"\x1b\[[0-9]*[A-Za-z]")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def screen(text: str) -> list[str]:
    """What a terminal shows after `text`: carriage returns, cursor-up and clear-to-end-of-line
    applied to a grid of rows (all the renderer uses)."""
    rows: list[str] = [""]
    row = col = 0
    i = 0
    while i < len(text):
        m = ESC.match(text, i)
        if m:
            code = m.group(0)
            n = int(code[2:-1] or 1)
            if code.endswith("A"):
                row = max(0, row - n)
            elif code.endswith("K"):
                rows[row] = rows[row][:col]
            i = m.end()
            continue
        ch = text[i]
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
            col = 0
            if row == len(rows):
                rows.append("")
        else:
            line = rows[row].ljust(col)
            rows[row] = line[:col] + ch + line[col + 1:]
            col += 1
        i += 1
    return [r for r in rows if r] if rows[-1] == "" else rows


def push_events(view: ProgressView, clock: Clock) -> None:
    view.update("resolve", "reg:5000/app:1")
    view.update("exists", "aaaaaaaaaaaa", 10, 10)
    view.update("upload", "bbbbbbbbbbbb", 0, 10_000_000)
    for i in range(1, 11):
        clock.now += 0.25
        view.update("upload", "bbbbbbbbbbbb", i * 1_000_000, 10_000_000)
    clock.now += 0.1
    view.update("uploaded", "bbbbbbbbbbbb", 10_000_000, 10_000_000)
    view.update("done", "reg:5000/app:1")
    view.close()


def test_tty_redraws_lines_in_place_with_a_speed() -> None:
    out, clock = io.StringIO(), Clock()
    view = ProgressView(out, verb="push", tty=True, width=100, interval=0.0, clock=clock)
    view.update("upload", "bbbbbbbbbbbb", 0, 10_000_000)
    clock.now += 0.5
    view.update("upload", "bbbbbbbbbbbb", 2_000_000, 10_000_000)
    text = out.getvalue()
    assert "\r" in text and "\x1b[1A" in text  # the second draw goes back over the first
    assert screen(text) == ["bbbbbbbbbbbb: Pushing [====>               ] 2.0 MB/10.0 MB "
                            "4.0 MB/s"]


def test_tty_final_state_per_layer() -> None:
    out, clock = io.StringIO(), Clock()
    view = ProgressView(out, verb="push", tty=True, width=100, clock=clock)
    push_events(view, clock)
    text = out.getvalue()
    assert "MB/s" in text
    # Three rows whatever was drawn in between, each in its final state.
    assert screen(text) == [
        "reg:5000/app:1: Push complete",
        "aaaaaaaaaaaa: Layer already exists",
        "bbbbbbbbbbbb: Pushed 10.0 MB (4.0 MB/s)",
    ]


def test_tty_updates_are_throttled_but_state_changes_are_not() -> None:
    out, clock = io.StringIO(), Clock()
    view = ProgressView(out, verb="pull", tty=True, width=100, interval=1.0, clock=clock)
    view.update("download", "cccccccccccc", 1, 1000)
    for i in range(2, 50):
        clock.now += 0.01
        view.update("download", "cccccccccccc", i, 1000)
    assert out.getvalue().count("Downloading") == 1
    view.update("downloaded", "cccccccccccc", 1000, 1000)
    assert screen(out.getvalue())[-1].startswith("cccccccccccc: Download complete")


def test_tty_lines_fit_the_width() -> None:
    out = io.StringIO()
    view = ProgressView(out, tty=True, width=20, clock=Clock())
    view.update("resolve", "a-very-long-registry.example.com/some/repository:tag")
    assert all(len(row) < 20 for row in screen(out.getvalue()))


def test_tty_log_lines_go_above_the_live_lines() -> None:
    out, clock = io.StringIO(), Clock()
    view = ProgressView(out, verb="build", tty=True, width=100, keep_done=False, clock=clock)
    view.log("Step 1/2 : FROM busybox")
    view.update("export", "Step 2/2", 0, 5_000_000)
    view.log("some RUN output")
    clock.now += 1
    view.update("export", "Step 2/2", 5_000_000, 5_000_000)
    view.update("done", "Step 2/2", 100, 100, "0123456789ab")
    view.log("Successfully built 0123456789ab")
    view.close()
    assert screen(out.getvalue()) == [
        "Step 1/2 : FROM busybox",
        "some RUN output",
        "Step 2/2: Exported layer 0123456789ab 5.0 MB (5.0 MB/s)",
        "Successfully built 0123456789ab",
    ]


def test_plain_one_line_per_state_change_without_escapes() -> None:
    out, clock = io.StringIO(), Clock()
    view = ProgressView(out, verb="push", tty=False, clock=clock)
    push_events(view, clock)
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text
    assert text.splitlines() == [
        "reg:5000/app:1: Resolving",
        "aaaaaaaaaaaa: Layer already exists",
        "bbbbbbbbbbbb: Pushing 10.0 MB",
        "bbbbbbbbbbbb: Pushed 10.0 MB (4.0 MB/s)",
        "reg:5000/app:1: Push complete",
    ]


def test_plain_pull_sums_up_a_layer_once() -> None:
    out, clock = io.StringIO(), Clock()
    view = ProgressView(out, verb="pull", tty=False, clock=clock)
    for ev in (Progress("download", "dddddddddddd", 1_000_000, 3_000_000),
               Progress("download", "dddddddddddd", 2_000_000, 3_000_000),
               Progress("download", "dddddddddddd", 3_000_000, 3_000_000),
               Progress("verify", "dddddddddddd", 3_000_000, 3_000_000),
               Progress("downloaded", "dddddddddddd", 3_000_000, 3_000_000),
               Progress("unpack", "dddddddddddd", 0, 3_000_000),
               Progress("done", "dddddddddddd", 3_000_000, 3_000_000)):
        clock.now += 0.5
        view(ev)
    assert out.getvalue().splitlines() == [
        "dddddddddddd: Downloading 3.0 MB",
        "dddddddddddd: Verifying Checksum",
        "dddddddddddd: Download complete 3.0 MB (2.0 MB/s)",
        "dddddddddddd: Extracting",
        "dddddddddddd: Pull complete",
    ]


def test_events_as_the_daemon_streams_them() -> None:
    out = io.StringIO()
    view = ProgressView(out, verb="push", tty=False, clock=Clock())
    view.event({"action": "mount", "item": "eeeeeeeeeeee", "current": 5, "total": 5,
                "message": "from other/repo"})
    assert out.getvalue() == "eeeeeeeeeeee: Mounted from other/repo\n"


def test_units() -> None:
    assert human_size(999) == "999 B"
    assert human_size(12_345_678) == "12.3 MB"
    assert human_size(2.5e12) == "2500.0 GB"
    assert human_speed(4_000_000) == "4.0 MB/s"


def test_reading_reports_bytes_throttled_and_the_end() -> None:
    events: list[Progress] = []
    f = reading(io.BytesIO(b"x" * 100_000), events.append, "upload", "sha256:" + "f" * 64,
                100_000)
    while f.read(8192):
        pass
    assert events[0] == Progress("upload", "ffffffffffff", 0, 100_000)
    assert events[-1] == Progress("upload", "ffffffffffff", 100_000, 100_000)
    assert len(events) < 13  # not one per 8 KiB read
    f.seek(0)  # a retried request sends the body again
    f.read()
    assert events[-1].current == 100_000 and len([e for e in events if e.current]) >= 2


def test_reading_without_a_callback_is_the_file_itself() -> None:
    f = io.BytesIO(b"abc")
    assert reading(f, None, "upload", "x", 3) is f
