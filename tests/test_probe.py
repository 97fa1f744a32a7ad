"""The probe (initlab.probe) against independent references: the chain engine, torch's own
fans and initializers, literal autograd passes and closed-form sampling bands."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from initlab.chain import run_chain
from initlab.inputs import gaussian_inputs
from initlab.probing import fans, probe
from initlab.spec import ChainSpec
from initlab.verdict import Thresholds, overall, trial_verdicts

EPS32 = float(torch.finfo(torch.float32).eps)


# small tensors: one torch thread each (tests/conftest.py::one_thread)
pytestmark = pytest.mark.usefixtures("one_thread")


def relu_mlp(depth: int = 20, width: int = 512) -> nn.Sequential:
    return nn.Sequential(*[m for _ in range(depth)
                           for m in (nn.Linear(width, width, bias=False), nn.ReLU())])


def no_hooks_left(model: nn.Module) -> None:
    for name, m in model.named_modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                     "_backward_pre_hooks"):
            assert not getattr(m, attr), f"{name or 'model'} kept {attr}"


def test_linear_relu_chain_matches_the_chain_engine_in_distribution():
    # Independent draws (probe seed 1, chain seed 0) of the same experiment: 20 x
    # Linear(512, 512) + ReLU, He init, N(0, I) inputs. Hanin & Rolnick (2018): for He/ReLU
    # Var ln|x_L|^2 ~ 5 L / n = 5 * 20 / 512, so ln std (half of ln q) has sd s = 0.22 per
    # trial. The median of T draws has sd ~ 1.25 s / sqrt(T); two independent medians differ
    # by sd sqrt(2) of that; we allow 4 sd.
    depth, width, trials, batch = 20, 512, 16, 4
    result = probe(relu_mlp(depth, width), gaussian_inputs((width,), batch), init="kaiming",
                   trials=trials, seed=1, gradients=False, include=["ReLU"], histogram=False)
    chain = run_chain(ChainSpec(init="kaiming", activation="relu", depth=depth, width=width,
                                trials=trials, batch=batch, gradients=False, device="cpu"))
    assert result.stats["std"].shape == chain.stats["std"].shape == (trials, depth + 1)
    s = 0.5 * math.sqrt(5 * depth / width)
    band = 4 * math.sqrt(2) * 1.25 * s / math.sqrt(trials)
    for name in ("std", "rms"):
        diff = np.log(np.median(result.final(name))) - np.log(np.median(chain.final(name)))
        assert abs(diff) < band, (name, diff, band)
    # ReLU outputs: a fraction 1/2 of exact zeros; a binomial over width*batch units per trial
    # and T trials -> sd 0.5 / sqrt(width * batch * T); 4 sd.
    zero = result.stats["zero_frac"][:, 1:].mean()
    assert abs(zero - 0.5) < 4 * 0.5 / math.sqrt(width * batch * trials * depth) * 4
    names, layers = trial_verdicts(result.stats, Thresholds())
    assert overall(names, layers)["verdict"] == "stable"


def test_same_seed_pairs_with_the_chain_up_to_rounding():
    # Same seed: the probe's Linear weights, inputs and output gradient come from the chain's
    # keyed streams, so both compute the same numbers; only the summation order differs (mm
    # of x W^T vs bmm of W x). Each of the 512-term dot products has relative error
    # <= n eps (Higham's gamma_n) of sum |w||x|, which is <= sqrt(n) times |sum w x| for
    # these Gaussian sums in norm; over `depth` layers: rtol = depth * n * eps * sqrt(n).
    depth, width, trials, batch = 6, 512, 2, 3
    result = probe(relu_mlp(depth, width), gaussian_inputs((width,), batch), init="kaiming",
                   trials=trials, seed=7, gradients=True, include=["Linear", "ReLU"],
                   histogram=False)
    chain = run_chain(ChainSpec(init="kaiming", activation="relu", depth=depth, width=width,
                                trials=trials, batch=batch, gradients=True, device="cpu",
                                seed=7))
    assert result.module_types == ["input", *["Linear", "ReLU"] * depth]
    rtol = depth * width * EPS32 * math.sqrt(width)
    relu_layers = [0, *range(2, 2 * depth + 1, 2)]  # the input, then every ReLU output
    for name in ("std", "rms", "mean", "abs_max"):
        np.testing.assert_allclose(result.stats[name][:, relu_layers], chain.stats[name],
                                   rtol=rtol)
    np.testing.assert_allclose(result.grads["grad_x_std"][:, relu_layers],
                               chain.grads["grad_x_std"], rtol=rtol)
    linear_layers = list(range(1, 2 * depth, 2))
    np.testing.assert_allclose(result.grads["grad_w_std"][:, linear_layers],
                               chain.grads["grad_w_std"][:, 1:], rtol=rtol)


def test_corr_is_the_mean_pairwise_cosine():
    # Reference: a literal loop over the pairs of the batch, on the very output the loop
    # path hooks (model(x): the same float32 numbers; float64 sums of 9 terms after that).
    x = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    model = nn.Sequential(nn.Linear(7, 9))
    result = probe(model, x, init="keep", trials=1, gradients=False, batched=False)
    for layer, sig in ((0, x), (1, model(x).detach())):
        s = sig.double()
        cos = [float(s[a] @ s[b] / (s[a].norm() * s[b].norm()))
               for a in range(5) for b in range(a + 1, 5)]
        assert result.stats["corr"][0, layer] == pytest.approx(np.mean(cos), rel=1e-12)
    one = probe(model, x[:1], init="keep", trials=1, gradients=False, batched=False)
    assert np.isnan(one.stats["corr"]).all()


class Raises(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        x = self.a(x)
        raise RuntimeError("boom in the middle")


def test_no_hook_left_behind_also_when_the_forward_raises():
    model = relu_mlp(3, 8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probe(model, gaussian_inputs((8,), 2), init="kaiming", trials=2, gradients=True)
    no_hooks_left(model)
    for k, v in model.state_dict().items():  # the instance gets its weights back
        assert torch.equal(v, before[k])
    bad = Raises()
    before = {k: v.clone() for k, v in bad.state_dict().items()}
    with pytest.raises(RuntimeError, match="boom"):
        probe(bad, torch.randn(2, 4), init="kaiming", trials=2, gradients=True)
    no_hooks_left(bad)
    for k, v in bad.state_dict().items():
        assert torch.equal(v, before[k])


class TupleLayer(nn.Module):
    """Returns (output, state), as an RNN cell does."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 6)

    def forward(self, x):
        y = self.lin(x)
        return torch.tanh(y), y.sum()


class TupleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cell, self.head = TupleLayer(), nn.Linear(6, 3)

    def forward(self, x):
        h, _ = self.cell(x)
        return {"logits": self.head(h), "aux": h.mean()}


def test_tuple_module_and_dict_output_record_the_first_tensor():
    torch.manual_seed(0)
    model, x = TupleNet(), torch.randn(4, 6)
    result = probe(model, x, init="keep", trials=1, gradients=True, include=["cell", "head"])
    assert result.modules == ["input", "cell", "head"]
    h = model.cell(x)[0].detach()
    # Reference std: torch's own on the same values (float64, a different summation order:
    # relative error <= N eps64 for N = 24 values).
    assert result.stats["std"][0, 1] == pytest.approx(float(h.double().std()), rel=1e-13)
    # The backward pass started from g on the logits: dL/d(logits) = g ~ N(0, I), and
    # dL/d(head.weight) = g^T h. Reference: autograd on a fresh forward with the same g.
    xr = x.clone().requires_grad_(True)
    logits = model(xr)["logits"]
    g = torch.empty(3, 4).normal_(generator=torch.Generator().manual_seed(
        __import__("initlab.draws", fromlist=["gradient_seed"]).gradient_seed(0, 0))).T
    (gw,) = torch.autograd.grad(logits, [model.head.weight], g)
    assert result.grads["grad_x_std"][0, 2] == pytest.approx(float(g.double().std()), rel=1e-6)
    assert result.grads["grad_w_std"][0, 2] == pytest.approx(float(gw.double().std()), rel=1e-5)
    no_hooks_left(model)


class LossNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(5, 5)

    def forward(self, x):
        return (self.body(x) ** 2).mean()


