"""Learning-rate and momentum schedules: constant, and fastai's 1cycle.

fastai's ``fit_one_cycle`` (fastai/callback/schedule.py, after Smith 2018, "A
disciplined approach to neural network hyper-parameters") schedules both by
``combined_cos(pct_start, start, middle, end)``: cosine annealing from start to
middle over the first ``pct_start`` of training, then from middle to end::

    sched_cos(start, end, pos) = start + (1 + cos(pi (1 - pos))) (end - start) / 2
    lr:  combined_cos(pct_start, lr_max / div, lr_max, lr_max / div_final)
    mom: combined_cos(pct_start, *moms)                     # moms = (0.95, 0.85, 0.95)

with fastai's defaults div = 25, div_final = 1e5, pct_start = 0.25. The position of
update ``i`` (0-based) of ``n`` is pos = i / n, fastai's ``pct_train`` at
``before_batch`` (0 for the first batch, (n - 1) / n for the last): the first update
runs at lr_max / 25 and momentum 0.95, update n / 4 at lr_max and 0.85, and the last
just above lr_max / 1e5 (the schedule reaches it at pos = 1).
"""

from __future__ import annotations

import math

import numpy as np

from initlab.train.spec import TrainSpec


def sched_cos(start: float, end: float, pos: float) -> float:
    """Cosine annealing from ``start`` (pos 0) to ``end`` (pos 1): fastai's ``sched_cos``,
    start + (1 + cos(pi (1 - pos))) (end - start) / 2."""
    return start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2


def combined_cos(pct: float, start: float, middle: float, end: float, pos: float) -> float:
    """fastai's ``combined_cos``: ``sched_cos(start, middle)`` over [0, pct), then
    ``sched_cos(middle, end)`` over [pct, 1] (``combine_scheds``' phase choice: pos >= pct
    is the second phase)."""
    if pos < pct:
        return sched_cos(start, middle, pos / pct)
    return sched_cos(middle, end, (pos - pct) / (1 - pct))


def one_cycle(steps: int, lr_max: float, div: float = 25.0, div_final: float = 1e5,
              pct_start: float = 0.25,
              moms: tuple[float, float, float] = (0.95, 0.85, 0.95)
              ) -> tuple[np.ndarray, np.ndarray]:
    """(lr, momentum) of each of ``steps`` updates under fastai's 1cycle policy: update i
    at pos = i / steps of ``combined_cos`` (module docstring)."""
    pos = [i / steps for i in range(steps)]
    lr = [combined_cos(pct_start, lr_max / div, lr_max, lr_max / div_final, p) for p in pos]
    mom = [combined_cos(pct_start, *moms, p) for p in pos]
    return np.asarray(lr), np.asarray(mom)


def schedule(train: TrainSpec) -> tuple[np.ndarray, np.ndarray]:
    """(lr, momentum) per update, shape (steps,) each, for ``train``'s schedule.

    The momentum is the optimizer's (``TrainSpec.beta1``: SGD's momentum, Adam's beta1,
    RMSprop's momentum); ``one_cycle`` replaces it with its cyclic momentum only where
    ``train.cycles_momentum`` (an optimizer without momentum keeps 0, as fastai's
    RMSProp(mom=0) never reads its ``mom``)."""
    n = train.steps
    if train.schedule == "constant":
        return np.full(n, train.lr), np.full(n, train.beta1)
    lr, mom = one_cycle(n, train.lr, train.div, train.div_final, train.pct_start, train.moms)
    return lr, (mom if train.cycles_momentum else np.full(n, train.beta1))
