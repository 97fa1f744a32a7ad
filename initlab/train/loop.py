"""The training loop shared by the batched chain and models trained trial by trial.

Step s = 0..steps (``initlab.train.spec``: step s is the network after s updates):

1. at an evaluation step, the held-out set's loss and accuracy (no graph; a model in
   ``eval`` mode, so a batchnorm uses its running statistics);
2. the forward and backward pass of training batch s (a model in ``train`` mode);
   its loss and accuracy are kept on the device (no host sync per step);
3. at a recording step, the per-layer statistics of that pass (``net.measure``);
4. for s < steps, update s + 1 with the schedule's s-th learning rate and momentum,
   then ``progress(s + 1, steps)``.

A ``Net`` has ``rows`` (rows of its loss: configs x trials for the chain, 1 for a
model), ``parameters()``, ``forward(x, record)`` -> outputs (rows, batch, k) for the
data rows' batch x, ``measure(step, bufs)`` (after the backward pass of a recording
step), ``evaluate(x)`` -> outputs (rows, n, k) for a held-out chunk shared by every
row, and ``train(mode)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import torch

from initlab.train.data import Dataset, batch_order
from initlab.train.optim import make_optimizer, set_hypers
from initlab.train.record import Buffers, loss_and_accuracy
from initlab.train.schedule import schedule
from initlab.train.spec import TrainSpec

Progress = Callable[[int, int], None]
#: Values (rows x samples x widest layer) one held-out chunk may hold: 2^25 (128 MiB of
#: float32 per layer output).
EVAL_VALUES = 1 << 25


class Net(Protocol):
    rows: int

    def parameters(self) -> list[torch.Tensor]: ...
    def forward(self, x: torch.Tensor, record: bool) -> torch.Tensor: ...
    def measure(self, step: int, bufs: Buffers) -> None: ...
    def evaluate(self, x: torch.Tensor) -> torch.Tensor: ...
    def train(self, mode: bool) -> None: ...


def trial_ids(trials: int | Sequence[int]) -> list[int]:
    """A count T -> trials 0..T-1; a sequence -> those trial indices (a trial's weights and
    batches depend on (seed, trial) only, so ``[5]`` redoes trial 5 alone)."""
    ids = list(range(trials)) if isinstance(trials, int) else [int(t) for t in trials]
    if not ids or min(ids) < 0 or len(set(ids)) != len(ids):
        raise ValueError(f"trials={trials!r} is not allowed; give a count >= 1 or distinct "
                         "trial indices >= 0")
    return ids


def _expand(y: torch.Tensor, rows: int) -> torch.Tensor:
    """Targets of the data rows (d, batch, ...) repeated to the net's rows (configs x d)."""
    return y.repeat(rows // y.shape[0], *([1] * (y.dim() - 1)))


def evaluate(net: Net, data: Dataset, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean held-out loss and accuracy per row, in chunks of at most ``EVAL_VALUES``
    values (``width``: the widest layer)."""
    x, y = data.x_test, data.y_test
    n = len(x)
    chunk = max(1, EVAL_VALUES // max(1, net.rows * width))
    loss = acc = 0.0
    net.train(False)
    try:
        for i in range(0, n, chunk):
            out = net.evaluate(x[i:i + chunk])
            target = y[i:i + chunk].unsqueeze(0).expand(net.rows, *y[i:i + chunk].shape)
            with torch.no_grad():
                l_, a_ = loss_and_accuracy(out, target, data.task)
            m = out.shape[1]
            loss, acc = loss + l_.to(torch.float64) * m, acc + a_ * m
    finally:
        net.train(True)
    return loss / n, acc / n


def run_steps(net: Net, train: TrainSpec, data: Dataset, bufs: Buffers, *,
              trials: list[int], seed: int, width: int, device: torch.device,
              rows: slice = slice(None),
              progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Train ``net`` (module docstring) on ``data`` with the batches of ``trials`` (the data
    rows); fills ``rows`` of ``bufs``' loss and accuracy (the net fills its statistics);
    returns the schedule's (lr, momentum) per update."""
    lr, mom = schedule(train)
    order = batch_order(len(data.x_train), train.batch_size, train.steps + 1, seed,
                        trials).to(device)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    data = Dataset(data.name, x_train, y_train, data.x_test.to(device),
                   data.y_test.to(device), data.task, data.outputs)
    params = net.parameters()
    opt = make_optimizer(params, train)
    recorded, evals = set(bufs.recorded), set(bufs.evals)
    net.train(True)
    for s in range(train.steps + 1):
        if s in evals:
            e = bufs.row_of_eval[s]
            bufs.eval_loss[rows, e], bufs.eval_acc[rows, e] = evaluate(net, data, width)
        idx = order[:, s]
        record = s in recorded
        out = net.forward(x_train[idx], record)
        loss, acc = loss_and_accuracy(out, _expand(y_train[idx], net.rows), data.task)
        with torch.no_grad():
            bufs.train_loss[rows, s] = loss.detach()
            bufs.train_acc[rows, s] = acc
        for p in params:
            p.grad = None
        loss.sum().backward()
        if record:
            net.measure(s, bufs)
        if s < train.steps:
            set_hypers(opt, lr[s], mom[s])
            opt.step()
            if progress is not None:
                progress(s + 1, train.steps)
    return lr, mom
