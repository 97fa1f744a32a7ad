"""The blocked drawing mode (initlab/draws.py, the GPU path) run on the CPU with ``forced_mode``.

Blocks of ``BLOCK`` trials, one (seed, layer, block) stream and one ``normal_`` each:
every promise of the per-trial mode must hold for it too (same seed, same numbers;
chunks and trial counts change no number; fused = separate; kept = redrawn; gradients =
autograd), and its draws must be N(0, 1). Most tests shrink ``BLOCK`` to 4 so that a
few trials span several blocks and a partial one; one keeps the real 64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from initlab import draws
from initlab.chain import run_chain, run_many
from initlab.draws import draw_mode, fill_blocked_, fill_layer_, forced_mode
from initlab.layout import GroupLayout, draw_inputs, layer_biases, layer_weights, output_gradient
from initlab.spec import ChainSpec
from initlab.streams import gradient_block_seed, input_block_seed, weight_block_seed, weight_seed
from tests.conftest import assert_gradients_are_autograds, cpu, same

EPS64 = torch.finfo(torch.float64).eps
F32 = np.finfo(np.float32).eps


@pytest.fixture
def blocked(monkeypatch):
    """The blocked mode on the CPU, with blocks of 4 trials."""
    monkeypatch.setattr(draws, "BLOCK", 4)
    with forced_mode("blocked"):
        yield 4


def assert_standard_normal(z: torch.Tensor) -> None:
    """Kolmogorov-Smirnov against N(0, 1) (sqrt(n) D < 2.7: alpha ~ 1e-6) and the first two
    moments within 5 standard errors, over every value of ``z`` (float64)."""
    values = z.reshape(-1).sort().values
    n = values.numel()
    cdf = torch.special.ndtr(values)
    upper = torch.arange(1, n + 1, dtype=torch.float64) / n
    d = torch.maximum(upper - cdf, cdf - (upper - 1 / n)).max().item()
    assert math.sqrt(n) * d < 2.7
    assert abs(values.mean().item()) < 5 / math.sqrt(n)
    assert abs(values.var().item() - 1) < 5 * math.sqrt(2 / n)


def test_the_mode_follows_the_device_and_can_be_forced():
    assert draw_mode("cpu") == "trial"  # threads over trials use every core
    assert draw_mode(torch.device("cuda")) == "blocked"  # (a device name needs no GPU)
    with forced_mode("blocked"):
        assert draw_mode("cpu") == "blocked"
        assert GroupLayout.build([cpu(width=8, depth=1, trials=1)]).mode == "blocked"
    assert draw_mode("cpu") == "trial"
    assert GroupLayout.build([cpu(width=8, depth=1, trials=1)]).mode == "trial"
    with pytest.raises(ValueError, match="mode='philox' is not allowed; allowed: trial, blocked"):
        with forced_mode("philox"):
            pass


def test_block_streams_are_apart_from_each_other_and_from_trial_streams():
    seeds = {weight_block_seed(7, layer, b) for layer in range(1, 30) for b in range(30)}
    seeds |= {input_block_seed(7, b) for b in range(30)}
    seeds |= {gradient_block_seed(7, b) for b in range(30)}
    assert len(seeds) == 29 * 30 + 60
    trial_seeds = {weight_seed(7, layer, t) for layer in range(1, 30) for t in range(30)}
    assert not seeds & trial_seeds
    assert all(0 <= s < 2**63 for s in seeds)


def test_a_block_is_torchs_draw_from_its_key(blocked):
    """Trial b * BLOCK + r is row r of one (BLOCK, n, n) normal draw from block b's key,
    for a whole block and for the partial last one alike."""
    s = cpu(init="scaled", width=16, dtype="float64", trials=10)
    w = layer_weights(s, 3, range(10))
    for block in range(3):  # trials 0-3, 4-7, 8-9 (+ 2 drawn, not used)
        ref = torch.empty(blocked, 16, 16, dtype=torch.float64).normal_(
            generator=torch.Generator().manual_seed(weight_block_seed(0, 3, block)))
        rows = w[block * blocked : (block + 1) * blocked]
        # scaled: 1 / sqrt(16) = 1 / 4, exact, so the same numbers
        torch.testing.assert_close(rows, ref[: len(rows)] / 4, rtol=0, atol=0)


def test_any_range_of_trials_gets_the_rows_of_its_blocks(blocked):
    """Chunks (any start, any length, block-aligned or not) draw exactly the matching rows
    of the whole run: a block is always drawn whole."""
    s = cpu(init="xavier", width=8, dtype="float64", trials=11, bias="normal", batch=2)
    weights, biases = layer_weights(s, 2, range(11)), layer_biases(s, 2, range(11))
    inputs, grads = draw_inputs(s, range(11)), output_gradient(s, range(11))
    for part in (range(0, 3), range(3, 9), range(5, 6), range(8, 11), range(4, 8)):
        for whole, drawn in ((weights, layer_weights(s, 2, part)),
                             (biases, layer_biases(s, 2, part)),
                             (inputs, draw_inputs(s, part)), (grads, output_gradient(s, part))):
            np.testing.assert_array_equal(drawn.numpy(), whole[part.start : part.stop].numpy())


def test_one_normal_launch_per_block_not_per_trial(blocked, monkeypatch):
    """What the GPU path is for: a layer of 10 trials is 3 draws (blocks of 4), all bases
    of the normal family derived from them."""
    calls = []
    real = torch.Tensor.normal_

    def counting(self, *args, **kw):
        calls.append(tuple(self.shape))
        return real(self, *args, **kw)

    monkeypatch.setattr(torch.Tensor, "normal_", counting)
    mats = {b: torch.empty(10, 8, 8) for b in ("normal", "uniform", "orthogonal")}
    fill_layer_(mats, 1, 1, range(10))
    assert calls == [(4, 8, 8)] * 3


def test_blocked_draws_are_standard_normal_and_independent():
    """Kolmogorov-Smirnov against Phi over 64 x 2 + 30 trials of 16 x 16 (real BLOCK = 64:
    two whole blocks and a partial one), float64: n = 40,448 values. P(sqrt(n) D > x) <=
    2 exp(-2 x^2) (Massart's DKW bound), so x = 2.7 fails a correct generator with
    probability < 1e-6. Moments: the mean has sd 1 / sqrt(n) = 0.005 and the variance sd
    sqrt(2 / n) = 0.007: 5 sd each. And no two trials' matrices are the same (a block
    repeated, or a trial drawn twice, would be)."""
    with forced_mode("blocked"):
        z = layer_weights(cpu(init="normal", init_params={"std": 1.0}, width=16,
                              dtype="float64", trials=158), 5, range(158))
    assert_standard_normal(z)
    flat = z.reshape(158, -1)
    assert torch.unique(flat[:, 0]).numel() == 158  # first entries already all differ


@pytest.mark.numerics
def test_real_blocks_give_prefixes_across_a_block_boundary():
    """BLOCK = 64: 70 trials (a whole block and a partial one) are the first 70 of 130."""
    with forced_mode("blocked"):
        big = run_chain(cpu(width=8, depth=5, trials=130, bias="normal"))
        small = run_chain(cpu(width=8, depth=5, trials=70, bias="normal"))
    for name in big.stats:
        np.testing.assert_array_equal(big.stats[name][:70], small.stats[name], err_msg=name)


def test_same_seed_same_numbers_and_another_seed_differs(blocked):
    kw = dict(init="xavier", activation="tanh", width=16, depth=6, trials=10, batch=2,
              gradients=True, bias="uniform", input_correlation=0.3)
    a, b = run_chain(cpu(**kw)), run_chain(cpu(**kw))
    same(a, b)
    c = run_chain(cpu(seed=1, **kw))
    assert not np.array_equal(a.stats["std"], c.stats["std"])
    with forced_mode("trial"):  # the other mode: the same distributions, other numbers
        d = run_chain(cpu(**kw))
    assert not np.array_equal(a.stats["std"], d.stats["std"])


def test_fewer_trials_or_layers_are_an_exact_prefix(blocked):
    big = run_chain(cpu(width=16, depth=8, trials=10))
    fewer = run_chain(cpu(width=16, depth=8, trials=6))  # ends inside block 1
    shallower = run_chain(cpu(width=16, depth=3, trials=10))
    np.testing.assert_array_equal(big.stats["std"][:6], fewer.stats["std"])
    np.testing.assert_array_equal(big.stats["std"][:, :4], shallower.stats["std"])


@pytest.mark.numerics
def test_chunks_are_whole_blocks_and_change_no_draw(blocked):
    """budget=1 would be one trial per chunk; blocked, chunks are whole blocks (4), and
    the statistics are the one-chunk run's up to the BLAS blocking (the draws are equal):
    float32, 2 * depth * width * eps as in test_chain's chunk test."""
    spec = cpu(width=32, depth=6, trials=10, bias="normal", gradients=True)
    assert GroupLayout.build([spec], budget=1).chunks() == [range(0, 4), range(4, 8),
                                                           range(8, 10)]
    assert GroupLayout.build([spec]).chunks() == [range(0, 10)]
    whole, chunked = run_chain(spec), run_chain(spec, budget=1)
    rtol = 2 * spec.depth * spec.width * F32
    np.testing.assert_allclose(whole.stats["std"], chunked.stats["std"], rtol=rtol)
    np.testing.assert_allclose(whole.grads["grad_x_std"], chunked.grads["grad_x_std"],
                               rtol=2 * rtol)  # forward and back


