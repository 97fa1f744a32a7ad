"""torch.optim's SGD, SGD with momentum, Adam and RMSprop, with a per-update schedule.

All four update each parameter entry from that entry's own gradient and state
(no norm or mean over a tensor), so a stack of trials along a leading dimension is
updated exactly as each trial alone: with loss = sum over trials of each trial's
mean loss, trial t's block of the stacked gradient is its own gradient, and the
update of that block is the one a trial-t-only optimizer makes (bit for bit, the
same element-wise arithmetic). Updates (torch's documentation, g the gradient plus
``weight_decay`` x p):

* ``sgd``: p <- p - lr g.
* ``momentum``: b <- mu b + g (b = g at the first update), p <- p - lr b.
* ``adam`` (Kingma & Ba 2015): m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2,
  p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
* ``rmsprop`` (Hinton's lecture 6e; torch's form): v <- a v + (1 - a) g^2,
  p <- p - lr g / (sqrt(v) + eps) (with momentum mu: b <- mu b + g / (sqrt(v) + eps),
  p <- p - lr b). torch adds eps outside the square root, as fastai's
  ``rms_prop_step`` does (sqrt(v) + eps); TensorFlow's RMSProp adds it inside. fastai's
  RMSProp defaults differ (sqr_mom 0.99 as torch's alpha, eps 1e-8 as torch): the same
  update. fastai's Adam defaults differ from torch's (beta2 0.99, eps 1e-5); initlab
  uses torch's (``initlab.train.spec.DEFAULT_SQR_MOM``) unless set.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from initlab.train.spec import TrainSpec


def _fast(cls: type, params: list[torch.Tensor], **kwargs) -> torch.optim.Optimizer:
    """``cls(params, fused=True)`` where torch has a fused kernel for it (SGD and Adam, on a
    CPU since torch 2.4, on CUDA): one pass over each tensor instead of one per operation,
    4x faster than the default for Adam on the chain's stacks (5 vs 19-48 ms for 7.9 M
    entries, benchmarks/train_bench.py's width 128); else ``foreach=True``. The same
    element-wise update (torch tests each path against the others)."""
    try:
        return cls(params, fused=True, **kwargs)
    except (TypeError, RuntimeError):  # no fused kernel here: this torch, device or dtype
        return cls(params, foreach=True, **kwargs)


def make_optimizer(params: Sequence[torch.Tensor], train: TrainSpec) -> torch.optim.Optimizer:
    """The torch optimizer ``train.optimizer`` over ``params`` (stacked trials or one model's
    parameters), at the schedule's first values (``set_hypers`` moves them per update)."""
    params = list(params)
    wd = train.weight_decay
    if train.optimizer in ("sgd", "momentum"):
        return _fast(torch.optim.SGD, params, lr=train.lr, momentum=train.beta1,
                     weight_decay=wd)
    if train.optimizer == "adam":
        return _fast(torch.optim.Adam, params, lr=train.lr, betas=(train.beta1, train.beta2),
                     eps=train.eps, weight_decay=wd)
    return torch.optim.RMSprop(params, lr=train.lr, alpha=train.beta2, eps=train.eps,
                               momentum=train.beta1, weight_decay=wd, foreach=True)


def set_hypers(optimizer: torch.optim.Optimizer, lr: float, momentum: float) -> None:
    """Set one update's learning rate and momentum (Adam's beta1; SGD's and RMSprop's
    ``momentum`` when they run with one) on every parameter group, as fastai's
    ``ParamScheduler.before_batch`` does through its ``pytorch_hp_map``."""
    for group in optimizer.param_groups:
        group["lr"] = float(lr)
        if "betas" in group:
            group["betas"] = (float(momentum), group["betas"][1])
        elif group.get("momentum", 0.0) > 0:
            group["momentum"] = float(momentum)