def test_scalar_loss_is_no_layer_and_starts_the_backward_pass():
    torch.manual_seed(1)
    model, x = LossNet(), torch.randn(3, 5)
    result = probe(model, x, init="keep", trials=1, gradients=True)
    assert result.modules == ["input", "body"]
    y = model.body(x).detach()
    expected = (2 * y / y.numel()).double().std()  # d mean(y^2) / dy = 2 y / N
    # float32 autograd vs the float64 formula: a few float32 roundings per value.
    assert result.grads["grad_x_std"][0, 1] == pytest.approx(float(expected), rel=1e-5)


def test_bfloat16_input_is_finite_and_close_to_float32():
    torch.manual_seed(2)
    model32 = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                            nn.Linear(64, 64))
    model16 = nn.Sequential(*[m for m in __import__("copy").deepcopy(model32)]).bfloat16()
    x = torch.randn(16, 64)
    r32 = probe(model32, x, init="keep", trials=1, gradients=True)
    r16 = probe(model16, x.bfloat16(), init="keep", trials=1, gradients=True)
    assert r16.settings["dtype"] == "bfloat16"
    assert all(r16.stats["finite"][0]) and np.isfinite(r16.grads["grad_x_std"][0]).all()
    # bfloat16 keeps 8 significant bits: unit roundoff u = 2^-8. Per layer the weights, the
    # input and the output are rounded once each (<= 3u relative, in norm); over 3 layers
    # <= 9u = 3.5 %, and the std/rms of a layer inherit that relative error.
    u = 2.0**-8
    for name in ("std", "rms"):
        np.testing.assert_allclose(r16.stats[name], r32.stats[name], rtol=9 * u)
    np.testing.assert_allclose(r16.grads["grad_x_std"], r32.grads["grad_x_std"], rtol=9 * u)


def test_conv_fans_are_torchs():
    conv = nn.Conv2d(6, 10, (3, 5), groups=2)
    assert fans(conv.weight) == nn.init._calculate_fan_in_and_fan_out(conv.weight)
    assert fans(conv.weight) == (3 * 3 * 5, 10 * 3 * 5)  # in/groups * kh * kw, out * kh * kw


def test_kaiming_on_a_conv_has_std_sqrt_2_over_fan_in_and_torch_default_bias_bound():
    conv = nn.Conv2d(16, 32, 3)  # fan_in 144, N = 4608 weights
    x = torch.randn(2, 16, 6, 6)
    # The probe restores an instance; capture the trial's weights with a forward hook.
    seen = {}
    conv.register_forward_hook(lambda m, a, o: seen.update(w=m.weight.detach().clone(),
                                                           b=m.bias.detach().clone()))
    probe(conv, x, init="kaiming", bias="torch_default", trials=1, gradients=False,
          histogram=False)
    conv._forward_hooks.clear()
    w, b = seen["w"].double(), seen["b"].double()
    # Sample std of N normal draws: relative sd 1 / sqrt(2 N) = 1.04 %; 4 sd.
    assert float(w.std()) == pytest.approx(math.sqrt(2 / 144), rel=4 / math.sqrt(2 * w.numel()))
    bound = 1 / math.sqrt(144)
    assert float(b.abs().max()) <= bound
    # All 32 uniform values inside half the bound has probability 2^-32.
    assert float(b.abs().max()) > bound / 2


def test_orthogonal_conv_kernel_is_orthogonal_as_a_flattened_matrix():
    conv = nn.Conv2d(4, 8, 3, bias=False)
    seen = {}
    conv.register_forward_hook(lambda m, a, o: seen.update(w=m.weight.detach().clone()))
    probe(conv, torch.randn(1, 4, 5, 5), init="orthogonal", trials=1, gradients=False)
    conv._forward_hooks.clear()
    flat = seen["w"].reshape(8, -1).double()
    # Q of a float32 QR: orthonormal rows up to ~ sqrt(n) eps32.
    torch.testing.assert_close(flat @ flat.T, torch.eye(8, dtype=torch.float64), atol=1e-5,
                               rtol=0)


@pytest.mark.parametrize("init", ["lsuv", "critical"])
def test_schemes_a_model_cannot_use_are_refused(init):
    with pytest.raises(ValueError, match="not supported for models"):
        probe(nn.Linear(3, 3), torch.randn(2, 3), init=init, trials=1)


