"""initlab benchmark: prints a table of figures, each a ratio against a baseline run in
the same process. Not a test.

    .venv/bin/python benchmarks/bench.py            # about 4 minutes on 2 cores
    .venv/bin/python benchmarks/bench.py --trials 64 --quick

1. RNG floor: drawing the weights alone (trials x depth 100 x 512^2 normals)
2. the engine, all statistics (and with the gradient pass): ratio to 1
3. the seed's own loop, run `trials` times: ratio to 2
4. a 5 schemes x 3 activations sweep: one shared-draw pass vs 15 engine calls vs the seed loop
5. `initlab -m` default sweep end to end (tables, plots, report): wall time, engine share
6. peak memory (RSS) of one run at width 2048, depth 100 vs 1000
7. with CUDA: trials per second at depth 100, width 512
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from initlab.chain import run_chain, run_many
from initlab.spec import ChainSpec

ROOT = Path(__file__).resolve().parents[1]
SCHEMES = ("zero", "normal", "scaled", "xavier", "kaiming")
ACTIVATIONS = ("none", "tanh", "relu")


def timed(fn, repeat: int = 1) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def rng_floor(trials: int, depth: int = 100, width: int = 512) -> None:
    w = torch.empty(trials, width, width)
    for _ in range(depth):
        w.normal_()


def seed_loop(trials: int, depth: int = 100, width: int = 512) -> None:
    for _ in range(trials):
        x = torch.randn(width)
        for _ in range(depth):
            x = (torch.randn(width, width) * math.sqrt(2.0 / width) @ x).clamp_min(0.0)


def peak_rss_mb(depth: int, width: int, trials: int, gradients: bool) -> float:
    code = (
        "import resource; from initlab.chain import run_chain; from initlab.spec import ChainSpec;"
        f"run_chain(ChainSpec(width={width}, depth={depth}, trials={trials}, device='cpu', "
        f"gradients={gradients}, init='scaled', activation='tanh'));"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def end_to_end(trials: int) -> tuple[float, float]:
    """Wall time of the default sweep through the CLI, and the engine's share of it."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "initlab", "-m", f"init={','.join(SCHEMES)}",
               f"activation={','.join(ACTIVATIONS)}", f"trials={trials}"]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
        # each job's summary.json holds its share of the shared engine pass
        engine = sum(json.loads(p.read_text())["seconds"]["engine"]
                     for p in Path(tmp).glob("outputs/multiruns/*/*/summary.json"))
    return wall, engine


def row(name: str, seconds: float, ratio: str = "") -> None:
    print(f"| {name} | {seconds:.3f} | {ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="skip end-to-end and memory")
    args = parser.parse_args()
    t = args.trials
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CUDA: {torch.cuda.is_available()}")
    print(f"T = {t} trials, depth 100, width 512, float32, CPU\n")
    print("| measurement | seconds | ratio |")
    print("|---|---|---|")

    floor = timed(lambda: rng_floor(t), repeat=2)
    row(f"1. RNG floor: {t} x 100 x 512^2 normals", floor, "1.00 (baseline)")
    spec = ChainSpec(init="kaiming", activation="relu", trials=t, gradients=False, device="cpu")
    engine = timed(lambda: run_chain(spec), repeat=2)
    row("2. engine, all statistics", engine, f"{engine / floor:.2f} x floor")
    engine_g = timed(lambda: run_chain(ChainSpec(init="kaiming", activation="relu", trials=t,
                                                 gradients=True, device="cpu")))
    row("2b. engine + gradient pass (weights kept when they fit)", engine_g,
        f"{engine_g / floor:.2f} x floor")
    seed = timed(lambda: seed_loop(t))
    row(f"3. seed loop x {t} (relu, kaiming)", seed, f"{seed / engine:.2f} x engine")

    specs = [ChainSpec(init=i, activation=a, trials=t, gradients=False, device="cpu")
             for i in SCHEMES for a in ACTIVATIONS]
    fused = timed(lambda: run_many(specs))
    separate = timed(lambda: [run_chain(s) for s in specs])
    row("4a. 5x3 sweep, one shared-draw pass", fused, f"{fused / engine:.2f} x one config")
    row("4b. 5x3 sweep, 15 engine calls", separate,
        f"{separate / fused:.1f} x the shared pass")
    row(f"4c. 5x3 sweep, seed loop 15 x {t} (15 x item 3, not rerun)", 15 * seed,
        f"{15 * seed / fused:.1f} x the shared pass")

    if not args.quick:
        wall, eng = end_to_end(16)
        row("5. `initlab -m` 5x3 default sweep (16 trials, gradients, plots, report)", wall,
            f"engine {eng:.1f} s = {100 * eng / wall:.0f} % of wall")
        for grads in (False, True):
            shallow = peak_rss_mb(100, 2048, 1, grads)
            deep = peak_rss_mb(1000, 2048, 1, grads)
            label = "with gradients" if grads else "forward only"
            print(f"| 6. peak RSS, width 2048, 1 trial, {label}: depth 100 {shallow:.0f} MB, "
                  f"depth 1000 {deep:.0f} MB | | {deep / shallow:.2f} x |")

    if torch.cuda.is_available():
        for trials in (100, 1000, 10000):
            gspec = ChainSpec(init="kaiming", activation="relu", trials=trials, device="cuda",
                              gradients=False)
            run_chain(ChainSpec(init="kaiming", activation="relu", trials=8, device="cuda",
                                gradients=False))
            torch.cuda.synchronize()
            sec = timed(lambda s=gspec: (run_chain(s), torch.cuda.synchronize()))
            row(f"7. GPU {torch.cuda.get_device_name()} {trials} trials", sec,
                f"{trials / sec:.0f} trials/s")
    else:
        print("| 7. GPU trials/s | — | pending: no CUDA on this machine |")
    print(json.dumps({"rss_units": "MB (ru_maxrss / 1024)"}))
    _ = resource


if __name__ == "__main__":
    main()
