"""The engine (initlab/chain.py) against an independent, literal loop and its own invariants."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from initlab.chain import cut, run_chain, run_many
from initlab.columns import STATS
from initlab.layout import GroupLayout, group_key
from initlab.spec import ChainSpec, SpecError
from initlab.streams import input_seed, weight_seed
from tests.conftest import cpu, same

REPO = Path(__file__).resolve().parents[1]
F32 = np.finfo(np.float32).eps

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


@pytest.mark.numerics
@pytest.mark.parametrize(("init", "activation"), [("scaled", "none"), ("xavier", "tanh"),
                                                  ("kaiming", "relu")])
def test_batched_engine_equals_the_seed_loop(init, activation):
    spec = cpu(init=init, activation=activation, width=48, depth=12, trials=3, batch=4, seed=11,
               dtype="float64")
    result = run_chain(spec)
    # float64, (s * W) @ x (loop) against W @ (s * x) (engine): per layer the two differ by
    # about width * eps relative (the dot products' rounding, with the cancellation of a
    # Gaussian W); over 12 layers at most 12 * 48 * 2.2e-16 ~ 1.3e-13 << 1e-9. The mean is
    # a cancelling sum (|mean| ~ std / sqrt(width * batch)): compared against the std's scale.
    for trial in range(spec.trials):
        ref = seed_style_loop(spec, trial)
        np.testing.assert_allclose(result.stats["mean"][trial], ref[:, 0], rtol=0,
                                   atol=1e-9 * ref[:, 1].max())
        np.testing.assert_allclose(result.stats["std"][trial], ref[:, 1], rtol=1e-9)


def test_statistics_definitions():
    result = run_chain(cpu(init="kaiming", width=64, depth=2, trials=2, batch=3))
    x = torch.empty(64, 3).normal_(generator=torch.Generator().manual_seed(input_seed(0, 1)))
    x = x.double()
    assert result.stats["mean"][1, 0] == pytest.approx(x.mean().item())
    assert result.stats["std"][1, 0] == pytest.approx(x.std(correction=1).item())
    assert result.stats["rms"][1, 0] == pytest.approx(x.square().mean().sqrt().item())
    assert result.stats["abs_max"][1, 0] == pytest.approx(x.abs().max().item())
    # After ReLU each unit is zero with probability 1/2; 2 trials x 2 layers x 192 values:
    # the fraction has sd 0.5 / sqrt(768) = 0.018, so (0.3, 0.7) is 11 sd wide each side.
    assert 0.3 < result.stats["zero_frac"][:, 1:].mean() < 0.7


def test_same_seed_same_numbers_and_another_seed_differs():
    spec = cpu(init="xavier", activation="tanh", width=32, depth=10, trials=3, gradients=True)
    a, b = run_chain(spec), run_chain(spec)
    same(a, b)
    c = run_chain(cpu(init="xavier", activation="tanh", width=32, depth=10, trials=3, seed=1))
    assert not np.array_equal(a.stats["std"], c.stats["std"])


def test_fewer_trials_or_layers_are_an_exact_prefix():
    big = run_chain(cpu(width=64, depth=20, trials=5))
    fewer_trials = run_chain(cpu(width=64, depth=20, trials=2))
    shallower = run_chain(cpu(width=64, depth=7, trials=5))
    np.testing.assert_array_equal(big.stats["std"][:2], fewer_trials.stats["std"])
    np.testing.assert_array_equal(big.stats["std"][:, :8], shallower.stats["std"])


def test_a_deeper_run_holds_every_shallower_one():
    deep = run_chain(cpu(init="xavier", activation="tanh", width=32, depth=20, trials=3))
    for depth in (1, 7):
        alone = run_chain(cpu(init="xavier", activation="tanh", width=32, depth=depth, trials=3))
        shallow = cut(deep, depth)
        assert shallow.spec == alone.spec and shallow.settings == alone.settings
        same(shallow, alone)
        for stat in ("mean", "std"):
            np.testing.assert_array_equal(shallow.curve(stat), alone.curve(stat))
        assert shallow.predictions == alone.predictions
    with pytest.raises(ValueError, match="depth=21 is not allowed"):
        cut(deep, 21)
    with_grads = run_chain(cpu(width=16, depth=3, trials=1, gradients=True))
    with pytest.raises(ValueError, match="a gradient pass depends on the depth"):
        cut(with_grads, 2)


@pytest.mark.numerics
def test_memory_chunks_do_not_change_the_draws():
    """Chunking trials changes only the BLAS kernel's blocking, not the draws."""
    spec = cpu(width=64, depth=10, trials=5)
    whole, one_by_one = run_chain(spec), run_chain(spec, budget=1)
    # float32: each layer's dot products of 64 terms round with relative error ~ 64 * eps
    # (sqrt(n) random rounding times the sqrt(n) cancellation of a Gaussian W); two
    # blockings differ by at most twice that per layer, and errors add over 10 layers:
    # 2 * 10 * 64 * eps = 1.5e-4.
    np.testing.assert_allclose(whole.stats["std"], one_by_one.stats["std"],
                               rtol=2 * spec.depth * spec.width * F32)


