"""Where the engine's time goes, against the all-cores RNG floor. Not a test.

    .venv/bin/python benchmarks/engine_profile.py                 # ratios + per-layer parts
    .venv/bin/python benchmarks/engine_profile.py --sweep         # + the 5 x 3 sweep, gradients
    .venv/bin/python benchmarks/engine_profile.py --profile       # + torch.profiler table
    .venv/bin/python benchmarks/engine_profile.py --what-if row   # forward W x as (x^T W^T)^T

Every figure is a ratio measured in this one process (the machine may be shared:
each figure is the best of ``--repeat`` runs, interleaved so that load hits them alike).

1. all-cores RNG floor: ``draws.fill_layer_`` over a (T, 512, 512) buffer, layers 1..100
   (T keyed ``normal_`` draws per layer in ``torch.get_num_threads()`` Python threads);
2. forward engine: ``run_chain`` kaiming/relu, gradients off, all statistics;
3. engine with gradients (weights kept when they fit, the default);
4. (``--sweep``) ``run_many`` of the default sweep's 15 specs (5 schemes x 3
   activations, T=16, gradients on);
5. one layer's parts, each timed alone (ms per layer): what 1-3 are made of.

``--what-if`` patches the engine in this process only, to price a change in a file this
script does not own: ``row`` computes the forward product as (x^T W^T)^T (since adopted:
``GroupLayout.matmul`` computes it so, the what-if is now the engine itself), ``huge``
asks for transparent huge pages on the forward pass's fresh weight buffers
(``madvise``), ``both`` does both.

Measured 2026-11-23 on the shared 2-core EPYC (alternating processes of the tree before and
after this round, load ~2): gradients / forward 1.51-1.69 -> 1.32-1.39; the backward pass
itself 0.5 s of it, keeping the weights (3.2 GB of fresh pages) ~0.7-1.0 s of the forward.
forward / floor ~1.5 either way, ~1.2 with ``--what-if row``. Huge pages made the kept
weights' forward slower (direct compaction: +4.9 s): the row form is what helps.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import platform
import time
from collections.abc import Callable

import torch

from initlab import backward as bw
from initlab import layout as lay
from initlab import stats as st
from initlab.chain import run_chain, run_many
from initlab.draws import fill_layer_
from initlab.spec import ChainSpec

SCHEMES = ("zero", "normal", "scaled", "xavier", "kaiming")
ACTIVATIONS = ("none", "tanh", "relu")
WIDTH, DEPTH = 512, 100


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def floor(trials: int) -> None:
    """The all-cores RNG floor: the engine's own draw, 100 layers, one reused buffer."""
    mats = {"normal": torch.empty(trials, WIDTH, WIDTH)}
    for layer in range(1, DEPTH + 1):
        fill_layer_(mats, 0, layer, range(trials))


def spec(trials: int, gradients: bool, **kw) -> ChainSpec:
    kw.setdefault("init", "kaiming")
    kw.setdefault("activation", "relu")
    return ChainSpec(trials=trials, gradients=gradients, device="cpu", width=WIDTH,
                     depth=DEPTH, **kw)


def _row_matmul(self, mats, x, transpose=False):
    """What-if: base @ x as (x^T base^T)^T (and base^T @ x as (x^T base)^T)."""
    out = torch.zeros_like(x)
    for base, block in self.blocks.items():
        w = mats[base] if transpose else mats[base].transpose(1, 2)
        out[:, :, block] = torch.bmm(x[:, :, block].transpose(1, 2), w).transpose(1, 2)
    return out


_HUGE, _MADV_HUGEPAGE = 2 << 20, 14


