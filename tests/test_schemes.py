"""Every scheme draws exactly what torch.nn.init draws for the same settings and generator."""

from __future__ import annotations

import math

import pytest
import torch

from initlab.layout import layer_weights
from initlab.schemes import BUILTIN_SCHEMES, calculate_gain, init_, make_recipe
from initlab.spec import ChainSpec
from initlab.streams import weight_seed

OUT, IN = 96, 40  # rectangular, so fan_in and fan_out differ
U32 = 2.0**-24  # float32 unit roundoff

#: Draws that are the same N(0, 1) numbers transformed by a few float32 operations in a
#: possibly different order (torch: normal_(0, std) = std * z, erf(z / sqrt 2) * b;
#: initlab: z * std, erf(z * (1 / sqrt 2)) * scale): each operation rounds once (<= u
#: relative), erf's condition |x erf'(x) / erf(x)| is <= 1, so at most 4 roundings apart:
#: rtol = 4 u = 2.4e-7 (1e-6: a factor 4 more). A wrong std or bound misses by far more.
SAME_DRAW = {"rtol": 1e-6, "atol": 0.0}


def qr_tolerance(z: torch.Tensor) -> dict[str, float]:
    """Two Householder QRs of the same matrix that block differently (threads, LAPACK build):
    each is backward stable with error ~ n u ||A|| (Higham, Thm 19.4, n = columns), and Q
    moves by at most cond(A) times that (Sun's perturbation bound), so the two Qs differ by
    <= 2 n u cond(A) entrywise in the worst case. Computed from the matrix itself."""
    cond = float(torch.linalg.cond(z.double()))
    return {"rtol": 0.0, "atol": 2 * min(z.shape) * U32 * cond}


def _gen(seed: int = 1234) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def erf_uniform(torch_init):
    """torch's uniform initializer with its U(-b, b) draw replaced by b * erf(Z / sqrt(2)),
    Z from the same generator: torch's own bound, initlab's paired uniform."""

    def init(w, *args, generator=None, **kwargs):
        def fill(tensor, a, b, generator=None):
            assert a == -b
            with torch.no_grad():
                z = tensor.normal_(generator=generator)
                return z.copy_(torch.erf(z / math.sqrt(2.0)) * b)

        # torch draws through either of these two, depending on the initializer
        originals = torch.nn.init._no_grad_uniform_, torch.Tensor.uniform_
        torch.nn.init._no_grad_uniform_ = fill
        torch.Tensor.uniform_ = fill
        try:
            return torch_init(w, *args, generator=generator, **kwargs)
        finally:
            torch.nn.init._no_grad_uniform_, torch.Tensor.uniform_ = originals

    return init