def test_the_order_of_a_group_does_not_change_a_number():
    """The layout sorts configs by base: any order of the same specs is the same computation."""
    specs = [cpu(init=i, activation=a, width=32, depth=6, trials=2, batch=2, gradients=True)
             for i in ("orthogonal", "xavier", "zero", "kaiming") for a in ("tanh", "relu")]
    forward = run_many(specs)
    backward = run_many(specs[::-1])[::-1]
    for a, b in zip(forward, backward, strict=True):
        assert a.spec == b.spec
        same(a, b)


def test_group_layout_puts_configs_sharing_a_base_side_by_side():
    specs = [cpu(init=i, width=16, depth=2, trials=3, batch=2)
             for i in ("xavier", "zero", "kaiming", "scaled", "torch_default", "orthogonal")]
    layout = GroupLayout.build(specs)
    assert [specs[k] for k in layout.order] == list(layout.specs)
    bases = [d.base for d in layout.recipes]
    assert bases == sorted(bases)  # one contiguous run of columns per base
    assert "zero" not in layout.blocks  # no matrix, no matmul: its h stays 0
    for base, block in layout.blocks.items():
        owners = [pos for pos, cols in enumerate(layout.columns)
                  if block.start <= cols.start < block.stop]
        assert {bases[pos] for pos in owners} == {base}
        assert block.stop - block.start == 2 * bases.count(base)
    with pytest.raises(ValueError, match="must differ only in init, init_params, activation"):
        GroupLayout.build([cpu(width=16, depth=2, trials=1), cpu(width=16, depth=3, trials=1)])


def test_group_key_is_every_setting_but_scheme_and_activation():
    base = cpu(init="kaiming", activation="relu", width=16, depth=4, trials=2)
    assert group_key(base) == group_key(cpu(init="xavier", init_params={"gain": 2.0},
                                            activation="tanh", width=16, depth=4, trials=2))
    for change in ({"width": 32}, {"depth": 5}, {"trials": 3}, {"batch": 2}, {"seed": 1},
                   {"dtype": "float64"}, {"weights": "shared"}, {"gradients": True},
                   {"keep_fraction": 0.5}):  # one budget for kept weights per pass
        other = cpu(**{"init": "kaiming", "width": 16, "depth": 4, "trials": 2, **change})
        assert group_key(other) != group_key(base), change


def test_progress_counts_every_trial_layer_of_every_config():
    specs = [cpu(init=i, width=16, depth=5, trials=3) for i in ("kaiming", "xavier")]
    done = []
    run_many(specs, budget=1, progress=done.append)  # chunks of one trial
    assert sum(done) == 2 * 3 * (5 + 1)
    assert len(done) == 3 * (5 + 1)  # one call per layer per chunk


