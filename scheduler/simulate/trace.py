"""Traces as data and as CSV files.

NODES.csv: ``name,cpu_m,memory_mib`` and optionally ``pids``, ``ephemeral_mib``, ``labels``
(``k=v;k=v``). PODS.csv: ``name,arrival_s,duration_s,cpu_m,memory_mib`` and optionally
``limit_cpu_m``, ``limit_memory_mib``, ``priority``, ``labels``. An empty or zero
``duration_s`` means the pod runs to the end. Every malformed cell is reported with file,
line and column, so a user can fix their own trace without reading this code.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from scheduler.errors import InvalidSpec, TraceError
from scheduler.model import MIB, Node, Pod, Resources

__all__ = ["NODE_COLUMNS", "POD_COLUMNS", "PodSpec", "Trace", "read_trace", "write_trace"]

NODE_COLUMNS = ("name", "cpu_m", "memory_mib")
NODE_OPTIONAL = ("pids", "ephemeral_mib", "labels")
POD_COLUMNS = ("name", "arrival_s", "duration_s", "cpu_m", "memory_mib")
POD_OPTIONAL = ("limit_cpu_m", "limit_memory_mib", "priority", "labels")
#: pids a node gets when NODES.csv does not say (Kubernetes' usual pid limit is far above).
DEFAULT_PIDS = 1 << 20


@dataclass(frozen=True, slots=True)
class PodSpec:
    """A pod in a trace: when it arrives and how long it runs once placed (0: to the end)."""

    pod: Pod
    arrival: float
    duration: float = 0.0


@dataclass(frozen=True, slots=True)
class Trace:
    """Nodes and the pods that arrive over time, ordered by arrival."""

    nodes: tuple[Node, ...]
    pods: tuple[PodSpec, ...]
    name: str = "trace"


T = TypeVar("T")


class _Row:
    """One CSV row with its location, handing out typed cells or a located error."""

    def __init__(self, path: str, line: int, cells: dict[str, str]) -> None:
        self.path, self.line, self.cells = path, line, cells

    def fail(self, column: str, message: str) -> TraceError:
        return TraceError(self.path, self.line, column, message)

    def get(self, column: str, parse: Callable[[str], T], default: T, *,
            required: bool = False) -> T:
        raw = (self.cells.get(column) or "").strip()
        if not raw:
            if required:
                raise self.fail(column, "a value is required")
            return default
        try:
            return parse(raw)
        except ValueError as e:
            raise self.fail(column, f"{raw!r} is not valid: {e}") from None


def _count(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _seconds(raw: str) -> float:
    value = float(raw)
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be a finite number >= 0")
    return value


def _mib(raw: str) -> int:
    value = float(raw)
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be a finite number >= 0")
    return round(value * MIB)


def _priority(raw: str) -> int:
    return int(raw)


def _labels(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in raw.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected k=v;k=v, got {part!r}")
        out[key.strip()] = value.strip()
    return out


def _rows(path: Path, required: Sequence[str], optional: Sequence[str]) -> Iterable[_Row]:
    name = str(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as e:
        raise TraceError(name, 0, "", f"cannot open: {e.strerror or e}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise TraceError(name, 1, "", "the file is empty; a header line is required") from None
        except (csv.Error, UnicodeDecodeError) as e:
            raise TraceError(name, 1, "", f"not a readable CSV file: {e}") from None
        header = [h.strip() for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise TraceError(name, 1, missing[0],
                             f"header lacks column(s) {', '.join(missing)}; "
                             f"expected {','.join(required)} then any of {','.join(optional)}")
        unknown = [h for h in header if h not in required and h not in optional]
        if unknown:
            raise TraceError(name, 1, unknown[0], f"unknown column {unknown[0]!r}")
        line = 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as e:
                raise TraceError(name, line + 1, "", f"not a readable CSV line: {e}") from None
            line = reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) > len(header):
                raise TraceError(name, line, "",
                                 f"{len(cells)} values but the header has {len(header)} columns")
            yield _Row(name, line, dict(zip(header, cells, strict=False)))


def read_nodes(path: str | Path) -> tuple[Node, ...]:
    """Nodes from a NODES.csv file."""
    nodes: list[Node] = []
    seen: set[str] = set()
    for row in _rows(Path(path), NODE_COLUMNS, NODE_OPTIONAL):
        name = row.get("name", str, "", required=True)
        if name in seen:
            raise row.fail("name", f"node {name!r} appears twice")
        seen.add(name)
        cap = Resources(
            row.get("cpu_m", _count, 0, required=True),
            row.get("memory_mib", _mib, 0, required=True),
            row.get("pids", _count, DEFAULT_PIDS),
            row.get("ephemeral_mib", _mib, 0),
        )
        try:
            nodes.append(Node(name, cap, labels=row.get("labels", _labels, {})))
        except InvalidSpec as e:
            raise row.fail("", str(e)) from None
    if not nodes:
        raise TraceError(str(path), 1, "", "no nodes: the file has a header but no rows")
    return tuple(nodes)


def read_pods(path: str | Path) -> tuple[PodSpec, ...]:
    """Pods from a PODS.csv file, sorted by arrival (stable, so file order breaks ties)."""
    specs: list[PodSpec] = []
    seen: set[str] = set()
    for row in _rows(Path(path), POD_COLUMNS, POD_OPTIONAL):
        name = row.get("name", str, "", required=True)
        if name in seen:
            raise row.fail("name", f"pod {name!r} appears twice")
        seen.add(name)
        req = Resources(row.get("cpu_m", _count, 0, required=True),
                        row.get("memory_mib", _mib, 0, required=True))
        lim = Resources(row.get("limit_cpu_m", _count, 0), row.get("limit_memory_mib", _mib, 0))
        for col, want, cap in (("limit_cpu_m", req.cpu_m, lim.cpu_m),
                               ("limit_memory_mib", req.memory, lim.memory)):
            if cap and cap < want:
                raise row.fail(col, f"limit {cap} is below the request {want}")
        try:
            pod = Pod(name, req, lim, priority=row.get("priority", _priority, 0),
                      labels=row.get("labels", _labels, {}))
        except InvalidSpec as e:
            raise row.fail("", str(e)) from None
        specs.append(PodSpec(pod, row.get("arrival_s", _seconds, 0.0, required=True),
                             row.get("duration_s", _seconds, 0.0)))
    specs.sort(key=lambda s: s.arrival)
    return tuple(specs)


def read_trace(nodes_csv: str | Path, pods_csv: str | Path) -> Trace:
    """A trace from the two CSV files the CLI takes."""
    return Trace(read_nodes(nodes_csv), read_pods(pods_csv), name=Path(pods_csv).stem)


def _fmt_labels(labels: dict[str, str] | object) -> str:
    if not isinstance(labels, dict) or not labels:
        return ""
    return ";".join(f"{k}={v}" for k, v in labels.items())


def _fmt_mib(value: int) -> str:
    return str(value // MIB) if value % MIB == 0 else f"{value / MIB:.6f}"


def write_trace(trace: Trace, nodes_csv: str | Path, pods_csv: str | Path) -> None:
    """Write a trace as the two CSV files, so a generated trace can be replayed by anyone."""
    with Path(nodes_csv).open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*NODE_COLUMNS, "pids", "labels"])
        for n in trace.nodes:
            a = n.allocatable
            w.writerow([n.name, a.cpu_m, _fmt_mib(a.memory), a.pids, _fmt_labels(dict(n.labels))])
    with Path(pods_csv).open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*POD_COLUMNS, "limit_cpu_m", "limit_memory_mib", "priority", "labels"])
        for s in trace.pods:
            p = s.pod
            w.writerow([
                p.name, repr(s.arrival), repr(s.duration), p.requests.cpu_m,
                _fmt_mib(p.requests.memory), p.limits.cpu_m or "",
                _fmt_mib(p.limits.memory) if p.limits.memory else "", p.priority,
                _fmt_labels(dict(p.labels)),
            ])
