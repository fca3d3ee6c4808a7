"""Scoring strategies, each with an index-driven search that finds its best node.

A strategy answers two questions: ``score`` (how good is this feasible node, higher is
better; a pure function used by tests and explanations) and ``select`` (which feasible node
scores best; must agree with ``score`` but may use the free-capacity index to look at a few
nodes only). The searches prune with bounds: a grid cell whose best possible score cannot
beat the best node found so far is never opened.

- ``BinPack`` (default): Nomad's BestFit form over cpu and memory. The cost of a node is
  ``sum_d w_d * (B**slack_d - 1) / (B - 1)`` where ``slack_d`` is the free fraction left after
  the pod lands; B=10 is Nomad's ``20 - (10^cpu + 10^mem)``. The convex form prefers nodes
  left with *balanced* leftovers, so cpu is not stranded on nodes whose memory is gone. Nodes
  already running pods are preferred to opening an empty one; which empty node to open is a
  separate rule (largest class first: fewer, bigger nodes). On mixed fleets big machines are
  kept for the pods only they can hold, in proportion to how many of those run (see
  ``BinPack``), since a small pod there can strand a big one for good.
- ``Spread``: the mirror image, most free capacity left (least allocated), exact scores.
- ``LeastAllocated`` / ``MostAllocated``: Kubernetes' NodeResourcesFit scoring as
  kube-scheduler computes it (integer 0-100 per resource, weighted integer mean) and its
  tie rule (uniform choice among the best, here from a seeded generator). They are here to
  be compared with, one pod at a time, exactly as Kubernetes would place.
"""

from __future__ import annotations

import abc
import math
import random
from collections.abc import Callable, Mapping

from scheduler.errors import InvalidSpec
from scheduler.filters import same_on_empty_nodes
from scheduler.index import SCALE, FreeIndex, NodeClass
from scheduler.model import Pod
from scheduler.state import ClusterState

__all__ = [
    "STRATEGIES",
    "BinPack",
    "LeastAllocated",
    "MostAllocated",
    "Spread",
    "Strategy",
    "make_strategy",
]

Check = Callable[[int], bool] | None
_INF = float("inf")
#: BinPack's ways of keeping big machines for big pods (see ``BinPack``).
KEEP_BIG = ("demand", "seen", "never")
#: Adaptive binpacking: how sharply the scarcer resource gains weight, and the most it gains.
ADAPT_POWER = 20.0
ADAPT_MAX = 4.0


def _weights(weights: Mapping[str, float] | None) -> tuple[float, float]:
    w = dict(weights or {"cpu": 1.0, "memory": 1.0})
    unknown = set(w) - {"cpu", "memory"}
    if unknown:
        raise InvalidSpec(f"weights: only cpu and memory are scored, got {sorted(unknown)}")
    wc, wm = float(w.get("cpu", 0.0)), float(w.get("memory", 0.0))
    if wc < 0 or wm < 0 or wc + wm <= 0:
        raise InvalidSpec(f"weights: must be >= 0 and not all zero, got cpu={wc} memory={wm}")
    return wc, wm


