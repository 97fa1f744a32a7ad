"""initlab benchmark: prints a table of figures, each a ratio against a baseline run in
the same process. Not a test.

    .venv/bin/python benchmarks/bench.py            # about 6 minutes on 2 cores
    .venv/bin/python benchmarks/bench.py --quick    # engine figures only
    .venv/bin/python benchmarks/bench.py --trials 64 --sweep-runs 3

1. RNG floors: drawing the weights alone (trials x depth 100 x 512^2 normals, one keyed
   generator per trial), on one thread and on every core (``initlab.draws.fill_layer_``)
2. the engine, all statistics: forward; with gradients, weights kept or redrawn
3. the seed's own loop, run ``trials`` times
4. a 5 schemes x 3 activations sweep: one shared-draw pass vs 15 engine calls
5. ``initlab -m`` default sweep end to end, from its own log: start-up (imports, checks,
   composing configs), engine, job files, Hydra's per-job bookkeeping, report
6. peak memory (RSS) at width 2048, depth 100 vs 1000, weights redrawn
7. with CUDA: trials per second at depth 100, width 512 (``benchmarks/gpu_bench.py``)
8. the probe on models (``benchmarks/probe_bench.py``): seconds per trial
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
from datetime import datetime
from pathlib import Path

import torch

from initlab import draws
from initlab.chain import run_chain, run_many
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


def rng_floor(trials: int, threads: int | None, depth: int = 100, width: int = 512) -> None:
    """What the engine's draws cost alone: ``fill_layer_`` into a (trials, 512, 512) buffer,
    once per layer, with ``threads`` Python threads (None: torch's thread count)."""
    w = {"normal": torch.empty(trials, width, width)}
    saved = draws.draw_threads
    if threads is not None:
        draws.draw_threads = lambda: threads
    try:
        for layer in range(1, depth + 1):
            draws.fill_layer_(w, 0, layer, range(trials))
    finally:
        draws.draw_threads = saved


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
        if (m := re.search(r"Ran \d+ jobs in [\d.]+ s: measuring ([\d.]+) s, job files ([\d.]+)",
                           line)):
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


def engine_rows(t: int) -> None:
    one = timed(lambda: rng_floor(t, 1), repeat=2)
    row(f"1a. RNG floor, one thread: {t} x 100 keyed 512^2 draws", one, "")
    floor = timed(lambda: rng_floor(t, None), repeat=2)
    row(f"1b. RNG floor, every core ({draws.draw_threads()} threads)", floor,
        f"1.00 (baseline); {one / floor:.2f} x faster than 1a")
    fwd = ChainSpec(init="kaiming", activation="relu", trials=t, gradients=False, device="cpu")
    engine = timed(lambda: run_chain(fwd), repeat=2)
    row("2a. engine forward, all statistics and histograms", engine,
        f"{engine / floor:.2f} x floor 1b (target <= 1.15)")
    grad = ChainSpec(init="kaiming", activation="relu", trials=t, gradients=True, device="cpu")
    kept = timed(lambda: run_chain(grad), repeat=2)
    row("2b. engine + gradients, weights kept (they fit)", kept,
        f"{kept / engine:.2f} x forward 2a (target <= 1.3)")
    redrawn = timed(lambda: run_chain(grad, keep=0))
    row("2c. engine + gradients, weights redrawn (keep_fraction=0)", redrawn,
        f"{redrawn / engine:.2f} x forward 2a")
    seed = timed(lambda: seed_loop(t))
    row(f"3. the seed's loop x {t} (relu, kaiming; no statistics)", seed,
        f"{seed / engine:.2f} x engine 2a")
    specs = [ChainSpec(init=i, activation=a, trials=t, gradients=False, device="cpu")
             for i in SCHEMES for a in ACTIVATIONS]
    fused = timed(lambda: run_many(specs), repeat=2)
    row("4a. 5x3 sweep, one shared-draw pass (forward)", fused,
        f"{fused / engine:.2f} x one config 2a (target <= 1.3)")
    separate = timed(lambda: [run_chain(s) for s in specs])
    row("4b. 5x3 sweep, 15 engine calls", separate, f"{separate / fused:.1f} x the shared pass")


def sweep_rows(runs: int) -> None:
    best: dict[str, float] | None = None
    for _ in range(runs):
        found = end_to_end([])
        if best is None or found["wall"] < best["wall"]:
            best = found
    wall = best["wall"]
    row(f"5. `initlab -m init=<5> activation=<3>` (16 trials, gradients, report), best of "
        f"{runs}", wall, "1.00 (baseline; target <= 10 s, engine >= 50 %)")
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
    engine_rows(args.trials)
    if not args.quick:
        sweep_rows(args.sweep_runs)
        memory_rows()
        probe_rows(16)
    gpu_rows()


if __name__ == "__main__":
    main()
