"""The backward pass of the engine: back-propagate g_L through every config of a group.

The loss is <g_L, x_L> with g_L ~ N(0, I) from its own keyed stream. Each
layer's weights come from the forward pass when it kept them (they fit in
``layout.keep_budget``), else they are drawn again from their (seed, layer,
trial) stream (``GroupLayout.draw_weights``), so memory holds one layer's
weights whatever the depth; the pre-activations come from the forward pass.
Statistics of dL/dx_l and dL/dW_l go to a ``GradientStats`` observer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from initlab.draws import output_gradient

if TYPE_CHECKING:
    from initlab.layout import GroupLayout
    from initlab.observers import GradientStats


def _activation_vjp(act: Callable, h: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """g * act'(h), by autograd (so any activation, a plug-in too, works)."""
    with torch.enable_grad():
        hh = h.detach().requires_grad_(True)
        (out,) = torch.autograd.grad(act(hh), hh, g)
    return out


def _weight_grad_stats(g_h: torch.Tensor, x_prev: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Mean and std over entries of dL/dW = g_h @ x_prev^T (per trial), without forming it.

    sum_ij G_ij = sum_b (1.g_b)(1.x_b) and sum_ij G_ij^2 = sum_bb' (g_b.g_b')(x_b.x_b').
    """
    g64, x64 = g_h.to(torch.float64), x_prev.to(torch.float64)
    n_out, n_in = g64.shape[1], x64.shape[1]
    count = n_out * n_in
    total = (g64.sum(dim=1) * x64.sum(dim=1)).sum(dim=1)
    gram_g = torch.bmm(g64.transpose(1, 2), g64)
    gram_x = torch.bmm(x64.transpose(1, 2), x64)
    squares = (gram_g * gram_x).sum(dim=(1, 2))
    mean = total / count
    var = (squares - count * mean**2) / (count - 1)
    return mean, var.clamp_min(0).sqrt()


def backward(layout: GroupLayout, mats: dict[str, torch.Tensor], trials: range,
             x0: torch.Tensor, pre: list, gains: list, grads: GradientStats,
             kept: dict[int, dict[str, torch.Tensor]] | None = None) -> None:
    """Back-propagate g_L through every config of a group. Layer L's base matrices are
    still in hand from the forward pass; the others come from ``kept`` when the forward
    pass kept them, else they are drawn again from their keyed streams."""
    ref = layout.ref
    g = output_gradient(ref, trials, x0.device).repeat(1, 1, layout.configs)
    grads.layer(ref.depth, trials, g)
    for layer in range(ref.depth, 0, -1):
        h = pre[layer - 1]
        g_h = torch.empty_like(g)
        for pos, (cols, act) in enumerate(zip(layout.columns, layout.acts, strict=True)):
            g_h[:, :, cols] = _activation_vjp(act, h[:, :, cols], g[:, :, cols])  # dL/dh_l
            x_prev = x0[:, :, cols] if layer == 1 else act(pre[layer - 2][:, :, cols])
            grads.weights(layer, trials, pos, *_weight_grad_stats(g_h[:, :, cols], x_prev))
        if ref.weights == "fresh" and layer < ref.depth:
            if kept is not None:
                mats = kept.pop(layer)  # and let it go: memory shrinks as the pass goes
            else:
                layout.draw_weights(mats, layer, trials)
        # dL/dx_{l-1} = W_l^T g_h = base^T (gain * g_h), gain per trial under LSUV
        for pos, cols in enumerate(layout.columns):
            g_h[:, :, cols] *= gains[layer - 1][:, pos].to(g_h.dtype).view(-1, 1, 1)
        g = layout.matmul(mats, g_h, transpose=True)
        grads.layer(layer - 1, trials, g)