# (initlab scheme and params, the torch.nn.init call that must match it)
CASES = [
    (("zero", {}), lambda w, g: torch.nn.init.zeros_(w)),
    (("normal", {}), lambda w, g: torch.nn.init.normal_(w, 0.0, 1.0, generator=g)),
    (("normal", {"std": 0.01}), lambda w, g: torch.nn.init.normal_(w, 0.0, 0.01, generator=g)),
    (("scaled", {}), lambda w, g: torch.nn.init.normal_(w, 0.0, 1 / math.sqrt(IN), generator=g)),
    (("xavier", {}), lambda w, g: erf_uniform(torch.nn.init.xavier_uniform_)(w, generator=g)),
    (
        ("xavier", {"gain": 5 / 3}),
        lambda w, g: erf_uniform(torch.nn.init.xavier_uniform_)(w, gain=5 / 3, generator=g),
    ),
    (
        ("xavier", {"distribution": "normal"}),
        lambda w, g: torch.nn.init.xavier_normal_(w, generator=g),
    ),
    (
        ("kaiming", {}),
        lambda w, g: torch.nn.init.kaiming_normal_(w, nonlinearity="relu", generator=g),
    ),
    (
        ("kaiming", {"mode": "fan_out"}),
        lambda w, g: torch.nn.init.kaiming_normal_(
            w, mode="fan_out", nonlinearity="relu", generator=g
        ),
    ),
    (
        ("kaiming", {"distribution": "uniform"}),
        lambda w, g: erf_uniform(torch.nn.init.kaiming_uniform_)(w, nonlinearity="relu",
                                                                 generator=g),
    ),
    (
        ("kaiming", {"negative_slope": 0.2, "distribution": "uniform", "mode": "fan_out"}),
        lambda w, g: erf_uniform(torch.nn.init.kaiming_uniform_)(
            w, a=0.2, mode="fan_out", nonlinearity="leaky_relu", generator=g
        ),
    ),
    (
        ("kaiming", {"negative_slope": 0.01}),
        lambda w, g: torch.nn.init.kaiming_normal_(
            w, a=0.01, nonlinearity="leaky_relu", generator=g
        ),
    ),
    (
        ("lecun", {}),
        lambda w, g: torch.nn.init.kaiming_normal_(w, nonlinearity="linear", generator=g),
    ),
    (("orthogonal", {}), lambda w, g: torch.nn.init.orthogonal_(w, generator=g)),
    (("orthogonal", {"gain": 2.0}), lambda w, g: torch.nn.init.orthogonal_(w, 2.0, generator=g)),
    (
        ("torch_default", {}),
        lambda w, g: erf_uniform(torch.nn.init.kaiming_uniform_)(w, a=math.sqrt(5), generator=g),
    ),
    (("constant", {}), lambda w, g: torch.nn.init.constant_(w, 1 / IN)),
    (("constant", {"value": 0.3}), lambda w, g: torch.nn.init.constant_(w, 0.3)),
    # critical: sigma_w2 = 1 / E[relu(z)^2] = 2 is Kaiming; with no activation it is 1.
    (
        ("critical", {"activation": "relu"}),
        lambda w, g: torch.nn.init.kaiming_normal_(w, nonlinearity="relu", generator=g),
    ),
    (
        ("critical", {"activation": "none"}),
        lambda w, g: torch.nn.init.kaiming_normal_(w, nonlinearity="linear", generator=g),
    ),
]
NO_TORCH_EQUIVALENT = {"lsuv"}  # data-dependent: tested in test_chain.py


@pytest.mark.numerics
@pytest.mark.parametrize(("ours", "theirs"), CASES, ids=lambda c: str(c) if isinstance(c, tuple)
                         else "")
def test_scheme_draws_what_torch_draws(ours, theirs):
    name, params = ours
    mine = init_(torch.empty(OUT, IN), name, generator=_gen(), **params)
    ref = theirs(torch.empty(OUT, IN), _gen())
    if name == "orthogonal":  # gain * Q, Q of the same N(0, 1) draw's QR
        tol = qr_tolerance(torch.empty(OUT, IN).normal_(generator=_gen()))
        tol["atol"] *= params.get("gain", 1.0)
    else:
        tol = SAME_DRAW
    torch.testing.assert_close(mine, ref, **tol)


def test_every_scheme_is_checked_against_torch():
    assert {name for (name, _), _ in CASES} | NO_TORCH_EQUIVALENT == set(BUILTIN_SCHEMES)


