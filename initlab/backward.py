"""The backward pass of the engine: back-propagate g_L through every config of a group.

The loss is <g_L, x_L> with g_L ~ N(0, I) from its own keyed stream. Each
layer's weights come from the forward pass when it kept them (they fit in
``layout.keep_budget``), else they are drawn again from their (seed, layer,
trial) stream (``GroupLayout.draw_weights``), so memory holds one layer's
weights whatever the depth; the pre-activations come from the forward pass.
Statistics of dL/dx_l and dL/dW_l go to a ``GradientStats`` observer.

Per layer the work is one matrix product per base distribution (W^T g, the
cost that matters), one activation and one derivative call per run of configs
sharing an activation (``layout.act_runs``; closed form for the built-ins,
``initlab.activations.derivative``, autograd for a plug-in) and one batched
reduction over all configs for the dL/dW statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from initlab.activations import derivative
from initlab.layout import ARENA, GroupLayout, output_gradient

if TYPE_CHECKING:
    from initlab.observers import GradientStats


def _autograd_slope(act: Callable) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """act'(h) by autograd, for a plug-in activation (any elementwise function works):
    the vector-Jacobian product with ones is the diagonal of the Jacobian."""

    def slope(h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            hh = h.detach().requires_grad_(True)
            out = act(hh)
            (grad,) = torch.autograd.grad(out, hh, torch.ones_like(out))
        return grad

    return slope


def activation_slopes(layout: GroupLayout) -> list[Callable]:
    """For each of ``layout.act_runs``: ``d(h, y) = act'(h)`` (y = act(h))."""
    return [derivative(act) or _autograd_slope(act) for _, act in layout.act_runs]


def activate(layout: GroupLayout, h: torch.Tensor) -> torch.Tensor:
    """act(h) for every config, one call per run of configs sharing an activation."""
    y = torch.empty_like(h)
    for cols, act in layout.act_runs:
        y[:, :, cols] = act(h[:, :, cols])
    return y


def weight_grad_stats(g_h: torch.Tensor, x_prev: torch.Tensor,
                      configs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over the entries of dL/dW = g_h x_prev^T per trial and config, without
    forming it: (trials, width, configs * batch) twice -> (trials, configs) twice, float64.

    With g_b, x_b the batch columns of one config, sum_ij G_ij = sum_b (1.g_b)(1.x_b) and
    sum_ij G_ij^2 = sum_bb' (g_b.g_b')(x_b.x_b'): two batch x batch Gram matrices per
    config, one batched product for all configs. Float64 because the squares of a float32
    signal near 3.4e38 overflow float32, as in ``initlab.stats``.
    """
    trials, n_out, columns = g_h.shape
    n_in, batch = x_prev.shape[1], columns // configs
    count = n_out * n_in
    f64 = torch.float64
    if batch == 1:  # 1 x 1 Grams: the squared norms; sums accumulated in float64
        total = g_h.sum(dim=1, dtype=f64) * x_prev.sum(dim=1, dtype=f64)
        squares = (torch.linalg.vector_norm(g_h, dim=1, dtype=f64).square()
                   * torch.linalg.vector_norm(x_prev, dim=1, dtype=f64).square())
    else:
        g4 = g_h.to(f64).view(trials, n_out, configs, batch).permute(0, 2, 3, 1)
        x4 = x_prev.to(f64).view(trials, n_in, configs, batch).permute(0, 2, 3, 1)
        total = (g4.sum(dim=3) * x4.sum(dim=3)).sum(dim=2)
        gram_g = torch.matmul(g4, g4.transpose(2, 3))
        gram_x = torch.matmul(x4, x4.transpose(2, 3))
        squares = (gram_g * gram_x).sum(dim=(2, 3))
    mean = total / count
    var = (squares - count * mean**2) / (count - 1)
    return mean, var.clamp_min(0).sqrt()


def backward(layout: GroupLayout, mats: dict[str, torch.Tensor], trials: range,
             x0: torch.Tensor, pre: list, gains: list, grads: GradientStats,
             kept: dict[int, dict[str, torch.Tensor]] | None = None,
             post: list | None = None) -> None:
    """Back-propagate g_L through every config of a group. Layer L's base matrices are
    still in hand from the forward pass; the others come from ``kept`` when the forward
    pass kept them, else they are drawn again from their keyed streams. ``post``: the
    forward pass's activations x_1..x_L when it kept them, else they are recomputed
    from ``pre`` (one activation call per run of configs and layer).

    With h_l the pre-activation, x_l = act(h_l) and W_l = gain_l * base_l:
    dL/dh_l = dL/dx_l * act'(h_l), dL/dW_l = dL/dh_l x_{l-1}^T,
    dL/dx_{l-1} = base_l^T (gain_l * dL/dh_l).
    """
    ref = layout.ref
    t, n, k, b = len(trials), ref.width, layout.configs, ref.batch
    slopes = activation_slopes(layout)

    def activation(layer: int) -> torch.Tensor:  # x_layer, layer >= 1
        return post[layer - 1] if post is not None else activate(layout, pre[layer - 1])

    g = output_gradient(ref, trials, x0.device, layout.mode).repeat(1, 1, k)
    grads.layer(ref.depth, trials, g)
    y = activation(ref.depth)
    for layer in range(ref.depth, 0, -1):
        h = pre[layer - 1]
        g_h = torch.empty_like(g)  # dL/dh_l
        for (cols, _), slope in zip(layout.act_runs, slopes, strict=True):
            torch.mul(g[:, :, cols], slope(h[:, :, cols], y[:, :, cols]), out=g_h[:, :, cols])
        x_prev = x0 if layer == 1 else activation(layer - 1)
        mean, std = weight_grad_stats(g_h, x_prev, k)
        for pos in range(k):
            grads.weights(layer, trials, pos, mean[:, pos], std[:, pos])
        if ref.weights == "fresh" and layer < ref.depth:
            if kept is not None:
                ARENA.give(mats)  # the used layer's buffers: for the next pass to reuse
                mats = kept.pop(layer)
            else:
                layout.draw_weights(mats, layer, trials)
        # gain per trial and config (LSUV makes it per trial)
        g_h.view(t, n, k, b).mul_(gains[layer - 1].to(g_h.dtype).view(t, 1, k, 1))
        g = layout.matmul(mats, g_h, transpose=True)
        grads.layer(layer - 1, trials, g)
        y = x_prev
    ARENA.give(mats)
