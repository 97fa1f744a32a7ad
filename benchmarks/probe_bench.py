"""The probe's cost per trial (``initlab.probe``), per model and path. Not a test.

    .venv/bin/python benchmarks/probe_bench.py                # ~6 minutes on 2 cores
    .venv/bin/python benchmarks/probe_bench.py --trials 4 --threads 1

Models: ``conv_chain`` (16 channels, 199x199 -> 1x1, batch 1), ``simple_cnn``
(28x28, batch 64), 20 x (Linear(512, 512) + ReLU) (batch 8) and a small MLP,
5 x (Linear(32, 32) + Tanh) (batch 16), kaiming, no histogram. Timings are the best
of ``repeat`` interleaved runs (the machine is shared). Rows per model and ``gradients``:

* ``bare``: the model's own passes on fixed weights (``model(x)``, and with gradients
  ``autograd.grad`` from g): the compute floor, no statistics, no redraws;
* ``draws``: ``initlab.probing.weights.prepare`` alone (a trial's weights);
* ``loop``: ``probe(..., batched=False)``: one trial at a time, hooks;
* ``batched``: ``probe(..., batched=True)``: every trial at once (``torch.func.vmap``);
* ``auto``: ``probe(...)`` as a user calls it (the path it picks is in ``picked``).

``ratio`` is seconds per trial over the loop path's, in the same process.
``gflop`` counts one forward pass's multiply-adds x 2 (Linear, ConvNd; x 3 with
gradients: the backward pass computes input and weight gradients), so ``bare``'s
GFLOP/s shows whether a model is compute-bound.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from initlab.inputs import gaussian_inputs
from initlab.models import conv_chain, simple_cnn
from initlab.probing import probe
from initlab.probing import weights as W


def relu_mlp(depth: int = 20, width: int = 512) -> nn.Sequential:
    return nn.Sequential(*[m for _ in range(depth)
                           for m in (nn.Linear(width, width, bias=False), nn.ReLU())])


#: name -> (factory, per-sample input shape, batch)
MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], int]] = {
    "conv_chain": (lambda: conv_chain(channels=16), (16, 199, 199), 1),
    "simple_cnn": (simple_cnn, (1, 28, 28), 64),
    "mlp_20x512": (relu_mlp, (512,), 8),
    "mlp_5x32": (lambda: nn.Sequential(*[m for _ in range(5)
                                         for m in (nn.Linear(32, 32), nn.Tanh())]), (32,), 16),
}


def forward_flops(model: nn.Module, x: torch.Tensor) -> float:
    """2 x multiply-adds of every Linear and ConvNd in one forward pass of ``x``."""
    total = 0.0

    def count(module: nn.Module, args: Any, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Linear):
            total += 2.0 * out.numel() * module.in_features
        else:  # ConvNd: each output value is a dot product of in/groups * prod(kernel) terms
            total += 2.0 * out.numel() * module.weight[0].numel()

    handles = [m.register_forward_hook(count) for m in model.modules()
               if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def _bare(model: nn.Module, x: torch.Tensor, gradients: bool, trials: int) -> float:
    """Seconds per pass of the model alone (weights fixed, nothing recorded)."""
    params = [p for p in model.parameters() if p.requires_grad]
    start = 0.0
    for i in range(trials + 1):  # the first pass warms up (allocator, autograd): not timed
        if i == 1:
            start = time.perf_counter()
        if gradients:
            xr = x.detach().requires_grad_(True)
            y = model(xr)
            torch.autograd.grad(y, [xr, *params], torch.ones_like(y))
        else:
            with torch.no_grad():
                model(x)
    return (time.perf_counter() - start) / trials


def _draws(make: Callable[[], nn.Module], trials: int) -> float:
    model = make()
    start = time.perf_counter()
    for t in range(trials):
        W.prepare(model, t, seed=0, init="kaiming", init_params=None, bias="zero",
                  bias_params=None, device=None)
    return (time.perf_counter() - start) / trials


def probe_costs(trials: int = 16, models: tuple[str, ...] = tuple(MODELS),
                gradients: tuple[bool, ...] = (False, True),
                repeat: int = 2) -> list[dict[str, Any]]:
    """One row per (model, gradients, path): seconds per trial (best of ``repeat``) and the
    ratio to the loop path's."""
    rows: list[dict[str, Any]] = []
    for name in models:
        make, shape, batch = MODELS[name]
        inputs = gaussian_inputs(shape, batch)
        model = make()
        x = inputs(torch.Generator().manual_seed(0))
        gflop = forward_flops(model, x) / 1e9
        probe(make, inputs, init="kaiming", trials=1, gradients=False, histogram=False)  # warm
        for grad in gradients:
            kwargs = dict(init="kaiming", bias="zero", trials=trials, gradients=grad,
                          histogram=False)
            found: dict[str, tuple[float, str]] = {}

            def keep(path: str, seconds: float, picked: str,
                     found: dict[str, tuple[float, str]] = found) -> None:
                if path not in found or seconds < found[path][0]:
                    found[path] = (seconds, picked)

            for _ in range(repeat):
                keep("bare", _bare(model, x, grad, max(2, trials // 4)), "bare")
                keep("draws", _draws(make, max(2, trials // 4)), "draws")
                for path, batched in (("loop", False), ("batched", True), ("auto", None)):
                    result = probe(make, inputs, batched=batched, **kwargs)
                    keep(path, result.timing["seconds_per_trial"], result.timing["path"])
            loop = found["loop"][0]
            passes = 3.0 if grad else 1.0  # backward ~ 2 forwards (input and weight grads)
            for path, (seconds, picked) in found.items():
                rows.append({
                    "model": name, "gradients": grad, "path": path, "picked": picked,
                    "seconds_per_trial": seconds, "ratio": seconds / loop,
                    "gflop": gflop * passes,
                    "gflops": gflop * passes / seconds if path == "bare" else math.nan,
                })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = probe_costs(args.trials, tuple(args.models.split(",")), repeat=args.repeat)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.trials} trials, kaiming, no histogram")
    print(f"{'model':<12} {'grad':<5} {'path':<8} {'picked':<8} {'ms/trial':>10} "
          f"{'x loop':>7} {'MFLOP':>8} {'GFLOP/s':>8}")
    for r in rows:
        rate = "" if math.isnan(r["gflops"]) else f"{r['gflops']:.1f}"
        print(f"{r['model']:<12} {str(r['gradients']):<5} {r['path']:<8} {r['picked']:<8} "
              f"{1e3 * r['seconds_per_trial']:>10.1f} {r['ratio']:>7.2f} {1e3 * r['gflop']:>8.1f} "
              f"{rate:>8}")


if __name__ == "__main__":
    main()