@pytest.mark.numerics
def test_fused_pass_equals_separate_runs(blocked):
    """As test_fusion's (float64, rtol = 20 * depth * width * eps, the mean on the rms's
    scale), in the blocked mode, across 3 blocks."""
    depth, width = 6, 16
    specs = [cpu(init=i, activation=a, width=width, depth=depth, trials=10, batch=2,
                 dtype="float64", gradients=True)
             for i in ("zero", "scaled", "xavier", "orthogonal", "lsuv") for a in ("none", "relu")]
    rtol = 20 * depth * width * EPS64
    for spec, fused in zip(specs, run_many(specs), strict=True):
        alone = run_chain(spec)
        for name in ("std", "rms", "abs_max"):
            np.testing.assert_allclose(fused.stats[name], alone.stats[name], rtol=rtol, atol=0)
        assert (np.abs(fused.stats["mean"] - alone.stats["mean"])
                <= rtol * alone.stats["rms"]).all()
        for name in ("grad_x_std", "grad_w_std"):
            np.testing.assert_allclose(fused.grads[name], alone.grads[name], rtol=rtol, atol=0)


def test_kept_weights_give_the_redrawn_numbers(blocked):
    spec = cpu(width=16, depth=8, trials=10, batch=2, gradients=True, init="kaiming",
               activation="tanh", bias="normal")
    same(run_chain(spec, keep=0), run_chain(spec, keep=2**40))