def test_backward_pass_redraws_weights_instead_of_keeping_them(monkeypatch):
    """One buffer of weights per base distribution, refilled depth times going forward and
    depth - 1 times going back (the last layer's are still in hand): nothing is kept per
    layer. Every fill goes through the one drawing path, ``initlab.draws.fill_layer_``."""
    import initlab.chain as chain
    import initlab.layout as layout

    fills, allocated = [], []
    real_fill, real_empty = layout.fill_layer_, torch.empty

    def counting_fill(mats, seed, layer, trials, fill=None, mode=None, use=None):
        fills.append((layer, {id(m) for m in mats.values()}))
        return real_fill(mats, seed, layer, trials, fill, mode, use)

    def counting_empty(*shape, **kw):
        tensor = real_empty(*shape, **kw)
        if len(shape) == 3 and shape[1] == shape[2] == 16:
            allocated.append(tensor)
        return tensor

    monkeypatch.setattr(layout, "fill_layer_", counting_fill)
    monkeypatch.setattr(chain.torch, "empty", counting_empty)
    layout.release_memory()  # no buffer left from an earlier call in this process
    depth = 50
    result = chain.run_chain(cpu(width=16, depth=depth, trials=2, gradients=True, init="scaled",
                                 activation="tanh"), keep=0)  # keep=0: nothing may be kept
    assert [layer for layer, _ in fills] == [*range(1, depth + 1), *range(depth - 1, 0, -1)]
    assert len({i for _, ids in fills for i in ids}) == 1  # the same buffer every time
    assert len(allocated) == 1
    assert np.isfinite(result.grads["grad_x_std"]).all()


@pytest.mark.numerics
def test_schemes_sharing_a_base_see_the_same_matrices():
    """Common random numbers: kaiming = sqrt(2) * scaled matrices, and ReLU is homogeneous,
    so layer l of the kaiming chain is sqrt(2)^l times the scaled chain."""
    kw = dict(activation="relu", width=64, depth=30, trials=3, dtype="float64")
    kaiming = run_chain(cpu(init="kaiming", **kw))
    scaled = run_chain(cpu(init="scaled", **kw))
    ratio = kaiming.stats["std"] / scaled.stats["std"]
    expect = np.broadcast_to(np.sqrt(2.0) ** np.arange(31), ratio.shape)
    # Scaling x by sqrt(2) before the matmul is exact only up to one rounding per layer
    # (2^(1/2) is not a power of two): 30 layers x (a few eps) << 1e-9.
    np.testing.assert_allclose(ratio, expect, rtol=1e-9)


@pytest.mark.numerics
def test_shared_weights_reuse_one_matrix():
    spec = cpu(init="scaled", activation="none", width=32, depth=6, trials=1, batch=2,
               weights="shared", dtype="float64")
    result = run_chain(spec)
    gen = torch.Generator()
    w = torch.empty(32, 32, dtype=torch.float64)
    TORCH_INIT["scaled"](w, gen.manual_seed(weight_seed(0, 1, 0)))
    x = torch.empty(32, 2, dtype=torch.float64).normal_(generator=gen.manual_seed(input_seed(0, 0)))
    expect = torch.linalg.matrix_power(w, 6) @ x
    # float64, 6 products of 32 terms: <= 6 * 32 * 2.2e-16 ~ 4e-14 relative, << 1e-9
    assert result.stats["std"][0, -1] == pytest.approx(expect.std().item(), rel=1e-9)


def test_zero_init_gives_all_zeros():
    result = run_chain(cpu(init="zero", activation="tanh", width=64, depth=5, trials=2))
    assert (result.stats["zero_frac"][:, 1:] == 1.0).all()
    assert (result.stats["std"][:, 1:] == 0.0).all()
    assert (result.stats["abs_max"][:, 1:] == 0.0).all()
    assert set(result.stats) == set(STATS)


@pytest.mark.numerics
def test_overflow_is_data_and_float64_statistics_stay_finite():
    """N(0,1) weights grow the signal by sqrt(64) = 8 per layer: float32 (max 3.4e38) overflows
    near layer log_8(3.4e38) ~ 42. From layer ~22 on, x^2 (> 8^44 ~ 5e39) is beyond float32
    already: the std must still be finite there (statistics are reduced in float64).
    The log of the std drifts from 8^l by about sqrt(l / 64) in ln (chi-square steps), a
    factor < 25 at 4 sd: layer 38 (8^38 = 2e34) stays finite, layer 24 has std > 1.8e19
    (sqrt of float32's max), layer 60 (8^60 = 1.5e54) is past it."""
    result = run_chain(cpu(init="normal", activation="none", width=64, depth=60, trials=2))
    finite = result.stats["finite"]
    assert finite[:, :39].all() and not finite[:, -1].any()
    assert np.isfinite(result.stats["std"][finite]).all()
    assert (result.stats["std"][finite] < 3.5e38).all()
    assert (result.stats["std"][:, 24] > 1.8e19).all()
    assert np.isnan(result.stats["std"][:, -1]).all()


