"""What a training run records: ``TrainingRecord`` (plain NumPy), the buffers that fill it,
the near-zero statistic and the training verdict.

Per (trial, recorded step, layer), fastai's ``ActivationStats`` over training
(fastai/callback/hook.py), with initlab's init-time statistics: every statistic of
``initlab.stats.STATS`` (mean, std, ..., reduced in float64 by ``layer_stats``, the
function the init-time measurement uses), ``near_zero`` (below) and the gradient
columns of the init-time table (``grad_x_mean/std``: dL/dx of the layer's output,
``grad_w_mean/std``: dL/dW of the layer's weight, NaN where a layer has none; both by
``mean_std``), plus a log10|x| histogram per recorded step and layer, summed over
trials (``log_histogram``, fixed bins ``hist_edges``; fastai's ``color_dim`` stacks
its per-batch histograms, which it takes of raw values in [0, 10]). L is the training
loss: the mean over the batch of cross-entropy (or squared error), summed over the
trials of a batched run, so each trial's gradient is its own; the probe's backward pass
starts from g ~ N(0, I) instead, so only forward statistics compare with it.

Layer 0 is the training batch; layer l >= 1 the l-th recorded output (the chain: the
post-activation signal of layer l, the last layer's logits; a model: each hooked
module's output, as ``initlab.probe`` hooks it).

``near_zero``: the fraction of values with |x| <= ``TrainSpec.near_zero`` (0.05).
fastai's hook computes ``(o<=0.05).long().sum()/o.numel()``, signed: the same number
for a non-negative signal (the chapter's ReLU outputs), but for a signed one
(tanh, a convolution's output) fastai's counts every negative value too, which says
nothing about being near zero; initlab counts |x|.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from initlab.columns import GRAD_STATS, STATS

#: Per-layer statistics of a recorded step: the init-time ones, then near_zero.
RECORDED = (*STATS, "near_zero")
GRADS = GRAD_STATS
VERDICTS = ("trained", "did not train")


def near_zero_fraction(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """Fraction of values with |x| <= threshold per trial: (trials, width, columns) ->
    (trials,) float64, compared in float64 (NaN counts as not near zero)."""
    x = x.to(torch.float64)
    count = x[0].numel()
    return (x.abs() <= threshold).sum(dim=(1, 2)).to(torch.float64) / count


@dataclass
class TrainingRecord:
    """One config's training run over ``trials`` trials (plain NumPy, no pandas).

    ``stats[name]``/``grads[name]``: (trials, R, layers + 1) at ``steps_recorded`` (R,);
    ``hist``: (R, layers + 1, 2 + bins) counts summed over trials ([zeros, non-finite,
    bins...] with ``initlab.stats.hist_edges(hist_dtype)``), None without histograms;
    ``train_loss``/``train_acc``: (trials, steps + 1), the training batch of step s
    (after s updates); ``eval_loss``/``eval_acc``: (trials, E) on the held-out set at
    ``eval_steps`` (E,); ``lr``/``momentum``: (steps,) the value of each update.
    Accuracy is NaN on a regression task; ``chance`` is the held-out share of the most
    frequent class.
    """

    layer_names: list[str]
    layer_types: list[str]
    steps: int
    steps_recorded: np.ndarray
    stats: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]
    hist: np.ndarray | None
    hist_dtype: str
    train_loss: np.ndarray
    train_acc: np.ndarray
    eval_steps: np.ndarray
    eval_loss: np.ndarray
    eval_acc: np.ndarray
    lr: np.ndarray
    momentum: np.ndarray
    task: str
    chance: float
    pass_fraction: float
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def trials(self) -> int:
        return self.train_loss.shape[0]

    def trained(self) -> np.ndarray:
        """Per trial, whether it trained (``initlab.train.spec`` docstring): held-out
        accuracy after the last update >= chance + pass_fraction (1 - chance); for
        regression, held-out loss <= (1 - pass_fraction) x its step-0 value. NaN fails."""
        f = self.pass_fraction
        if self.task == "classify":
            acc = self.eval_acc[:, -1]
            return np.nan_to_num(acc, nan=-1.0) >= self.chance + f * (1 - self.chance)
        last, first = self.eval_loss[:, -1], self.eval_loss[:, 0]
        return np.nan_to_num(last, nan=np.inf) <= (1 - f) * first

    def verdict(self) -> str:
        """``trained`` when the median trial passes the bar of ``trained`` (the median over
        trials of the final held-out accuracy, or of the held-out loss's ratio to its
        step-0 value; with an even count of trials the mean of the middle two), else ``did
        not train``. With 2 trials of 0.32 and 0.53 against a bar of 0.55: did not train."""
        f = self.pass_fraction
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.task == "classify":
                acc = np.median(np.nan_to_num(self.eval_acc[:, -1], nan=-1.0))
                ok = acc >= self.chance + f * (1 - self.chance)
            else:
                ratio = np.nan_to_num(self.eval_loss[:, -1] / self.eval_loss[:, 0], nan=np.inf)
                ok = np.median(ratio) <= 1 - f
        return VERDICTS[0] if ok else VERDICTS[1]

    def summary(self) -> dict[str, Any]:
        """Final held-out loss and accuracy (median, 10 % and 90 % over trials), verdict."""
        out: dict[str, Any] = {"verdict": self.verdict(),
                               "trained_trials": int(self.trained().sum()),
                               "trials": self.trials, "chance": self.chance}
        for name, values in (("loss", self.eval_loss[:, -1]), ("acc", self.eval_acc[:, -1])):
            q10, q50, q90 = np.quantile(values, [0.1, 0.5, 0.9])
            out.update({f"final_eval_{name}": float(q50), f"final_eval_{name}_q10": float(q10),
                        f"final_eval_{name}_q90": float(q90)})
        return out


class Buffers:
    """Device-side arrays of a run of ``rows`` trials (a batched group's configs x trials),
    filled step by step and read back once (``records``): no host sync per step."""

    def __init__(self, rows: int, configs: int, steps: int, recorded: list[int],
                 evals: list[int], layers: int, hist_bins: int | None,
                 device: torch.device) -> None:
        f64 = dict(dtype=torch.float64, device=device)
        nan = float("nan")
        self.rows, self.layers = rows, layers
        self.row_of_step = {s: i for i, s in enumerate(recorded)}
        self.row_of_eval = {s: i for i, s in enumerate(evals)}
        self.recorded, self.evals = recorded, evals
        shape = (rows, len(recorded), layers)
        self.stats = {n: torch.full(shape, nan, **f64) for n in RECORDED}
        self.grads = {n: torch.full(shape, nan, **f64) for n in GRADS}
        self.hist = (None if hist_bins is None else torch.zeros(
            (configs, len(recorded), layers, hist_bins), dtype=torch.int64, device=device))
        self.train_loss = torch.full((rows, steps + 1), nan, **f64)
        self.train_acc = torch.full((rows, steps + 1), nan, **f64)
        self.eval_loss = torch.full((rows, len(evals)), nan, **f64)
        self.eval_acc = torch.full((rows, len(evals)), nan, **f64)

    def put_layers(self, step: int, rows: slice, first: int, stats: dict[str, torch.Tensor],
                   grads: dict[str, torch.Tensor]) -> None:
        """``stats``/``grads``: name -> (rows, k) for layers first..first+k-1."""
        r = self.row_of_step[step]
        for target, values in ((self.stats, stats), (self.grads, grads)):
            for name, v in values.items():
                target[name][rows, r, first:first + v.shape[1]] = v.to(torch.float64)

    def put_hist(self, step: int, first: int, counts: torch.Tensor) -> None:
        """Add ``counts`` (configs, k, bins) for layers first..first+k-1 (a model's trials
        add up one after the other)."""
        if self.hist is not None:
            r = self.row_of_step[step]
            self.hist[:, r, first:first + counts.shape[1]] += counts.to(self.hist.device)

    def record(self, config: int, rows: slice, **common: Any) -> TrainingRecord:
        """The ``TrainingRecord`` of ``config`` (its trials are ``rows``); ``common``: the
        other fields (layer names, lr, task, ...)."""
        def host(t: torch.Tensor) -> np.ndarray:
            return t[rows].cpu().numpy()

        stats = {n: host(v) for n, v in self.stats.items()}
        stats["finite"] = stats["finite"] == 1.0
        return TrainingRecord(
            steps_recorded=np.asarray(self.recorded), stats=stats,
            grads={n: host(v) for n, v in self.grads.items()},
            train_loss=host(self.train_loss), train_acc=host(self.train_acc),
            eval_steps=np.asarray(self.evals), eval_loss=host(self.eval_loss),
            eval_acc=host(self.eval_acc),
            hist=None if self.hist is None else self.hist[config].cpu().numpy(), **common)


def loss_and_accuracy(out: torch.Tensor, y: torch.Tensor,
                      task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row mean loss and accuracy of outputs (rows, batch, k) against targets: labels
    (rows, batch) int64 (cross-entropy; accuracy = share of argmax hits) or targets
    (rows, batch, k) (mean squared error over batch and outputs; accuracy NaN)."""
    rows, batch, k = out.shape
    if task == "classify":
        ce = torch.nn.functional.cross_entropy(out.reshape(rows * batch, k),
                                               y.reshape(rows * batch), reduction="none")
        acc = (out.detach().argmax(-1) == y).to(torch.float64).mean(1)
        return ce.view(rows, batch).mean(1), acc
    loss = (out - y).square().mean(dim=(1, 2))
    return loss, torch.full((rows,), float("nan"), dtype=torch.float64, device=out.device)