def test_fewer_trials_are_a_prefix_and_a_factory_is_reproducible():
    make = lambda: relu_mlp(3, 16)  # noqa: E731
    inputs = gaussian_inputs((16,), 3)
    # The loop path: trial by trial, literally the same computation, so exact. (The batched
    # path cuts trials into other chunks for 2 and 3 trials: equal up to rounding only.)
    a = probe(make, inputs, trials=3, seed=5, histogram=False, batched=False)  # own init
    b = probe(make, inputs, trials=2, seed=5, histogram=False, batched=False)
    for name in ("std", "mean", "corr"):
        np.testing.assert_array_equal(a.stats[name][:2], b.stats[name])
    np.testing.assert_array_equal(a.grads["grad_w_std"][:2], b.grads["grad_w_std"])
    assert not np.array_equal(a.stats["std"][0], a.stats["std"][1])  # trials differ


def test_frame_is_tidy_with_module_columns():
    result = probe(relu_mlp(2, 8), gaussian_inputs((8,), 2), init="kaiming", trials=2)
    frame = result.frame()
    assert len(frame) == 2 * 3
    assert list(frame["module"][:3]) == ["input", "0", "2"]
    assert list(frame["module_type"][:3]) == ["input", "Linear", "Linear"]
    for col in ("trial", "layer", "std", "unit_std", "corr", "grad_x_std", "grad_w_std",
                "theory_std", "init", "seed"):
        assert col in frame.columns
    assert result.hist.sum() == 2 * 3 * 8 * 2  # every value of every layer and trial counted


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_probe_matches_cpu():
    # Same weights (drawn on the CPU) and inputs; GPU matmuls round differently (TF32 off by
    # default for fp32 matmul): rtol as in the pairing test, depth 4, width 64.
    make = lambda: relu_mlp(4, 64)  # noqa: E731
    kwargs = dict(init="kaiming", trials=2, gradients=True, histogram=False)
    cpu = probe(make, gaussian_inputs((64,), 4), device="cpu", **kwargs)
    gpu = probe(make, gaussian_inputs((64,), 4), device="cuda", **kwargs)
    assert gpu.device.startswith("cuda")
    rtol = 4 * 64 * EPS32 * 8
    np.testing.assert_allclose(gpu.stats["std"], cpu.stats["std"], rtol=rtol)
    np.testing.assert_allclose(gpu.grads["grad_w_std"], cpu.grads["grad_w_std"], rtol=rtol)


def test_batched_path_equals_the_loop_up_to_rounding():
    # vmap runs a ConvNd as one grouped convolution and a Linear as a bmm: the same products
    # summed in another order. Per layer relative error <= n eps sqrt(n) (as in the pairing
    # test) with n the largest fan_in (64), over 3 weighted layers.
    def make():
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2),
                             nn.Tanh(), nn.Flatten(), nn.Linear(4 * 3 * 3, 5))

    kwargs = dict(init="xavier", bias="normal", trials=3, seed=3, gradients=True)
    inputs = gaussian_inputs((3, 10, 10), 4)
    fast = probe(make, inputs, batched=True, **kwargs)
    slow = probe(make, inputs, batched=False, **kwargs)
    assert (fast.timing["path"], slow.timing["path"]) == ("batched", "loop")
    assert fast.modules == slow.modules and fast.shapes == slow.shapes
    rtol = 3 * 64 * EPS32 * 8
    for name in ("mean", "std", "rms", "abs_max", "corr"):
        np.testing.assert_allclose(fast.stats[name], slow.stats[name], rtol=rtol, atol=0)
    np.testing.assert_array_equal(fast.stats["finite"], slow.stats["finite"])
    for name in ("grad_x_std", "grad_w_std", "grad_w_mean"):
        np.testing.assert_allclose(fast.grads[name], slow.grads[name], rtol=rtol, atol=1e-12)
    np.testing.assert_array_equal(fast.hist, slow.hist)  # counts: equal unless a value sits
    # on a bin edge within rounding (probability ~ rtol * bins per value: negligible here)
    with pytest.raises(ValueError, match="batched=True"):
        probe(TupleNet(), torch.randn(2, 6), trials=1, batched=True)


def test_factory_is_called_per_trial_only_for_the_models_own_init():
    calls = []

    def make():
        calls.append(1)
        return nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))

    x = torch.randn(3, 4)
    probe(make, x, init="kaiming", bias="zero", trials=3, gradients=False)
    assert len(calls) == 1  # every parameter from a scheme: built once, redrawn per trial
    probe(make, x, init="kaiming", bias="model", trials=3, gradients=False)
    assert len(calls) == 1 + 3  # the biases are the model's own: one build per trial


