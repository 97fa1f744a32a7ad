"""The engine against an independent, literal loop and against its own invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from initlab.chain import input_seed, run_chain, weight_seed
from initlab.spec import ChainSpec, SpecError

TORCH_INIT = {
    "scaled": lambda w, g: torch.nn.init.normal_(w, 0, 1 / math.sqrt(w.shape[1]), generator=g),
    # U(-b, b) as b * erf(Z / sqrt(2)) of a normal draw (initlab.schemes), b = sqrt(6 / 2n)
    "xavier": lambda w, g: w.copy_(
        torch.erf(torch.nn.init.normal_(w, generator=g) / math.sqrt(2))
        * math.sqrt(6 / (w.shape[0] + w.shape[1]))
    ),
    "kaiming": lambda w, g: torch.nn.init.kaiming_normal_(w, nonlinearity="relu", generator=g),
}
ACT = {"none": lambda x: x, "tanh": torch.tanh, "relu": lambda x: x.clamp_min(0.0)}


def seed_style_loop(spec: ChainSpec, trial: int) -> np.ndarray:
    """The seed's loop for one trial, weights from torch.nn.init: per-layer (mean, std)."""
    gen = torch.Generator()
    x = torch.empty(spec.width, spec.batch, dtype=torch.float64)
    x.normal_(generator=gen.manual_seed(input_seed(spec.seed, trial)))
    out = [(x.mean().item(), x.std().item())]
    for layer in range(1, spec.depth + 1):
        w = torch.empty(spec.width, spec.width, dtype=torch.float64)
        TORCH_INIT[spec.init](w, gen.manual_seed(weight_seed(spec.seed, layer, trial)))
        x = ACT[spec.activation](w @ x)
        out.append((x.mean().item(), x.std().item()))
    return np.array(out)


@pytest.mark.parametrize(("init", "activation"), [("scaled", "none"), ("xavier", "tanh"),
                                                  ("kaiming", "relu")])