def test_float64_holds_where_float32_overflows():
    result = run_chain(cpu(init="normal", activation="none", width=128, depth=60, trials=2,
                           dtype="float64"))
    assert result.stats["finite"].all()  # 11.3^60 ~ 1e63, far beyond float32's 3.4e38
    # std_l ~ sqrt(128)^l: log10 grows by log10(sqrt(128)) = 1.05 per layer; each layer's
    # factor has ln-sd 1 / sqrt(2 * 128) = 0.06, so the fitted slope of a 60-step walk is
    # off by ~0.06 / sqrt(60) * 1.2 / ln 10 ~ 0.004 in log10 (0.02 is 5 sd).
    slope = np.polyfit(np.arange(61), np.log10(np.median(result.stats["std"], axis=0)), 1)[0]
    assert slope == pytest.approx(0.5 * math.log10(128), abs=0.02)


def test_frame_is_tidy():
    result = run_chain(cpu(width=32, depth=4, trials=3, batch=2))
    frame = result.frame()
    assert len(frame) == 3 * 5
    for col in ("init", "activation", "depth", "width", "trial", "layer", *STATS):
        assert col in frame.columns
    assert frame.groupby("trial").layer.apply(list).tolist() == [list(range(5))] * 3
    np.testing.assert_array_equal(frame["std"].to_numpy().reshape(3, 5), result.stats["std"])