def test_inplace_activation_after_a_hooked_layer_keeps_its_gradient():
    # A tensor hook on the Linear's output still sees dL/dh after ReLU(inplace=True) rewrote
    # h; reference: the same weights with an out-of-place ReLU (the same masks and products).
    torch.manual_seed(3)
    plain = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
    inplace = __import__("copy").deepcopy(plain)
    inplace[1] = nn.ReLU(inplace=True)
    x = torch.randn(4, 8)
    a = probe(plain, x, init="keep", trials=1, batched=False)
    b = probe(inplace, x, init="keep", trials=1, batched=False)
    assert np.isfinite(b.grads["grad_x_std"][0]).all()
    for name in ("grad_x_std", "grad_w_std"):
        np.testing.assert_allclose(b.grads[name], a.grads[name], rtol=1e-12)
    np.testing.assert_allclose(b.stats["std"], a.stats["std"], rtol=1e-12)


def test_by_default_a_small_model_runs_batched_on_a_cpu_with_the_loops_numbers():
    # batched=None picks the path by size (initlab.probing.batched.small); either way the
    # draws are the same, so the statistics agree up to rounding: a bmm instead of an mm,
    # per layer relative error <= n eps sqrt(n) (n = 32, as in the pairing test), 5 layers.
    from initlab.probing import batched as B

    def small_mlp():
        return nn.Sequential(*[m for _ in range(5) for m in (nn.Linear(32, 32), nn.Tanh())])

    kwargs = dict(init="kaiming", bias="normal", trials=4, seed=2, gradients=True)
    inputs = gaussian_inputs((32,), 16)
    auto = probe(small_mlp, inputs, **kwargs)
    loop = probe(small_mlp, inputs, batched=False, **kwargs)
    assert (auto.timing["path"], loop.timing["path"]) == ("batched", "loop")
    rtol = 5 * 32 * EPS32 * math.sqrt(32)
    for name in ("mean", "std", "rms", "abs_max", "corr"):
        np.testing.assert_allclose(auto.stats[name], loop.stats[name], rtol=rtol, atol=1e-12)
    for name in ("grad_x_std", "grad_w_std"):
        np.testing.assert_allclose(auto.grads[name], loop.grads[name], rtol=rtol)
    # Past either limit the loop runs: 3 x Linear(300) has 270 k > 2^18 = 262 k weights; a
    # batch of 2^16 + 1 input values is too many values.
    assert 3 * 300 * 300 > B.SMALL_PARAMS
    wide = probe(relu_mlp(3, 300), gaussian_inputs((300,), 2), init="kaiming", trials=1)
    assert wide.timing["path"] == "loop"
    many = probe(small_mlp, gaussian_inputs((32,), B.SMALL_VALUES // 32 + 1), trials=1,
                 gradients=False)
    assert many.timing["path"] == "loop"


def test_histogram_patterns_count_only_the_matching_modules():
    """histogram=[patterns]: the matching modules' rows are counted exactly as with every
    histogram on, the others' rows are empty; a conv chain's job asks for its activations'
    (its rows), which makes its histogram.csv the same at a fraction of the cost."""
    from initlab import measure
    from initlab.models import conv_chain
    from initlab.modelspec import ModelSpec

    def make():
        return conv_chain(4, "relu", depth=3, size=9)

    inputs = gaussian_inputs((4, 9, 9), batch=2)
    kw = dict(init="kaiming", bias="zero", trials=2, include=["Conv2d", "Activation"])
    every = probe(make, inputs, **kw)
    some = probe(make, inputs, histogram="Activation", **kw)
    acts = [i for i, t in enumerate(every.module_types) if t in ("input", "Activation")]
    convs = [i for i, t in enumerate(every.module_types) if t == "Conv2d"]
    np.testing.assert_array_equal(some.hist[acts], every.hist[acts])
    assert (some.hist[convs] == 0).all() and (every.hist[convs] > 0).any()
    spec = ModelSpec(model="conv_chain", channels=4, depth=3, size=9, init="kaiming",
                     activation="relu", trials=2, batch=2, device="cpu")
    paired = measure.pair_layers(every, "relu")
    np.testing.assert_array_equal(measure.model(spec).hist, paired.hist)