def test_the_backward_pass_is_autograds(blocked):
    """test_bias_engine's autograd reference (``assert_gradients_are_autograds``, its
    error argument beside it), blocked: every draw of the rebuilt chain blocked too, over
    3 blocks of 4 trials (the last one cut)."""
    assert_gradients_are_autograds(cpu(
        init="scaled", init_params={"sigma_w2": 1.76}, activation="tanh", bias="normal",
        bias_params={"sigma_b2": 0.3}, width=16, depth=5, trials=10, batch=3,
        input_correlation=0.5, dtype="float64", gradients=True))


def test_blocked_and_per_trial_modes_agree_in_distribution():
    """Different numbers, the same law: as test_chain's CPU-vs-GPU test. ln rms per trial
    has sd sqrt(5 beta) / 2 (Hanin & Rolnick, He/ReLU); two medians of 64 trials differ by
    less than 4 standard errors of their difference."""
    kw = dict(init="kaiming", activation="relu", width=128, depth=25, trials=64)
    trial = run_chain(cpu(**kw))
    with forced_mode("blocked"):
        blocked = run_chain(cpu(**kw))
    med_t, med_b = (np.median(np.log(r.final("rms"))) for r in (trial, blocked))
    se = 1.2533 * math.sqrt(5 * 25 / 128) / 2 / math.sqrt(64)
    assert abs(med_t - med_b) < 4 * math.sqrt(2) * se


