"""Training throughput of the batched chain (``initlab.train.train_chain``). Not a test.

    .venv/bin/python benchmarks/train_bench.py                      # ~2 minutes on 2 cores
    .venv/bin/python benchmarks/train_bench.py --widths 128 --activations relu --steps 50

For each width and activation: the chain trains ``trials`` trials (kaiming, digits:
64 -> width, ``depth`` hidden layers, width -> 10), batch ``batch``, Adam, as one
batched computation. Rows:

* ``steps/s`` and ``ms/step``: the steady state, timed between the first and the last
  update's progress call (weights drawn, data loaded and the first step excluded), with
  statistics recorded every ``record_every`` steps (``rec``) or only at the first and
  last step (``none``: the training alone);
* ``GFLOP/s``: the matmuls' useful work per update, 2 x multiply-adds of the forward
  pass (G x batch x (64 w + depth w^2 + 10 w), G = trials) plus the backward pass's
  input gradients (all but the first layer's) and weight gradients;
* ``bmm GFLOP/s``: the same matmuls as bare ``torch.bmm`` calls on preallocated
  tensors (forward x W, backward dY W^T and X^T dY per layer, the same shapes), timed
  in the same process: the machine's plain batched-matmul rate for these shapes;
* ``ratio``: GFLOP/s / bmm GFLOP/s, the share of the plain matmul rate training
  reaches (the rest: the activation and its derivative, bias adds, the loss, Adam's
  element-wise update, autograd's bookkeeping and, with ``rec``, the statistics).

Timings are the best of ``repeat`` runs, the bmm's and training's interleaved (the
machine may be shared: with 2 OpenMP threads on 2 cores, another busy process slows
both by up to 40x, so compare rows from one quiet run; ``--threads 1`` is less
sensitive).
"""

from __future__ import annotations

import argparse
import time

import torch

from initlab.train import ChainConfig, TrainSpec, load_data, train_chain


def matmul_flops(rows: int, batch: int, dims: list[tuple[int, int]]) -> float:
    """Forward + backward matmul FLOPs of one update: per layer (in, out) 2 G B in out for
    the forward pass and for dW, and for dX except on the first layer."""
    fwd = [2.0 * rows * batch * i * o for i, o in dims]
    return sum(fwd) * 3 - fwd[0]


def bmm_seconds(rows: int, batch: int, dims: list[tuple[int, int]],
                dtype: torch.dtype) -> float:
    """Time of one update's matmuls as bare ``torch.bmm`` calls (same shapes, a distinct
    weight tensor per layer as in training), after one untimed round."""
    tensors = [(torch.randn(rows, batch, i, dtype=dtype), torch.randn(rows, i, o, dtype=dtype),
                torch.randn(rows, batch, o, dtype=dtype)) for i, o in dims]
    outs = [(torch.empty(rows, batch, o, dtype=dtype), torch.empty(rows, batch, i, dtype=dtype),
             torch.empty(rows, i, o, dtype=dtype)) for i, o in dims]
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        for (x, w, _), (y, _, _) in zip(tensors, outs, strict=True):
            torch.bmm(x, w, out=y)
        for k in reversed(range(len(dims))):
            (x, w, g), (_, dx, dw) = tensors[k], outs[k]
            if k:
                torch.bmm(g, w.transpose(1, 2), out=dx)
            torch.bmm(x.transpose(1, 2), g, out=dw)
        seconds.append(time.perf_counter() - start)
    return seconds[-1]


def steady_seconds(configs, spec: TrainSpec, data, trials: int) -> float:
    """Seconds per update between the first and the last update of one run."""
    stamps: list[float] = []
    train_chain(configs, spec, data, trials=trials, seed=0,
                progress=lambda done, total: stamps.append(time.perf_counter()))
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--activations", nargs="+", default=["relu", "tanh"])
    parser.add_argument("--depth", type=int, default=30)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--record-every", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_data(TrainSpec(), None, torch.float32)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, depth {args.depth}, "
          f"{args.trials} trials, batch {args.batch}, Adam, {args.steps} steps, float32")
    print(f"{'width':>5} {'act':>5} {'record':>6} {'steps/s':>8} {'ms/step':>8} "
          f"{'GFLOP/s':>8} {'bmm GFLOP/s':>11} {'ratio':>6}")
    for width in args.widths:
        dims = [(data.features, width), *[(width, width)] * args.depth, (width, data.outputs)]
        flops = matmul_flops(args.trials, args.batch, dims)
        for act in args.activations:
            configs = [ChainConfig(init="kaiming", activation=act, width=width,
                                   depth=args.depth)]
            for label, every in (("rec", args.record_every), ("none", args.steps)):
                spec = TrainSpec(steps=args.steps, batch_size=args.batch, record_every=every,
                                 eval_every=args.steps)
                sec = bmm = float("inf")
                for _ in range(args.repeat):  # interleaved: both see the same machine state
                    bmm = min(bmm, bmm_seconds(args.trials, args.batch, dims, torch.float32))
                    sec = min(sec, steady_seconds(configs, spec, data, args.trials))
                print(f"{width:>5} {act:>5} {label:>6} {1 / sec:>8.1f} {1e3 * sec:>8.2f} "
                      f"{flops / sec / 1e9:>8.1f} {flops / bmm / 1e9:>11.1f} "
                      f"{bmm / sec:>6.0%}", flush=True)


if __name__ == "__main__":
    main()