def huge_pages_(tensor: torch.Tensor) -> torch.Tensor:
    """Ask Linux for transparent huge pages on a fresh CPU buffer (before it is touched):
    one fault per 2 MiB instead of per 4 KiB. A no-op where madvise is unavailable."""
    start = tensor.data_ptr()
    end = start + tensor.numel() * tensor.element_size()
    first = -(-start // _HUGE) * _HUGE
    if end - first >= _HUGE:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.madvise(ctypes.c_void_p(first), ctypes.c_size_t((end - first) // _HUGE * _HUGE),
                         _MADV_HUGEPAGE)
        except (OSError, AttributeError):
            pass
    return tensor


def what_if(change: str) -> None:
    if change in ("row", "both"):
        lay.GroupLayout.matmul = _row_matmul
    if change in ("huge", "both"):
        real = lay.GroupLayout.new_weights

        def new_weights(self, trials):
            return {base: huge_pages_(m) for base, m in real(self, trials).items()}

        lay.GroupLayout.new_weights = new_weights


def parts(trials: int, repeat: int) -> dict[str, float]:
    """ms per layer of each piece of the engine, each timed alone on the engine's shapes."""
    t, n = trials, WIDTH
    w = torch.empty(t, n, n)
    fill_layer_({"normal": w}, 0, 1, range(t))
    x = torch.randn(t, n, 1).relu()
    h = torch.randn(t, n, 1)
    layout = lay.GroupLayout.build([spec(trials, True)])
    reps = 10

    def per_layer(fn: Callable[[], object]) -> float:
        return 1e3 * best(lambda: [fn() for _ in range(reps)], repeat) / reps

    out = {
        "draw (fill_layer_, reused buffer)": 1e3 * best(
            lambda: fill_layer_({"normal": w}, 0, 1, range(t)), repeat),
        "draw into a fresh buffer (kept weights)": 1e3 * best(
            lambda: fill_layer_({"normal": torch.empty(t, n, n)}, 0, 1, range(t)), repeat),
        "draw into a fresh buffer, huge pages": 1e3 * best(
            lambda: fill_layer_({"normal": huge_pages_(torch.empty(t, n, n))}, 0, 1, range(t)),
            repeat),
        "forward W x: bmm(W, x)": per_layer(lambda: torch.bmm(w, x)),
        "forward W x: bmm(x^T, W^T)^T": per_layer(
            lambda: torch.bmm(x.transpose(1, 2), w.transpose(1, 2)).transpose(1, 2)),
        "backward W^T g: bmm(W^T, g)": per_layer(lambda: torch.bmm(w.transpose(1, 2), h)),
        "backward W^T g: bmm(g^T, W)^T": per_layer(
            lambda: torch.bmm(h.transpose(1, 2), w).transpose(1, 2)),
        "activation relu": per_layer(lambda: torch.relu(h)),
        "layer_stats": per_layer(lambda: st.layer_stats(x, 1, h)),
        "log_histogram": per_layer(lambda: st.log_histogram(x, "float32", 1)),
        "mean_std (backward, per layer)": per_layer(lambda: st.mean_std(h, 1)),
    }
    if hasattr(bw, "weight_grad_stats"):  # this backward pass's own pieces
        slope = bw.activation_slopes(layout)[0]
        out["slope + dL/dW stats (backward)"] = per_layer(
            lambda: bw.weight_grad_stats(h * slope(h, x), x, 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: "
                        "torch's own)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sweep", action="store_true", help="time the 5 x 3 sweep (T=16)")
    parser.add_argument("--profile", action="store_true", help="torch.profiler table")
    parser.add_argument("--what-if", choices=("row", "huge", "both"), default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.what_if:
        what_if(args.what_if)
    t = args.trials
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {load:.1f}; "
          f"T={t}, depth {DEPTH}, width {WIDTH}, float32"
          + (f"; what-if: {args.what_if}" if args.what_if else ""))
    fwd, grad = spec(t, False), spec(t, True)
    run_chain(spec(2, True))  # warm-up: imports, thread pools
    runs: dict[str, list[float]] = {"floor": [], "forward": [], "gradients": []}
    for _ in range(args.repeat):  # interleaved: a burst of load hits every figure
        runs["floor"].append(best(lambda: floor(t), 1))
        runs["forward"].append(best(lambda: run_chain(fwd), 1))
        runs["gradients"].append(best(lambda: run_chain(grad), 1))
    fl, fw, gr = (min(runs[k]) for k in ("floor", "forward", "gradients"))
    print("\n| measurement | seconds | ratio |\n|---|---|---|")
    print(f"| 1. all-cores RNG floor (fill_layer_ x {DEPTH}) | {fl:.3f} | 1.00 |")
    print(f"| 2. forward engine | {fw:.3f} | {fw / fl:.2f} x floor (target <= 1.15) |")
    print(f"| 3. engine with gradients, weights kept | {gr:.3f} | {gr / fw:.2f} x forward "
          f"(target <= 1.3) |")
    if args.sweep:
        specs = [spec(16, True, init=i, activation=a) for i in SCHEMES for a in ACTIVATIONS]
        one = best(lambda: run_chain(spec(16, True)), args.repeat)
        sweep = best(lambda: run_many(specs), args.repeat)
        print(f"| 4. 5 x 3 sweep with gradients, T=16 (run_many) | {sweep:.3f} | "
              f"{sweep / one:.2f} x one config ({one:.3f} s) |")
    print("\n| one layer's part (T trials) | ms |\n|---|---|")
    for name, ms in parts(t, args.repeat).items():
        print(f"| {name} | {ms:.2f} |")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run_chain(grad)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
