"""Draw a report's figures side by side, one process per core.

A report's figures are independent, and matplotlib draws on one core: the
five figures of a 15-job sweep took most of the report's seconds. Each figure
is drawn in a forked worker (it inherits the report's tables, nothing is pickled
but the figure's index and the one-line error), and saved by the worker, whole
(``initlab.figures.style.save`` writes into the report's temp folder). Without ``fork`` (macOS's
and Windows' default) or with one core, they are drawn one after the other.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from matplotlib.figure import Figure

from initlab.figures.style import save

#: (name, make the figure, where to save it): what the forked workers draw
Task = tuple[str, Callable[[], Figure], Path]
_TASKS: list[Task] = []


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _draw(index: int) -> str | None:
    """Draw and save task ``index``; the error as one line, or None."""
    _, make, path = _TASKS[index]
    try:
        save(make(), path)
    except Exception as exc:  # noqa: BLE001  one odd figure must not cost the report
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def draw_all(tasks: Sequence[Task], workers: int | None = None) -> list[str | None]:
    """Draw every task (in parallel where it can); per task its error line or None."""
    global _TASKS
    workers = min(len(tasks), cores() if workers is None else workers)
    _TASKS = list(tasks)
    try:
        if workers >= 2 and "fork" in multiprocessing.get_all_start_methods():
            try:
                context = multiprocessing.get_context("fork")
                with ProcessPoolExecutor(workers, mp_context=context) as pool:
                    return list(pool.map(_draw, range(len(tasks))))
            except (BrokenProcessPool, OSError):  # a worker died (memory): draw them here
                pass
        return [_draw(i) for i in range(len(tasks))]
    finally:
        _TASKS = []