def test_batched_engine_equals_the_seed_loop(init, activation):
    spec = ChainSpec(init=init, activation=activation, width=96, depth=12, trials=3, batch=4,
                     seed=11, dtype="float64")
    result = run_chain(spec)
    for trial in range(spec.trials):
        ref = seed_style_loop(spec, trial)
        np.testing.assert_allclose(result.stats["mean"][trial], ref[:, 0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(result.stats["std"][trial], ref[:, 1], rtol=1e-9)


def test_statistics_definitions():
    result = run_chain(ChainSpec(init="kaiming", width=64, depth=2, trials=2, batch=3))
    x = torch.empty(64, 3).normal_(generator=torch.Generator().manual_seed(input_seed(0, 1)))
    x = x.double()
    assert result.stats["mean"][1, 0] == pytest.approx(x.mean().item())
    assert result.stats["std"][1, 0] == pytest.approx(x.std(correction=1).item())
    assert result.stats["rms"][1, 0] == pytest.approx(x.square().mean().sqrt().item())
    assert result.stats["abs_max"][1, 0] == pytest.approx(x.abs().max().item())
    # After ReLU about half the units are exactly zero.
    assert 0.3 < result.stats["zero_frac"][:, 1:].mean() < 0.7


def test_same_seed_same_numbers_and_another_seed_differs():
    spec = ChainSpec(init="xavier", activation="tanh", width=64, depth=20, trials=4)
    a, b = run_chain(spec), run_chain(spec)
    for name in a.stats:
        np.testing.assert_array_equal(a.stats[name], b.stats[name])
    pd_a = a.frame()
    assert pd_a.equals(b.frame())
    c = run_chain(ChainSpec(init="xavier", activation="tanh", width=64, depth=20, trials=4, seed=1))
    assert not np.array_equal(a.stats["std"], c.stats["std"])


def test_fewer_trials_or_layers_are_an_exact_prefix():
    big = run_chain(ChainSpec(width=64, depth=20, trials=5))
    fewer_trials = run_chain(ChainSpec(width=64, depth=20, trials=2))
    shallower = run_chain(ChainSpec(width=64, depth=7, trials=5))
    np.testing.assert_array_equal(big.stats["std"][:2], fewer_trials.stats["std"])
    np.testing.assert_array_equal(big.stats["std"][:, :8], shallower.stats["std"])


def test_memory_chunks_do_not_change_the_numbers():
    """Chunking trials changes only the BLAS kernel's rounding, not the draws."""
    spec = ChainSpec(width=64, depth=10, trials=5)
    whole, one_by_one = run_chain(spec), run_chain(spec, budget=1)
    np.testing.assert_allclose(whole.stats["std"], one_by_one.stats["std"], rtol=1e-5)


def test_schemes_sharing_a_base_see_the_same_matrices():
    """Common random numbers: kaiming = sqrt(2) * scaled matrices, and ReLU is homogeneous,
    so layer l of the kaiming chain is exactly sqrt(2)^l times the scaled chain."""
    kw = dict(activation="relu", width=64, depth=30, trials=3, dtype="float64")
    kaiming = run_chain(ChainSpec(init="kaiming", **kw))
    scaled = run_chain(ChainSpec(init="scaled", **kw))
    ratio = kaiming.stats["std"] / scaled.stats["std"]
    expect = np.broadcast_to(np.sqrt(2.0) ** np.arange(31), ratio.shape)
    np.testing.assert_allclose(ratio, expect, rtol=1e-9)


def test_shared_weights_reuse_one_matrix():
    spec = ChainSpec(init="scaled", activation="none", width=32, depth=6, trials=1, batch=2,
                     weights="shared", dtype="float64")
    result = run_chain(spec)
    gen = torch.Generator()
    w = torch.empty(32, 32, dtype=torch.float64)
    TORCH_INIT["scaled"](w, gen.manual_seed(weight_seed(0, 1, 0)))
    x = torch.empty(32, 2, dtype=torch.float64).normal_(generator=gen.manual_seed(input_seed(0, 0)))
    expect = torch.linalg.matrix_power(w, 6) @ x
    assert result.stats["std"][0, -1] == pytest.approx(expect.std().item(), rel=1e-9)


def test_zero_init_gives_all_zeros():
    result = run_chain(ChainSpec(init="zero", activation="tanh", width=64, depth=5, trials=2))
    assert (result.stats["zero_frac"][:, 1:] == 1.0).all()
    assert (result.stats["std"][:, 1:] == 0.0).all()
    assert (result.stats["abs_max"][:, 1:] == 0.0).all()


def test_overflow_is_data_and_float64_statistics_stay_finite():
    """N(0,1) weights grow the signal by sqrt(512) per layer: float32 overflows near layer 28.
    Before that, x^2 is already beyond float32 (from layer ~15) — the std must still be finite."""
    result = run_chain(ChainSpec(init="normal", activation="none", depth=40, trials=2))
    finite = result.stats["finite"]
    assert finite[:, :20].all() and not finite[:, -1].any()
    still_finite = finite
    assert np.isfinite(result.stats["std"][still_finite]).all()
    assert (result.stats["std"][still_finite] < 3.5e38).all()
    assert (result.stats["std"][:, 20] > 1e26).all()  # x^2 ~ 1e53 would overflow float32
    assert np.isnan(result.stats["std"][:, -1]).all()


def test_float64_holds_where_float32_overflows():
    result = run_chain(ChainSpec(init="normal", activation="none", depth=60, trials=2,
                                 dtype="float64"))
    assert result.stats["finite"].all()
    # std_l ~ sqrt(512)^l: log10 grows by log10(sqrt(512)) = 1.355 per layer.
    slope = np.polyfit(np.arange(61), np.log10(np.median(result.stats["std"], axis=0)), 1)[0]
    assert slope == pytest.approx(0.5 * math.log10(512), abs=0.02)


def test_frame_is_tidy():
    result = run_chain(ChainSpec(width=32, depth=4, trials=3, batch=2))
    frame = result.frame()
    assert len(frame) == 3 * 5
    for col in ("init", "activation", "depth", "width", "trial", "layer", "mean", "std", "rms",
                "zero_frac", "abs_max", "finite"):
        assert col in frame.columns
    assert frame.groupby("trial").layer.apply(list).tolist() == [list(range(5))] * 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"depth": 0}, "depth=0 is not allowed; depth must be an integer >= 1"),
        ({"width": -1}, "width=-1 is not allowed"),
        ({"trials": 0}, "trials=0 is not allowed"),
        ({"init": "lecunn"}, "init='lecunn' is not allowed; allowed: zero, normal"),
        ({"activation": "swish"}, "activation='swish' is not allowed; allowed: none, tanh, relu"),
        ({"dtype": "float16"}, "allowed: float32, float64"),
        ({"weights": "tied"}, "allowed: fresh, shared"),
        ({"device": "tpu"}, "allowed: auto, cpu, cuda"),
    ],
)
def test_bad_specs_say_what_is_allowed(kwargs, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        ChainSpec(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(SpecError, match="device='cuda' is not available"):
        run_chain(ChainSpec(device="cuda", width=8, depth=1))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_matches_cpu_statistics():
    """Different RNG streams on the GPU: compare distributions, not numbers."""
    kw = dict(init="kaiming", activation="relu", width=256, depth=50, trials=64)
    cpu = run_chain(ChainSpec(device="cpu", **kw))
    gpu = run_chain(ChainSpec(device="cuda", **kw))
    assert gpu.device.startswith("cuda")
    med_cpu, med_gpu = (np.median(np.log(r.final("rms"))) for r in (cpu, gpu))
    # ln rms per trial has sd sqrt(5 beta) / 2 (Hanin & Rolnick, He/ReLU); two medians of 64
    # trials differ by less than 4 standard errors of their difference.
    se = 1.2533 * math.sqrt(5 * 50 / 256) / 2 / math.sqrt(64)
    assert abs(med_cpu - med_gpu) < 4 * math.sqrt(2) * se
