"""GPU throughput of the engine: trials per second, forward pass with every statistic.

    .venv/bin/python benchmarks/gpu_bench.py        # prints one JSON line per trial count

On CUDA the engine draws in the blocked mode (``initlab.draws``: one ``normal_``
per block of ``BLOCK`` trials and layer), chunks trials to ``MEMORY_BUDGET``
(whole blocks), reduces statistics on the device and copies them once per chunk.
Without CUDA it measures nothing (an empty list).
"""

from __future__ import annotations

import json
import time

import torch

from initlab.chain import run_chain
from initlab.layout import MEMORY_BUDGET, GroupLayout
from initlab.spec import ChainSpec


def gpu_trials_per_second(trials_list: tuple[int, ...] = (100, 1000, 10000), depth: int = 100,
                          width: int = 512, budget: int = MEMORY_BUDGET) -> list[dict]:
    """One row per trial count: seconds, trials/s and peak GPU memory of ``run_chain`` on
    cuda (kaiming/relu, float32, forward, all statistics and the histogram), timed from a
    synchronized start to the NumPy results (a synchronization). [] without CUDA."""
    if not torch.cuda.is_available():
        return []
    device = torch.device("cuda")
    kw = dict(init="kaiming", activation="relu", width=width, depth=depth, device="cuda",
              gradients=False)
    run_chain(ChainSpec(trials=8, **kw), budget)  # warm-up: context, kernels, cuBLAS handles
    rows = []
    for trials in trials_list:
        spec = ChainSpec(trials=trials, **kw)
        layout = GroupLayout.build([spec], budget)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        result = run_chain(spec, budget)
        torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        rows.append({
            "trials": trials, "depth": depth, "width": width, "seconds": seconds,
            "trials_per_s": trials / seconds,
            "peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2**20,
            "chunk": layout.chunk, "chunks": len(layout.chunks()), "mode": layout.mode,
            "device": torch.cuda.get_device_name(device),
            "finite": bool(result.stats["finite"].all()),
        })
    return rows


if __name__ == "__main__":
    for found in gpu_trials_per_second():
        print(json.dumps(found))