def test_a_partial_block_is_drawn_whole_through_a_scratch_block(blocked):
    """A non-contiguous destination, or rows cut from a block, come from the same whole draw."""
    out = torch.empty(6, 3, 3, dtype=torch.float64)
    fill_blocked_(out, range(2, 8), lambda b: 100 + b)
    ref = torch.cat([torch.empty(4, 3, 3, dtype=torch.float64).normal_(
        generator=torch.Generator().manual_seed(100 + b)) for b in (0, 1)])
    np.testing.assert_array_equal(out.numpy(), ref[2:8].numpy())
    strided = torch.empty(3, 3, 8, dtype=torch.float64).permute(2, 0, 1)  # (8, 3, 3) view
    fill_blocked_(strided, range(0, 8), lambda b: 100 + b)
    np.testing.assert_array_equal(strided.numpy(), ref.numpy())
    with pytest.raises(ValueError, match="blocked draws need consecutive trials"):
        fill_blocked_(out, range(0, 12, 2), lambda b: b)


# ------------------------------------------------------------------------------- CUDA

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_draws_blocked_with_every_promise():
    """On CUDA the engine draws blocked by default: same seed, same numbers; chunks of
    whole blocks change no draw; a run of 70 trials is the first 70 of 130; kept = redrawn."""
    kw = dict(width=64, depth=6, trials=130, batch=2, bias="normal", device="cuda")
    spec = ChainSpec(**kw, gradients=True)
    assert GroupLayout.build([spec]).mode == "blocked"
    assert all(r.start % draws.BLOCK == 0 for r in GroupLayout.build([spec], budget=1).chunks())
    a, b = run_chain(spec), run_chain(spec)
    same(a, b)
    same(run_chain(spec, keep=0), run_chain(spec, keep=2**40))
    w = layer_weights(spec, 2, range(130), device="cuda")
    np.testing.assert_array_equal(layer_weights(spec, 2, range(60, 100), device="cuda").cpu(),
                                  w[60:100].cpu())
    chunked = run_chain(spec, budget=1)
    rtol = 2 * spec.depth * spec.width * F32
    np.testing.assert_allclose(a.stats["std"], chunked.stats["std"], rtol=rtol)
    small = run_chain(ChainSpec(**{**kw, "trials": 70}, gradients=False))
    forward = run_chain(ChainSpec(**kw, gradients=False))
    np.testing.assert_allclose(small.stats["std"], forward.stats["std"][:70], rtol=rtol)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_blocked_draws_are_standard_normal():
    """The KS and moment bounds of the CPU test, on CUDA's generator (float32: n = 40,448
    values; float32 rounding moves the CDF by ~1e-7, far below the 0.013 allowed)."""
    z = layer_weights(ChainSpec(init="normal", init_params={"std": 1.0}, width=16,
                                trials=158, device="cuda"), 5, range(158), device="cuda")
    assert_standard_normal(z.double().cpu())


def test_the_gpu_benchmark_runs_blocked_on_cuda_and_measures_nothing_without():
    """benchmarks/gpu_bench.py (called by bench.py): [] without CUDA; on CUDA one row per
    trial count, drawn blocked, every statistic finite, chunks of whole blocks."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_bench.py"
    spec = importlib.util.spec_from_file_location("gpu_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.gpu_trials_per_second((70,), depth=3, width=16, budget=1)
    if not torch.cuda.is_available():
        assert rows == []
        return
    (row,) = rows
    assert (row["mode"], row["chunk"], row["chunks"], row["finite"]) == ("blocked", 64, 2, True)
    assert row["trials_per_s"] > 0 and row["peak_gpu_mb"] > 0
