"""initlab benchmark: prints a table of figures, each a ratio against a baseline run in
the same process. Not a test.

    .venv/bin/python benchmarks/bench.py            # about 6 minutes on 2 cores
    .venv/bin/python benchmarks/bench.py --quick    # engine figures only
    .venv/bin/python benchmarks/bench.py --trials 64 --sweep-runs 3

1. the drawing floor, the baseline: trials x depth 100 draws of 512^2 by ``normal_``
   into preallocated buffers, each thread its own generator, ``manual_seed`` per matrix,
   on every core and on one thread; ``initlab.draws.fill_layer_``'s own overhead on it
2. the engine, all statistics: forward; with gradients, weights kept (first call, and a
   later call that reuses the kept weights' memory) or redrawn
3. the seed's own loop, run ``trials`` times
4. a 5 schemes x 3 activations sweep: one shared-draw pass vs 15 engine calls
5. ``initlab -m`` default sweep end to end, from its own log: start-up (imports, checks,
   composing configs), engine, job files, Hydra's per-job bookkeeping, report
6. peak memory (RSS) at width 2048, depth 100 vs 1000, weights redrawn
7. with CUDA: trials per second at depth 100, width 512 (``benchmarks/gpu_bench.py``)
8. the probe on models (``benchmarks/probe_bench.py``): seconds per trial
9. training the chain (``benchmarks/train_bench.py``): widths 128 and 512, trials
   batched, against bare ``bmm``'s of the same shapes timed in the same process
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import torch

from initlab import draws
from initlab.chain import run_chain, run_many
from initlab.layout import release_memory
from initlab.spec import ChainSpec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
SCHEMES = ("zero", "normal", "scaled", "xavier", "kaiming")
ACTIVATIONS = ("none", "tanh", "relu")
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def timed(fn, repeat: int = 1) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def plain_floor(trials: int, threads: int, depth: int = 100, width: int = 512) -> None:
    """The drawing floor: ``normal_`` into preallocated (width, width) buffers, ``threads``
    Python threads each with its own generator, ``manual_seed`` per matrix (the keyed
    streams' cost), nothing else."""
    bufs = torch.empty(trials, width, width)
    parts = [range(trials * k // threads, trials * (k + 1) // threads) for k in range(threads)]

    def draw(part: range, layer: int) -> None:
        gen = torch.Generator()
        for i in part:
            bufs[i].normal_(generator=gen.manual_seed(1_000_003 * layer + i))

    with ThreadPoolExecutor(threads) as pool:
        for layer in range(depth):
            list(pool.map(draw, parts, [layer] * threads))


def rng_floor(trials: int, depth: int = 100, width: int = 512) -> None:
    """``initlab.draws.fill_layer_`` alone into a (trials, 512, 512) buffer, once per layer:
    the engine's draws with their keyed seeds, threads and bookkeeping."""
    w = {"normal": torch.empty(trials, width, width)}
    for layer in range(1, depth + 1):
        draws.fill_layer_(w, 0, layer, range(trials))


def seed_loop(trials: int, depth: int = 100, width: int = 512) -> None:
    for _ in range(trials):
        x = torch.randn(width)
        for _ in range(depth):
            x = (torch.randn(width, width) * math.sqrt(2.0 / width) @ x).clamp_min(0.0)


def peak_rss_mb(depth: int, width: int, trials: int, gradients: bool) -> float:
    """Peak RSS of a fresh process running one chain, weights redrawn (``keep=0``). Read as
    VmHWM (this process image's high-water mark): ``ru_maxrss`` would report this
    benchmark's own size, which a child forked from it starts with."""
    code = (
        "from initlab.chain import run_chain; from initlab.spec import ChainSpec;"
        f"run_chain(ChainSpec(width={width}, depth={depth}, trials={trials}, device='cpu', "
        f"gradients={gradients}, init='scaled', activation='tanh'), keep=0);"
        "print([ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-2]) / 1024


def _stamp(line: str) -> float | None:
    found = STAMP.match(line)
    if not found:
        return None
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def end_to_end(extra: list[str]) -> dict[str, float]:
    """The default sweep through the console script, timed from outside, split by its log."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(Path(sys.executable).parent / "initlab"), "-m",
               f"init={','.join(SCHEMES)}", f"activation={','.join(ACTIVATIONS)}", *extra]
        began = time.time()
        out = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=True)
        wall = time.time() - began
    lines = out.stdout.splitlines() + out.stderr.splitlines()
    found: dict[str, float] = {"wall": wall}
    for line in lines:
        if "Launching" in line and "start-up" not in found:
            found["start-up"] = _stamp(line) - began
        if (m := re.search(r"Ran \d+ jobs in [\d.]+ s: measuring (?:\(and training\) )?"
                           r"([\d.]+) s, job files ([\d.]+)", line)):
            found["engine"], found["job files"] = float(m.group(1)), float(m.group(2))
        if (m := re.search(r"job bookkeeping: ([\d.]+) s", line)):
            found["Hydra's per-job bookkeeping"] = float(m.group(1))
        if (m := re.search(r"report: .* \(([\d.]+) s\)", line)):
            found["report"] = float(m.group(1))
    parts = sum(v for k, v in found.items() if k != "wall")
    found["the rest (planning, marking job dirs, exit)"] = wall - parts
    return found


def row(name: str, seconds: float, ratio: str = "") -> None:
    print(f"| {name} | {seconds:.3f} | {ratio} |", flush=True)


def engine_rows(t: int) -> float:
    """Rows 1-4; returns the one-thread floor of 16 trials (the default sweep's baseline)."""
    threads = torch.get_num_threads()
    floor = timed(lambda: plain_floor(t, threads), repeat=2)
    row(f"1a. drawing floor, {threads} threads: {t} x 100 draws of 512^2 (`normal_`, "
        "preallocated, `manual_seed` per matrix)", floor, "1.00 (baseline)")
    one = timed(lambda: plain_floor(t, 1), repeat=2)
    row("1b. drawing floor, 1 thread", one, f"{one / floor:.2f} x 1a")
    fill = timed(lambda: rng_floor(t), repeat=2)
    row("1c. `draws.fill_layer_` alone (keyed streams, threads)", fill,
        f"{fill / floor:.2f} x 1a: its own overhead")
    fwd = ChainSpec(init="kaiming", activation="relu", trials=t, gradients=False, device="cpu")
    engine = timed(lambda: run_chain(fwd), repeat=2)
    row("2a. engine forward, all statistics and histograms", engine,
        f"{engine / floor:.2f} x 1a (target <= 1.15)")
    grad = ChainSpec(init="kaiming", activation="relu", trials=t, gradients=True, device="cpu")
    release_memory()
    first = timed(lambda: run_chain(grad))
    row("2b. engine + gradients, weights kept, first call (fresh memory)", first,
        f"{first / engine:.2f} x 2a (target <= 1.3)")
    kept = timed(lambda: run_chain(grad), repeat=2)
    row("2c. engine + gradients, weights kept, a later call (memory reused)", kept,
        f"{kept / engine:.2f} x 2a (target <= 1.3)")
    release_memory()
    redrawn = timed(lambda: run_chain(grad, keep=0))
    row("2d. engine + gradients, weights redrawn (keep_fraction=0)", redrawn,
        f"{redrawn / engine:.2f} x 2a")
    seed = timed(lambda: seed_loop(t))
    row(f"3. the seed's loop x {t} (relu, kaiming; no statistics)", seed,
        f"{seed / engine:.2f} x 2a")
    specs = [ChainSpec(init=i, activation=a, trials=t, gradients=False, device="cpu")
             for i in SCHEMES for a in ACTIVATIONS]
    fused = timed(lambda: run_many(specs), repeat=2)
    row("4a. 5x3 sweep, one shared-draw pass (forward)", fused,
        f"{fused / engine:.2f} x one config 2a")
    separate = timed(lambda: [run_chain(s) for s in specs])
    row("4b. 5x3 sweep, 15 engine calls", separate, f"{separate / fused:.1f} x 4a")
    return one * 16 / t


def sweep_rows(runs: int, floor16: float) -> None:
    best: dict[str, float] | None = None
    for _ in range(runs):
        found = end_to_end([])
        if best is None or found["wall"] < best["wall"]:
            best = found
    wall = best["wall"]
    row(f"5. `initlab -m init=<5> activation=<3>` (16 trials, gradients, report), best of "
        f"{runs}", wall, f"{wall / floor16:.2f} x the one-thread floor of 16 trials, "
        f"{floor16:.2f} s (target <= 7.5, moonshot 5)")
    for key, seconds in best.items():
        if key != "wall":
            row(f"5. ... {key}", seconds, f"{100 * seconds / wall:.0f} % of wall")
    with_plots = end_to_end(["plots=true"])
    row("5b. the same with every job's figures (plots=true)", with_plots["wall"],
        f"{with_plots['wall'] / wall:.2f} x 5")


def memory_rows() -> None:
    for grads in (False, True):
        shallow = peak_rss_mb(100, 2048, 1, grads)
        deep = peak_rss_mb(1000, 2048, 1, grads)
        label = "with gradients, weights redrawn" if grads else "forward only"
        print(f"| 6. peak RSS, width 2048, 1 trial, {label}: depth 100 {shallow:.0f} MB, "
              f"depth 1000 {deep:.0f} MB | | {deep / shallow:.2f} x (target <= 1.5) |",
              flush=True)


def gpu_rows() -> None:
    from gpu_bench import gpu_trials_per_second

    found = gpu_trials_per_second()
    if not found:
        print("| 7. GPU trials/s | — | pending: no CUDA on this machine |")
    for r in found:
        row(f"7. GPU {r['device']}, {r['trials']} trials ({r['mode']} draws, "
            f"{r['chunks']} chunk(s), peak {r['peak_gpu_mb']:.0f} MB)", r["seconds"],
            f"{r['trials_per_s']:.0f} trials/s (target >= 10000)")


def probe_rows(trials: int) -> None:
    from probe_bench import probe_costs

    for r in probe_costs(trials, repeat=2):  # best of 2: single runs vary by 2x
        if r["path"] in ("bare", "draws"):
            continue
        grad = "with gradients" if r["gradients"] else "forward"
        row(f"8. probe {r['model']}, {grad}, {r['path']} path (picked: {r['picked']})",
            r["seconds_per_trial"], f"{r['ratio']:.2f} x the loop path; s per trial")


def train_rows() -> None:
    """Training the chain, trials batched, against bare bmm's of the same shapes."""
    from train_bench import bmm_seconds, steady_seconds

    from initlab.train import ChainConfig, TrainSpec, load_data

    data = load_data(TrainSpec(), None, torch.float32)
    for width in (128, 512):
        dims = [(data.features, width), *[(width, width)] * 30, (width, data.outputs)]
        config = [ChainConfig(init="kaiming", activation="relu", width=width, depth=30)]
        spec = TrainSpec(steps=40, batch_size=64, record_every=10, eval_every=40)
        sec = bmm = math.inf
        for _ in range(2):  # interleaved: both see the same machine state
            bmm = min(bmm, bmm_seconds(16, 64, dims, torch.float32))
            sec = min(sec, steady_seconds(config, spec, data, 16))
        row(f"9. training the chain, width {width}, depth 30, 16 trials batched, batch 64, "
            "Adam, statistics every 10 steps: s per step", sec,
            f"{bmm / sec:.0%} of the bare bmm rate of the same shapes (target >= 50 %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--sweep-runs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="engine figures only")
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, {platform.processor() or platform.machine()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CUDA: {torch.cuda.is_available()}, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"T = {args.trials} trials, depth 100, width 512, float32, CPU\n")
    print("| measurement | seconds | ratio |")
    print("|---|---|---|")
    floor16 = engine_rows(args.trials)
    if not args.quick:
        sweep_rows(args.sweep_runs, floor16)
        memory_rows()
        probe_rows(16)
        train_rows()
    gpu_rows()


if __name__ == "__main__":
    main()