def _start_levels(idx: FreeIndex, cls: NodeClass, rc: int, rm: int) -> tuple[int, int]:
    """Grid bins below which no node of ``cls`` can hold the request (it fits the class)."""
    level_of = idx.level_of
    i0 = level_of[rc * SCALE // cls.cap_cpu] if cls.cap_cpu > 0 else 0
    j0 = level_of[rm * SCALE // cls.cap_mem] if cls.cap_mem > 0 else 0
    return i0, j0


class Strategy(abc.ABC):
    """How to rank the nodes that can take a pod."""

    name: str = ""

    def reset(self, seed: int) -> None:  # noqa: B027 - most strategies are deterministic
        """Re-seed any tie-breaking randomness so runs with the same seed repeat."""

    @abc.abstractmethod
    def score(self, state: ClusterState, node: int, pod: Pod) -> float:
        """How much this strategy likes ``node`` for ``pod`` (higher is better)."""

    @abc.abstractmethod
    def select(self, state: ClusterState, pod: Pod, ok: Check) -> int | None:
        """The chosen node among those with room that pass ``ok``, or None when none does."""


class BinPack(Strategy):
    """Best fit on the free capacity left after placement, Nomad's BestFit form.

    ``base`` sets the curvature (10 is Nomad's; larger prefers balanced leftovers more).
    ``open_largest`` chooses which empty node to open when no running node has room: the
    largest machine shape first (fewest nodes) or the smallest (keep big machines free).
    ``adaptive`` weighs the cluster's scarcer resource more (see ``weights_now``).

    ``keep_big`` says how machines are kept for pods that only they can hold (*large* pods;
    their *home* is the smallest shape that fits them), which matters on mixed fleets:

    - ``demand`` (default): a home shape keeps a reserve of *roomy* nodes, nodes with no
      large pod and room for the smallest large pod seen, sized on the large pods running:
      ``ceil(reserve_growth * running) + reserve_margin``. Other pods may use a roomy node
      only while the reserve has more than that (best fit still picks the node); when
      they need a new node they open the next shape down first, then the home shape's
      surplus, then smaller shapes. Roomy nodes include those a large pod has left, so the
      reserve refills as large pods come and go. The reserve is a forecast: the large pods
      still to come are not known, so ``reserve_growth`` says how much their number may
      grow from now (1.0: double). Too little strands large pods for good, too much leaves
      big machines idle; 0.5 is the least that left no large pod unplaced on the mixed
      synthetic trace, seeds 0-9 (docs/scheduler.md has the numbers for other values).
    - ``seen``: once a large pod has been seen, its home is opened for other pods only as a
      last resort (nodes it has left are not protected).
    - ``never``: largest machines first, whatever comes later: fewest nodes, but big pods
      strand unless room is made for them by moving small pods (see ``plan_make_room``).
    """

    name = "binpack"
    _reserved: set[int]
    _reserved_for: object
    _need: dict[tuple[int, int], tuple[int, int]]
    _watched: tuple[object, int]

    def __init__(
        self,
        weights: Mapping[str, float] | None = None,
        *,
        base: float = 10.0,
        open_largest: bool = True,
        adaptive: bool = True,
        keep_big: str = "demand",
        reserve_growth: float = 0.5,
        reserve_margin: int = 2,
    ) -> None:
        if base <= 1.0:
            raise InvalidSpec(f"binpack.base: must be > 1, got {base}")
        self.wc, self.wm = _weights(weights)
        self.base = base
        self.open_largest = open_largest
        self.adaptive = adaptive
        if keep_big not in KEEP_BIG:
            raise InvalidSpec(f"binpack.keep_big: must be one of {', '.join(KEEP_BIG)}, "
                              f"got {keep_big!r}")
        self.keep_big = keep_big
        if reserve_growth < 0 or reserve_margin < 0:
            raise InvalidSpec("binpack.reserve_growth and reserve_margin: must be >= 0")
        self.reserve_growth = reserve_growth
        self.reserve_margin = reserve_margin
        self._power_cache: dict[int, list[float]] = {}
        self.reset(0)
        total = self.wc + self.wm
        self._kc = self.wc / total / (base - 1.0)
        self._km = self.wm / total / (base - 1.0)

    def weights_now(self, state: ClusterState) -> tuple[float, float]:
        """The cost weights (cpu, memory) for the cluster as it is now.

        With ``adaptive``, the scarcer resource cluster-wide weighs more, smoothly: the ratio
        of requested shares to the power ``ADAPT_POWER``, clamped to ``ADAPT_MAX``. The
        lower bound on nodes is set by the scarcer resource, so leaving slivers of *it*
        unused is what costs machines; slivers of the plentiful one are nearly free.
        """
        kc, km = self._kc, self._km
        if not self.adaptive or not state.total_cpu or not state.total_mem:
            return kc, km
        rho_c = state.requested_cpu / state.total_cpu
        rho_m = state.requested_mem / state.total_mem
        if rho_c <= 0 or rho_m <= 0:
            return kc, km
        tilt = min(ADAPT_MAX, max(1.0 / ADAPT_MAX, (rho_c / rho_m) ** ADAPT_POWER))
        return kc * tilt, km

    def cost(self, slack_cpu: float, slack_mem: float,
             weights: tuple[float, float] | None = None) -> float:
        """The cost of leaving these free fractions (0 = node exactly full); lower is better."""
        kc, km = weights if weights is not None else (self._kc, self._km)
        b = self.base
        cost: float = kc * (b**slack_cpu - 1.0) + km * (b**slack_mem - 1.0)
        return cost

    def score(self, state: ClusterState, node: int, pod: Pod) -> float:
        """``100 * (1 - cost)``: 100 for a pod that fills the node exactly, lower for worse."""
        cap = state.cap[node]
        sc = (state.free_cpu[node] - pod.requests.cpu_m) / cap.cpu_m if cap.cpu_m else 0.0
        sm = (state.free_mem[node] - pod.requests.memory) / cap.memory if cap.memory else 0.0
        return 100.0 * (1.0 - self.cost(sc, sm, self.weights_now(state)))

    def select(self, state: ClusterState, pod: Pod, ok: Check) -> int | None:
        """Best-fit over running nodes via the grid; if none has room, open an empty one."""
        if self.keep_big == "demand":
            return self._select_demand(state, pod, ok)
        best = self.best_running(state, pod, ok)
        if best is not None:
            return best
        return self.open_node(state, pod, ok)

    # -- keep_big="demand" -----------------------------------------------------------------

    def reserve_target(self, cls: NodeClass) -> int:
        """Roomy nodes a home shape keeps for the large pods still to come."""
        return math.ceil(self.reserve_growth * cls.homed) + self.reserve_margin

    def _select_demand(self, state: ClusterState, pod: Pod, ok: Check) -> int | None:
        idx = state.index
        rc, rm = pod.requests.cpu_m, pod.requests.memory
        home = idx.home(rc, rm) if rc > idx.common_cpu or rm > idx.common_mem else None
        if home is not None:
            self._note_need(idx, home, rc, rm)
            best = self.best_running(state, pod, ok)
            if best is not None:
                return best
            return self._open_home(idx, rc, rm, ok)
        if not self._need:  # no large pods seen: plain best fit, largest machines first
            best = self.best_running(state, pod, ok)
            return best if best is not None else self.open_node(state, pod, ok)
        self._watch_all(idx)
        best = self.best_running(state, pod, ok)
        if best is not None and idx.is_roomy[best]:
            if not self._surplus(idx.classes[idx.class_of[best]]):
                # Taking this node would spend the reserve: look again without the roomy
                # nodes of shapes that have none to spare.
                roomy, class_of = idx.is_roomy, idx.class_of
                short = {i for i, c in enumerate(idx.classes)
                         if c.watch_cpu >= 0 and not self._surplus(c)}

                def spare(n: int) -> bool:
                    return not (roomy[n] and class_of[n] in short) and (ok is None or ok(n))

                best = self.best_running(state, pod, spare)
        if best is not None:
            return best
        return self._open_other(idx, rc, rm, ok)

    def _surplus(self, cls: NodeClass) -> bool:
        return cls.roomy > self.reserve_target(cls)

    def _note_need(self, idx: FreeIndex, home: NodeClass, rc: int, rm: int) -> None:
        """Remember the smallest large pod per home: a roomy node must fit at least that."""
        shape = (home.cap_cpu, home.cap_mem)
        old = self._need.get(shape)
        need = (rc, rm) if old is None else (min(old[0], rc), min(old[1], rm))
        if need != old:
            self._need[shape] = need
            self._watched = (None, 0)  # every index must re-count its roomy nodes
        self._watch_all(idx)

    def _watch_all(self, idx: FreeIndex) -> None:
        """Make ``idx`` count roomy nodes for every home seen (once per index and change)."""
        if self._watched[0] is idx and self._watched[1] == len(self._need):
            return
        for cls in idx.classes:
            need = self._need.get((cls.cap_cpu, cls.cap_mem))
            if need is not None:
                idx.watch(cls, *need)
        self._watched = (idx, len(self._need))

    def _open_home(self, idx: FreeIndex, rc: int, rm: int, ok: Check) -> int | None:
        """A large pod opens its home shape first, then the larger ones, smallest first."""
        for cls in reversed(idx.largest_first):
            if rc <= cls.cap_cpu and rm <= cls.cap_mem:
                n = self._first_empty(cls, ok)
                if n is not None:
                    return n
        return None

    def _open_other(self, idx: FreeIndex, rc: int, rm: int, ok: Check) -> int | None:
        """An empty node for a pod that fits every shape it could open, reserves kept.

        Largest shape first, except that a home shape comes after the next shape down: its
        surplus is committed to small pods as late as possible, when more of the large pods'
        demand has shown itself. A home shape with no surplus comes last of all.
        """
        order: list[NodeClass] = []
        waiting: list[NodeClass] = []
        for cls in idx.largest_first:
            if rc > cls.cap_cpu or rm > cls.cap_mem:
                continue
            if cls.watch_cpu >= 0:
                waiting.append(cls)
            else:
                order.append(cls)
                order.extend(waiting)
                waiting = []
        order.extend(waiting)
        last: list[NodeClass] = []
        for cls in order:
            if cls.watch_cpu >= 0 and not self._surplus(cls):
                last.append(cls)
                continue
            n = self._first_empty(cls, ok)
            if n is not None:
                return n
        for cls in last:
            n = self._first_empty(cls, ok)
            if n is not None:
                return n
        return None

    def best_running(self, state: ClusterState, pod: Pod, ok: Check) -> int | None:
        """The best-fitting node that already has requests on it, or None.

        Used alone by rebalancing, where moving a pod onto an empty node would defeat the
        purpose.
        """
        r = pod.requests
        rc, rm = r.cpu_m, r.memory
        idx = state.index
        glow = self._powers(idx.low)
        stride = idx.stride
        fc, fm = state.free_cpu, state.free_mem
        b = self.base
        kc, km = self.weights_now(state)
        # Costs are compared without their constant "- 1" terms: kc*b**x + km*b**y.
        best = -1
        best_cost = _INF
        for cls in idx.classes:
            cap_c, cap_m = cls.cap_cpu, cls.cap_mem
            if rc > cap_c or rm > cap_m or not cls.rows:
                continue
            i0, j0 = _start_levels(idx, cls, rc, rm)
            inv_c = 1.0 / cap_c if cap_c else 0.0
            inv_m = 1.0 / cap_m if cap_m else 0.0
            # The request is below low[i0 + 1] and a node in row i has at least low[i], so
            # b**slack is at least b**low[i] / b**low[i0 + 1] (scaled); likewise for columns.
            kc_row = kc / glow[i0 + 1] if cap_c else 0.0
            km_col = km / glow[j0 + 1] if cap_m else 0.0
            first_c = i0 + 1
            first_m = j0 + 1
            cells = cls.cells
            rowmask = cls.rowmask
            rows = cls.rows >> i0
            i = i0 - 1
            while rows:
                step = (rows & -rows).bit_length()
                i += step
                rows >>= step
                lbc = kc_row * glow[i] if i > first_c else kc
                if lbc + km >= best_cost:
                    break
                cols = rowmask[i] >> j0
                j = j0 - 1
                base_cell = i * stride
                while cols:
                    step = (cols & -cols).bit_length()
                    j += step
                    cols >>= step
                    if lbc + (km_col * glow[j] if j > first_m else km) >= best_cost:
                        break
                    for n in cells[base_cell + j]:
                        sc = fc[n] - rc
                        if sc < 0:
                            continue
                        sm = fm[n] - rm
                        if sm < 0:
                            continue
                        cost = kc * b ** (sc * inv_c) + km * b ** (sm * inv_m)
                        if cost < best_cost and (ok is None or ok(n)):
                            best_cost = cost
                            best = n
        return best if best >= 0 else None

    def open_node(self, state: ClusterState, pod: Pod, ok: Check) -> int | None:
        """An empty node for ``pod``: the largest machine shape first, but big ones kept back.

        Bigger machines mean fewer machines. But with ``keep_big="seen"``, once a pod has
        been seen that fits no smaller shape than some shape, that shape is opened for pods
        that fit elsewhere only as a last resort: otherwise small pods fill every big
        machine and the big pods that come later find no home (stranded, which is worse than
        one more node).
        """
        rc, rm = pod.requests.cpu_m, pod.requests.memory
        order = state.index.largest_first
        if not self.open_largest:
            order = order[::-1]
        fitting = [c for c in order if rc <= c.cap_cpu and rm <= c.cap_mem]
        if not fitting:
            return None
        if self.keep_big == "seen" and self.open_largest:
            if state.index is not self._reserved_for:
                self._reserved, self._reserved_for = set(), state.index
            home = fitting[-1]  # the smallest shape this pod fits
            if len(fitting) < len(order):
                self._reserved.add(id(home))
            for cls in fitting:
                if cls is not home and id(cls) in self._reserved:
                    continue
                n = self._first_empty(cls, ok)
                if n is not None:
                    return n
        for cls in fitting:
            n = self._first_empty(cls, ok)
            if n is not None:
                return n
        return None

    def _powers(self, low: list[int]) -> list[float]:
        """``base ** (low[i] / SCALE)`` per grid level, computed once per grid."""
        table = self._power_cache.get(id(low))
        if table is None:
            table = [self.base ** (x / SCALE) for x in low[:-1]]
            table.append(table[-1] * self.base)  # past the top: any bound that stops search
            self._power_cache[id(low)] = table
        return table

    @staticmethod
    def _first_empty(cls: NodeClass, ok: Check) -> int | None:
        for n in cls.empty:
            if ok is None or ok(n):
                return n
        return None

    def reset(self, seed: int) -> None:
        """Forget which machine shapes are kept back for the pods only they can hold."""
        self._reserved = set()
        self._reserved_for = None
        self._need = {}
        self._watched = (None, 0)


class Spread(Strategy):
    """Least allocated with exact scores: the node left with the most free capacity.

    Deterministic ties (first found), unlike ``LeastAllocated``; for workloads that want
    headroom on every node rather than fewer nodes.
    """

    name = "spread"

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        wc, wm = _weights(weights)
        self.kc, self.km = wc / (wc + wm), wm / (wc + wm)

    def score(self, state: ClusterState, node: int, pod: Pod) -> float:
        """Weighted mean free fraction after placement, times 100."""
        cap = state.cap[node]
        fc = (state.free_cpu[node] - pod.requests.cpu_m) / cap.cpu_m if cap.cpu_m else 1.0
        fm = (state.free_mem[node] - pod.requests.memory) / cap.memory if cap.memory else 1.0
        return 100.0 * (self.kc * fc + self.km * fm)

    def select(self, state: ClusterState, pod: Pod, ok: Check) -> int | None:
        """Empty nodes (one per shape), then the grid from its top rows down."""
        r = pod.requests
        rc, rm = r.cpu_m, r.memory
        idx = state.index
        kc, km = self.kc, self.km
        best = -1
        best_score = -_INF
        for cls in idx.largest_first:
            if rc > cls.cap_cpu or rm > cls.cap_mem or not cls.empty:
                continue
            s = self.score(state, next(iter(cls.empty)), pod)
            if s > best_score:
                for n in cls.empty:
                    if ok is None or ok(n):
                        best, best_score = n, s
                        break
        # A partly used big node can still beat an empty small one, so the grid is searched
        # too; the bound stops it at once in the usual case.
        low = idx.low
        fc, fm = state.free_cpu, state.free_mem
        for cls in idx.classes:
            cap_c, cap_m = cls.cap_cpu, cls.cap_mem
            if rc > cap_c or rm > cap_m or not cls.rows:
                continue
            i0, j0 = _start_levels(idx, cls, rc, rm)
            inv_c = 100.0 / cap_c if cap_c else 0.0
            inv_m = 100.0 / cap_m if cap_m else 0.0
            rows = (cls.rows >> i0) << i0
            best_mem = km * (100.0 - rm * inv_m) if cap_m else km * 100.0
            while rows:
                i = rows.bit_length() - 1
                rows ^= 1 << i
                # Free fraction in row i is below low[i + 1] / SCALE.
                ubc = kc * (100.0 * low[i + 1] / SCALE - rc * inv_c) if cap_c else 100 * kc
                if ubc + best_mem <= best_score:
                    break
                cols = (cls.rowmask[i] >> j0) << j0
                base_cell = i * idx.stride
                while cols:
                    j = cols.bit_length() - 1
                    cols ^= 1 << j
                    ub = ubc + (km * (100.0 * low[j + 1] / SCALE - rm * inv_m)
                                if cap_m else 100 * km)
                    if ub <= best_score:
                        break
                    for n in cls.cells[base_cell + j]:
                        sc = fc[n] - rc
                        sm = fm[n] - rm
                        if sc < 0 or sm < 0:
                            continue
                        s = kc * sc * inv_c + km * sm * inv_m
                        if s > best_score and (ok is None or ok(n)):
                            best, best_score = n, s
        return best if best >= 0 else None


class _KubeFit(Strategy):
    """Kubernetes' NodeResourcesFit scoring: integer scores and a random pick among ties."""

    most: bool = True

    def __init__(self, weights: Mapping[str, int] | None = None, seed: int = 0) -> None:
        wc, wm = _weights(weights)
        if wc != int(wc) or wm != int(wm):
            raise InvalidSpec("weights: Kubernetes resource weights are integers")
        self.wc, self.wm = int(wc), int(wm)
        self.wsum = self.wc + self.wm
        self.rng = random.Random(seed)

    def reset(self, seed: int) -> None:
        """Re-seed the tie-breaker (kube-scheduler's reservoir sampling)."""
        self.rng = random.Random(seed)

    def _int_score(self, cap_c: int, cap_m: int, free_c: int, free_m: int, rc: int,
                   rm: int) -> int:
        if self.most:
            sc = (cap_c - free_c + rc) * 100 // cap_c if cap_c else 0
            sm = (cap_m - free_m + rm) * 100 // cap_m if cap_m else 0
        else:
            sc = (free_c - rc) * 100 // cap_c if cap_c else 0
            sm = (free_m - rm) * 100 // cap_m if cap_m else 0
        return (self.wc * sc + self.wm * sm) // self.wsum

    def score(self, state: ClusterState, node: int, pod: Pod) -> float:
        """kube-scheduler's 0-100 score for this node."""
        cap = state.cap[node]
        return float(self._int_score(cap.cpu_m, cap.memory, state.free_cpu[node],
                                     state.free_mem[node], pod.requests.cpu_m,
                                     pod.requests.memory))

    def select(self, state: ClusterState, pod: Pod, ok: Check) -> int | None:
        """All nodes at the top integer score, then one of them uniformly at random."""
        r = pod.requests
        rc, rm = r.cpu_m, r.memory
        idx = state.index
        low = idx.low
        fc, fm = state.free_cpu, state.free_mem
        best = -1
        ties: list[int] = []
        score = self._int_score
        most = self.most
        uniform = same_on_empty_nodes(state, pod)
        for cls in idx.classes:
            cap_c, cap_m = cls.cap_cpu, cls.cap_mem
            if rc > cap_c or rm > cap_m:
                continue
            if cls.empty:
                s = score(cap_c, cap_m, cap_c, cap_m, rc, rm)
                if s >= best:
                    if uniform:
                        first = next(iter(cls.empty))
                        fits = list(cls.empty) if ok is None or ok(first) else []
                    else:
                        fits = [n for n in cls.empty if ok is None or ok(n)]
                    if fits:
                        if s > best:
                            best, ties = s, fits
                        else:
                            ties.extend(fits)
            if not cls.rows:
                continue
            i0, j0 = _start_levels(idx, cls, rc, rm)
            rows = (cls.rows >> i0) << i0
            while rows:
                if most:  # fullest rows first: lowest free
                    i = (rows & -rows).bit_length() - 1
                else:
                    i = rows.bit_length() - 1
                rows ^= 1 << i
                # Free in row i lies in [ceil(cap*low[i]/SCALE), cap*low[i+1]/SCALE).
                lo_c = -(-cap_c * low[i] // SCALE)
                hi_c = cap_c * low[i + 1] // SCALE
                # Nothing in this row or below can beat the best, whatever its memory: stop.
                loosest = (score(cap_c, cap_m, lo_c, -(-cap_m * low[j0] // SCALE), rc, rm)
                           if most else score(cap_c, cap_m, hi_c, cap_m, rc, rm))
                if loosest < best:
                    break
                cols = (cls.rowmask[i] >> j0) << j0
                if not cols:
                    continue
                # The row's best possible score: its fullest (most) or emptiest (least) cell.
                if most:
                    j_edge = (cols & -cols).bit_length() - 1
                    row_ub = score(cap_c, cap_m, lo_c, -(-cap_m * low[j_edge] // SCALE), rc, rm)
                else:
                    j_edge = cols.bit_length() - 1
                    row_ub = score(cap_c, cap_m, hi_c, cap_m * low[j_edge + 1] // SCALE, rc, rm)
                if row_ub < best:
                    continue  # later rows can still hold better cells in other columns
                base_cell = i * idx.stride
                while cols:
                    if most:
                        j = (cols & -cols).bit_length() - 1
                    else:
                        j = cols.bit_length() - 1
                    cols ^= 1 << j
                    if most:
                        ub = score(cap_c, cap_m, lo_c, -(-cap_m * low[j] // SCALE), rc, rm)
                    else:
                        ub = score(cap_c, cap_m, hi_c, cap_m * low[j + 1] // SCALE, rc, rm)
                    if ub < best:
                        break
                    for n in cls.cells[base_cell + j]:
                        if fc[n] < rc or fm[n] < rm:
                            continue
                        s = score(cap_c, cap_m, fc[n], fm[n], rc, rm)
                        if s >= best and (ok is None or ok(n)):
                            if s > best:
                                best, ties = s, [n]
                            else:
                                ties.append(n)
        if not ties:
            return None
        if len(ties) == 1:
            return ties[0]
        ties.sort()
        return ties[self.rng.randrange(len(ties))]


class MostAllocated(_KubeFit):
    """Kubernetes' MostAllocated: prefer the node whose requests will be highest."""

    name = "most-allocated"
    most = True


class LeastAllocated(_KubeFit):
    """Kubernetes' LeastAllocated (its default): prefer the node with the most left free."""

    name = "least-allocated"
    most = False


#: CLI and config names of the strategies.
STRATEGIES: dict[str, type[Strategy]] = {
    "binpack": BinPack,
    "spread": Spread,
    "least-allocated": LeastAllocated,
    "most-allocated": MostAllocated,
}


def make_strategy(name: str) -> Strategy:
    """A strategy by its CLI name, with default weights."""
    try:
        return STRATEGIES[name]()
    except KeyError:
        raise InvalidSpec(
            f"strategy: must be one of {', '.join(STRATEGIES)}, got {name!r}"
        ) from None
