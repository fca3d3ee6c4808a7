"""An index over free capacity, so a placement looks at a few nodes instead of all of them.

Nodes with the same allocatable cpu and memory form a *class* (real clusters have a handful
of machine shapes). Within a class, each node sits in one cell of a grid over (free cpu, free
memory). The grid is on a logarithmic scale: a node's free fraction, in units of 1/65536, is
binned with ``SUBLEVELS`` bins per octave (bins are 6-12% wide wherever they are). Fine bins
near zero matter most: that is where most nodes of a well-packed cluster sit, and where a
small pod must tell the nodes it fits on from the many it does not.

Bitmasks over rows and over the cells of each row let a search jump straight to the next
occupied cell (``m & -m`` finds the lowest set bit in one C-level operation), so empty cells
cost nothing. Nodes whose free capacity equals their allocatable (no requests at all) are
kept out of the grid in a per-class ``empty`` set: "open a new node" is a separate decision.

Cordoned nodes are not indexed at all: they can never receive a pod.

Mixed fleets have pods that only the bigger shapes can hold. The index counts them (per node
and per *home*, the smallest shape that fits them) and, for a shape a strategy *watches*,
how many of its nodes hold no such pod yet still have room for one: a strategy that keeps
big machines for big pods needs that count on every placement, and a scan would cost what
the index is there to save.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scheduler.state import ClusterState

__all__ = ["EMPTY", "NOT_INDEXED", "SCALE", "FreeIndex", "NodeClass", "grid_tables"]

#: Free fractions are measured in units of 1/SCALE of a node's allocatable.
SCALE = 1 << 16
#: Bins per doubling of the free fraction.
SUBLEVELS = 8

#: ``FreeIndex.where`` value of a node in its class's ``empty`` set.
EMPTY = -2
#: ``FreeIndex.where`` value of a node that is not indexed (cordoned).
NOT_INDEXED = -1


def grid_tables(sublevels: int = SUBLEVELS) -> tuple[list[int], list[int]]:
    """``(level_of, low)``: the bin of each scaled free amount 0..SCALE, and each bin's floor.

    Amounts below ``sublevels`` get a bin each; above, each octave splits into ``sublevels``
    equal bins. ``low`` has one extra entry (SCALE + 1) so ``low[i + 1]`` bounds bin ``i``.
    """
    shift = sublevels.bit_length() - 1
    if sublevels < 1 or 1 << shift != sublevels:
        raise ValueError(f"sublevels: must be a power of two, got {sublevels}")
    level_of = [0] * (SCALE + 1)
    low: list[int] = []
    for g in range(SCALE + 1):
        if g < sublevels:
            lv = g
        else:
            bl = g.bit_length()
            lv = sublevels * (bl - shift) + ((g >> (bl - shift - 1)) & (sublevels - 1))
        level_of[g] = lv
        if lv == len(low):
            low.append(g)
    low.append(SCALE + 1)
    return level_of, low


_TABLES: dict[int, tuple[list[int], list[int]]] = {}


class NodeClass:
    """All indexed nodes of one (allocatable cpu, allocatable memory) shape."""

    __slots__ = ("cap_cpu", "cap_mem", "cells", "empty", "homed", "members", "roomy", "rowmask",
                 "rows", "size", "watch_cpu", "watch_mem")

    def __init__(self, cap_cpu: int, cap_mem: int, levels: int) -> None:
        self.cap_cpu = cap_cpu
        self.cap_mem = cap_mem
        #: Relative size, used to order classes when a new node must be opened.
        self.size = 0.0
        self.members: list[int] = []
        # cells[i * (levels + 1) + j] -> ordered set of node numbers (dict keys keep insertion
        # order, which keeps every search deterministic).
        self.cells: list[dict[int, None]] = [{} for _ in range((levels + 1) * (levels + 1))]
        self.rowmask: list[int] = [0] * (levels + 1)
        self.rows = 0
        self.empty: dict[int, None] = {}
        #: Bound pods whose home this shape is (the smallest shape that fits them, counted
        #: only for pods that do not fit every shape), wherever they run.
        self.homed = 0
        #: The room a strategy watches for (see ``FreeIndex.watch``); -1: not watched.
        self.watch_cpu = -1
        self.watch_mem = -1
        #: Indexed members with no large pod and at least the watched room free.
        self.roomy = 0


class FreeIndex:
    """Maintains, for every indexed node, its class and grid cell as free capacity changes."""

    def __init__(self, state: ClusterState, sublevels: int = SUBLEVELS) -> None:
        if sublevels not in _TABLES:
            _TABLES[sublevels] = grid_tables(sublevels)
        #: Bin of each scaled free amount, and the floor of each bin (scaled).
        self.level_of, self.low = _TABLES[sublevels]
        self.sublevels = sublevels
        levels = len(self.low) - 2  # the highest bin number
        self.levels = levels
        self.stride = levels + 1
        self._state = state
        self.classes: list[NodeClass] = []
        by_shape: dict[tuple[int, int], NodeClass] = {}
        self.class_of: list[int] = []
        self.where: list[int] = []
        for n, cap in enumerate(state.cap):
            shape = (cap.cpu_m, cap.memory)
            cls = by_shape.get(shape)
            if cls is None:
                cls = by_shape[shape] = NodeClass(cap.cpu_m, cap.memory, levels)
                self.classes.append(cls)
            cls.members.append(n)
            self.class_of.append(self.classes.index(cls))
            self.where.append(NOT_INDEXED)
        big_cpu = max((c.cap_cpu for c in self.classes), default=1) or 1
        big_mem = max((c.cap_mem for c in self.classes), default=1) or 1
        for cls in self.classes:
            cls.size = cls.cap_cpu / big_cpu + cls.cap_mem / big_mem
        #: Classes from the largest machines to the smallest; ties keep first-seen order.
        self.largest_first: list[NodeClass] = sorted(self.classes, key=lambda c: -c.size)
        self._smallest_first = self.largest_first[::-1]
        #: A pod within both of these fits every shape; only larger pods are counted.
        self.common_cpu = min((c.cap_cpu for c in self.classes), default=0)
        self.common_mem = min((c.cap_mem for c in self.classes), default=0)
        #: Pods on each node that do not fit every shape, and whether the node is roomy.
        self.large_on: list[int] = [0] * len(state.cap)
        self.is_roomy: list[bool] = [False] * len(state.cap)
        for n in range(len(state.cap)):
            if not state.nodes[n].cordoned:
                self.moved(n)

    def home(self, cpu_m: int, memory: int) -> NodeClass | None:
        """The smallest shape that fits a request, or None if every shape does (or none)."""
        if cpu_m <= self.common_cpu and memory <= self.common_mem:
            return None
        for cls in self._smallest_first:
            if cpu_m <= cls.cap_cpu and memory <= cls.cap_mem:
                return cls
        return None

    def large(self, cpu_m: int, memory: int, node: int, delta: int) -> None:
        """Count (delta=1) or uncount (-1) a pod that does not fit every shape, on ``node``.

        Called by the state before it re-files the node, so ``moved`` sees the new count.
        """
        self.large_on[node] += delta
        home = self.home(cpu_m, memory)
        if home is not None:
            home.homed += delta

    def watch(self, cls: NodeClass, cpu_m: int, memory: int) -> None:
        """Keep ``cls.roomy``: members with no large pod and at least this room free."""
        if (cls.watch_cpu, cls.watch_mem) == (cpu_m, memory):
            return
        cls.watch_cpu, cls.watch_mem = cpu_m, memory
        cls.roomy = 0
        st = self._state
        for n in cls.members:
            ok = (self.where[n] != NOT_INDEXED and not self.large_on[n]
                  and st.free_cpu[n] >= cpu_m and st.free_mem[n] >= memory)
            self.is_roomy[n] = ok
            cls.roomy += ok

    def level(self, free: int, cap: int) -> int:
        """The grid bin of ``free`` out of ``cap``; zero capacity counts as all free."""
        if cap <= 0:
            return self.levels
        return self.level_of[max(0, free) * SCALE // cap]

    def moved(self, node: int) -> None:
        """Re-file ``node`` after its free capacity changed (cheap when its cell did not)."""
        st = self._state
        if st.nodes[node].cordoned:
            return
        cls = self.classes[self.class_of[node]]
        fc = st.free_cpu[node]
        fm = st.free_mem[node]
        if cls.watch_cpu >= 0:
            ok = not self.large_on[node] and fc >= cls.watch_cpu and fm >= cls.watch_mem
            if ok is not self.is_roomy[node]:
                self.is_roomy[node] = ok
                cls.roomy += 1 if ok else -1
        if fc == cls.cap_cpu and fm == cls.cap_mem:
            new = EMPTY
        else:
            level_of = self.level_of
            i = level_of[fc * SCALE // cls.cap_cpu] if cls.cap_cpu > 0 else self.levels
            j = level_of[fm * SCALE // cls.cap_mem] if cls.cap_mem > 0 else self.levels
            new = i * self.stride + j
        old = self.where[node]
        if old == new:
            return
        if old == EMPTY:
            del cls.empty[node]
        elif old >= 0:
            cell = cls.cells[old]
            del cell[node]
            if not cell:
                i, j = divmod(old, self.stride)
                cls.rowmask[i] &= ~(1 << j)
                if not cls.rowmask[i]:
                    cls.rows &= ~(1 << i)
        if new == EMPTY:
            cls.empty[node] = None
        else:
            cell = cls.cells[new]
            if not cell:
                i, j = divmod(new, self.stride)
                cls.rowmask[i] |= 1 << j
                cls.rows |= 1 << i
            cell[node] = None
        self.where[node] = new

    def drop(self, node: int) -> None:
        """Take ``node`` out of the index (it was cordoned)."""
        cls = self.classes[self.class_of[node]]
        if self.is_roomy[node]:
            self.is_roomy[node] = False
            cls.roomy -= 1
        old = self.where[node]
        if old == EMPTY:
            del cls.empty[node]
        elif old >= 0:
            cell = cls.cells[old]
            del cell[node]
            if not cell:
                i, j = divmod(old, self.stride)
                cls.rowmask[i] &= ~(1 << j)
                if not cls.rowmask[i]:
                    cls.rows &= ~(1 << i)
        self.where[node] = NOT_INDEXED
