"""The public surface: ``scheduler.__all__`` lists exactly the public names it exports."""

from __future__ import annotations

import scheduler


def test_all_matches_public_names() -> None:
    modules = {"clock", "errors", "filters", "index", "model", "placement", "preemption",
               "rebalance", "state", "strategies", "simulate"}
    public = {n for n in dir(scheduler) if not n.startswith(("_", "@"))}
    assert set(scheduler.__all__) == public - modules


def test_every_error_is_a_scheduler_error() -> None:
    for name in scheduler.__all__:
        obj = getattr(scheduler, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, scheduler.SchedulerError), name