def test_the_engine_imports_no_pandas_hydra_or_plots():
    """``chain.py`` is spec in, arrays out (with their prediction): tables, files, the
    command line and figures live elsewhere."""
    code = ("import sys, initlab.chain; "
            "print(sorted(m for m in ('pandas', 'hydra', 'initlab.store', "
            "'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"


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
        run_chain(ChainSpec(device="cuda", width=8, depth=1, trials=1, gradients=False))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_matches_cpu_statistics():
    """Different RNG streams on the GPU (blocks of trials keyed (seed, layer, block), CUDA's
    generator; the CPU draws per trial): compare distributions, not numbers."""
    kw = dict(init="kaiming", activation="relu", width=256, depth=50, trials=64, gradients=False)
    cpu_run = run_chain(ChainSpec(device="cpu", **kw))
    gpu_run = run_chain(ChainSpec(device="cuda", **kw))
    assert gpu_run.device.startswith("cuda")
    med_cpu, med_gpu = (np.median(np.log(r.final("rms"))) for r in (cpu_run, gpu_run))
    # ln rms per trial has sd sqrt(5 beta) / 2 (Hanin & Rolnick, He/ReLU); two medians of 64
    # trials differ by less than 4 standard errors of their difference.
    se = 1.2533 * math.sqrt(5 * 50 / 256) / 2 / math.sqrt(64)
    assert abs(med_cpu - med_gpu) < 4 * math.sqrt(2) * se


def count_fills(monkeypatch) -> list[int]:
    """The layers the engine draws, in order (``layout.fill_layer_`` counted, not changed)."""
    import initlab.layout as layout

    fills: list[int] = []
    real_fill = layout.fill_layer_

    def counting_fill(mats, seed, layer, trials, fill=None, mode=None, use=None):
        fills.append(layer)
        return real_fill(mats, seed, layer, trials, fill, mode, use)

    monkeypatch.setattr(layout, "fill_layer_", counting_fill)
    return fills


def test_kept_weights_give_the_redrawn_numbers(monkeypatch):
    """With room to keep them, the forward pass's weights serve the backward pass: each layer
    is drawn once (depth fills, none going back), and every statistic, gradients included,
    is exactly what redrawing gives (the same numbers through the same operations)."""
    import initlab.chain as chain

    spec = cpu(width=16, depth=12, trials=3, batch=2, gradients=True, init="kaiming",
               activation="tanh", bias="normal")
    redrawn = chain.run_chain(spec, keep=0)
    fills = count_fills(monkeypatch)
    kept = chain.run_chain(spec, keep=2**40)
    assert fills == list(range(1, 13))
    for name in kept.stats:
        np.testing.assert_array_equal(kept.stats[name], redrawn.stats[name])
    for name in kept.grads:
        np.testing.assert_array_equal(kept.grads[name], redrawn.grads[name])


def test_keep_fraction_zero_redraws_and_changes_no_number(monkeypatch):
    """keep_fraction=0: the backward pass draws every layer again (depth - 1 more fills);
    the default keeps them here (a few KB of weights fit in a quarter of any free memory).
    The numbers are the same either way."""
    import initlab.chain as chain

    fills = count_fills(monkeypatch)
    kw = dict(width=16, depth=6, trials=2, gradients=True, init="xavier", activation="tanh")
    redrawn = chain.run_chain(cpu(keep_fraction=0, **kw))
    assert fills == [*range(1, 7), *range(5, 0, -1)]
    fills.clear()
    kept = chain.run_chain(cpu(**kw))
    assert fills == list(range(1, 7))
    for name in kept.grads:
        np.testing.assert_array_equal(kept.grads[name], redrawn.grads[name])
    for name in kept.stats:
        np.testing.assert_array_equal(kept.stats[name], redrawn.stats[name])


def test_statistics_are_copied_to_numpy_once_per_chunk_not_per_layer(monkeypatch):
    """Observers reduce on the device and copy at the end of each chunk: the number of
    device-to-host copies (``Tensor.cpu``; on CUDA, synchronizations) does not grow with
    the depth: one per observer holding data (stats, histogram, gradients) per chunk."""
    copies = []
    real_cpu = torch.Tensor.cpu

    def counting_cpu(self, *args, **kw):
        copies.append(tuple(self.shape))
        return real_cpu(self, *args, **kw)

    monkeypatch.setattr(torch.Tensor, "cpu", counting_cpu)
    counts = []
    for depth in (3, 12):
        copies.clear()
        spec = cpu(width=16, depth=depth, trials=3, gradients=True)
        assert len(GroupLayout.build([spec], budget=1).chunks()) == 3
        result = run_chain(spec, budget=1)
        counts.append(len(copies))
        assert np.isfinite(result.grads["grad_x_std"]).all()
    assert counts == [3 * 3, 3 * 3]


@pytest.mark.numerics
def test_products_taken_in_the_drawing_threads_equal_the_layer_wide_product():
    """The engine multiplies each trial's matrix into its signal in the thread that drew it
    (fused); the reference draws the layer (``layer_weights``) and multiplies all trials
    with one ``bmm``. Same matrices, same inputs, so the per-layer signals differ only by
    the products' summation order: each entry of W x is a 64-term float32 sum, within
    64 eps of |W| |x| in either order; over 6 layers the relative error stays below
    6 x 64 eps ~ 5e-5 of the signal's scale, checked on the std."""
    from initlab.layout import draw_inputs, layer_weights

    spec = cpu(init="xavier", activation="tanh", width=64, depth=6, trials=5)
    fused = run_chain(spec)
    x = draw_inputs(spec, range(5))
    stds = [x.double().flatten(1).std(dim=1)]
    for layer in range(1, 7):
        x = torch.tanh(torch.bmm(layer_weights(spec, layer, range(5)), x))
        stds.append(x.double().flatten(1).std(dim=1))
    reference = torch.stack(stds, dim=1).numpy()
    np.testing.assert_allclose(fused.stats["std"], reference, rtol=6 * 64 * 1.2e-7)


def test_a_second_call_reuses_the_kept_weights_buffers(monkeypatch):
    """The arena: a backward pass's kept weights are handed back and the next call of the
    same shape takes them instead of new memory; the numbers are the same (every value
    of a buffer is drawn again)."""
    import initlab.layout as layout

    spec = cpu(width=16, depth=8, trials=2, gradients=True, init="xavier", activation="tanh")
    layout.release_memory()
    first = run_chain(spec)
    held = {id(b) for b in layout.ARENA.free}
    assert len(held) == 8  # depth buffers: 7 kept layers and the last one in hand
    allocated = []
    real_empty = torch.empty

    def counting_empty(*shape, **kw):
        allocated.append(shape)
        return real_empty(*shape, **kw)

    monkeypatch.setattr(layout.torch, "empty", counting_empty)
    second = run_chain(spec)
    assert not [s for s in allocated if s == (2, 16, 16)]
    same(first, second)
    layout.release_memory()
    assert layout.ARENA.free == []