def _ks(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample Kolmogorov-Smirnov statistic."""
    a, b = a.flatten().double().sort().values, b.flatten().double().sort().values
    grid = torch.cat([a, b])
    fa = torch.searchsorted(a, grid, right=True) / len(a)
    fb = torch.searchsorted(b, grid, right=True) / len(b)
    return float((fa - fb).abs().max())


@pytest.mark.parametrize(
    ("name", "params", "theirs"),
    [
        ("xavier", {}, lambda w: torch.nn.init.xavier_uniform_(w)),
        ("kaiming", {"distribution": "uniform"},
         lambda w: torch.nn.init.kaiming_uniform_(w, nonlinearity="relu")),
        ("torch_default", {}, lambda w: torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5))),
    ],
)
def test_uniform_schemes_have_torchs_distribution(name, params, theirs):
    """erf(Z/sqrt(2)) is exactly U(-1, 1): against torch's own uniform draws, the two-sample
    KS statistic stays under its 0.1 % critical value, sqrt(-ln(0.0005)/2) sqrt(2/n)."""
    torch.manual_seed(0)
    reference = theirs(torch.empty(256, 256))
    mine = init_(torch.empty(256, 256), name, generator=_gen(7), **params)
    n = reference.numel()
    assert _ks(mine, reference) < math.sqrt(-math.log(0.0005) / 2) * math.sqrt(2 / n)
    assert mine.abs().max() <= reference.abs().max() * (1 + 1e-3)


@pytest.mark.numerics
def test_orthogonal_rows_are_orthonormal():
    """Householder QR's Q is orthogonal to ~ n eps (Higham, Thm 19.4), and the product
    W W^T rounds by n eps more: |W W^T - I| <= 10 n eps entrywise (a factor 5 for the
    constants) = 1.4e-13 for n = 64; a Q off by a sign-fix or a transpose fails by O(1)."""
    n = 64
    w = init_(torch.empty(n, n, dtype=torch.float64), "orthogonal", generator=_gen())
    eps = torch.finfo(torch.float64).eps
    torch.testing.assert_close(w @ w.T, torch.eye(n, dtype=torch.float64), rtol=0,
                               atol=10 * n * eps)


def test_draw_std_matches_the_formulas():
    # Var(W) from each docstring formula, fan_in = 40, fan_out = 96.
    assert make_recipe("scaled", IN, OUT).std == pytest.approx(math.sqrt(1 / IN))
    assert make_recipe("xavier", IN, OUT).std == pytest.approx(math.sqrt(2 / (IN + OUT)))
    assert make_recipe("xavier", IN, OUT).scale == pytest.approx(math.sqrt(6 / (IN + OUT)))
    assert make_recipe("kaiming", IN, OUT).std == pytest.approx(math.sqrt(2 / IN))
    assert make_recipe("kaiming", IN, OUT, {"mode": "fan_out"}).std == pytest.approx(
        math.sqrt(2 / OUT)
    )
    assert make_recipe("zero", IN, OUT).std == 0.0


@pytest.mark.parametrize("nonlinearity", ["linear", "sigmoid", "tanh", "relu", "selu"])
def test_gain_table_matches_torch(nonlinearity):
    assert calculate_gain(nonlinearity) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity))


def test_leaky_gain_matches_torch():
    assert calculate_gain("leaky_relu", 0.2) == pytest.approx(
        torch.nn.init.calculate_gain("leaky_relu", 0.2)
    )


@pytest.mark.parametrize(
    ("init", "params", "theirs"),
    [
        ("kaiming", {}, lambda w, g: torch.nn.init.kaiming_normal_(w, nonlinearity="relu",
                                                                     generator=g)),
        ("xavier", {}, lambda w, g: erf_uniform(torch.nn.init.xavier_uniform_)(w, generator=g)),
        ("normal", {"std": 0.01}, lambda w, g: torch.nn.init.normal_(w, 0, 0.01, generator=g)),
    ],
)
def test_engine_layer_weights_are_torch_draws(init, params, theirs):
    """The engine's layer l of trial t is torch's init from the generator seeded (seed, l, t)."""
    spec = ChainSpec(init=init, init_params=params, width=64, depth=3, trials=3, seed=7,
                     gradients=False, device="cpu")
    for layer in (1, 3):
        weights = layer_weights(spec, layer, range(3))
        for trial in range(3):
            ref = theirs(torch.empty(64, 64), _gen(weight_seed(7, layer, trial)))
            torch.testing.assert_close(weights[trial], ref, **SAME_DRAW)


def test_bad_scheme_parameters_are_refused():
    with pytest.raises(ValueError, match="mode='sideways'.*fan_in, fan_out"):
        make_recipe("kaiming", 8, 8, {"mode": "sideways"})
    with pytest.raises(ValueError, match="init.std=0.5 does not apply to init='kaiming'"):
        make_recipe("kaiming", 8, 8, {"std": 0.5})
    with pytest.raises(ValueError, match="allowed: zero, normal, scaled, xavier, kaiming"):
        make_recipe("lecunn", 8, 8)
