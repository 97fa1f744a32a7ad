"""Measured ``corr`` (cosine of two inputs' pre-activations) at width 512 against the theory.

References independent of initlab.theory, written here: the arc-cosine kernel of ReLU
(Cho & Saul 2009) and a product Gauss-Hermite rule (120 x 120 nodes) for the joint
recursion of q and c with a bias (Poole et al. 2016):

    q_1 = sigma_w2 + sigma_b2,  c_1 = (sigma_w2 c0 + sigma_b2) / q_1   (unit-variance inputs)
    q_l = sigma_w2 E[phi(u1)^2] + sigma_b2,  c_l = (sigma_w2 E[phi(u1) phi(u2)] + sigma_b2) / q_l

One engine pass (shared draws) runs tanh with sigma_b2 = 0.05 ordered (sigma_w2 = 1.0), on
the edge (1.76, Schoenholz et al. 2017 Fig. 1) and chaotic (3.0), and ReLU at sigma_w2 = 2
without a bias: width 512, depth 100, 16 trials, two inputs with cosine c0 = 0.5, float32.

The band (``band``): the per-trial cosine of two width-n vectors fluctuates with sd ~
(1 - c^2) / sqrt(n) at one layer, and the fluctuations accumulate with depth, so the spread
over trials is measured here, per layer; the median of T trials has standard error
1.2533 sd / sqrt(T) (normal approximation), and the band is 4 se, plus
  * a finite-width bias: the sample cosine is biased by O((1 - c^2) / n) a layer (Fisher:
    E[r] - rho ~ -rho (1 - rho^2) / (2n); the map's curvature adds M''(c) Var / 2 with
    |M''| (1 - c^2) <= 1 for these maps, e.g. ReLU's 1 / (pi sqrt(1 - c^2))), carried on
    with the map's slope s = M'(c) and so summed over min(L, 1 / (1 - s)) layers;
  * float32: a pre-activation is a 512-term float32 dot product, relative rounding ~
    sqrt(512) 2^-24 = 1.3e-6, which moves a cosine by at most about that (2e-6 allowed).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss

from initlab.chain import run_many
from initlab.spec import ChainSpec
from initlab.theory import for_chain

WIDTH, DEPTH, TRIALS, C0, SB2 = 512, 100, 16, 0.5, 0.05
TANH_POINTS = {"ordered": 1.0, "edge": 1.76, "chaotic": 3.0}
_Z, _W = hermegauss(120)
_W = _W / _W.sum()


def arccos_map(c: float) -> float:
    """ReLU's correlation map at sigma_w2 = 2, sigma_b2 = 0 (Cho & Saul 2009, n = 1)."""
    return (math.sqrt(max(1 - c * c, 0.0)) + (math.pi - math.acos(c)) * c) / math.pi


def relu_reference(depth: int) -> np.ndarray:
    c = [C0, C0]  # layer 1: c_1 = c0 without a bias
    while len(c) <= depth:
        c.append(arccos_map(c[-1]))
    return np.array(c)


def _step(phi, sw: float, sb: float, q: float, c: float) -> tuple[float, float]:
    z1, z2 = np.meshgrid(_Z, _Z, indexing="ij")
    weights = np.outer(_W, _W)
    u1 = math.sqrt(q) * z1
    u2 = math.sqrt(q) * (c * z1 + math.sqrt(max(1 - c * c, 0.0)) * z2)
    m2, k = (weights * phi(u1) ** 2).sum(), (weights * phi(u1) * phi(u2)).sum()
    return sw * m2 + sb, (sw * k + sb) / (sw * m2 + sb)


def reference(phi, sw: float, sb: float, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """(c_l, slope of the map at c_l) for l = 0..depth (slope by a central difference)."""
    q, c = sw + sb, (sw * C0 + sb) / (sw + sb)
    cs, qs = [C0, c], [1.0, q]
    for _ in range(2, depth + 1):
        q, c = _step(phi, sw, sb, q, c)
        cs.append(c)
        qs.append(q)
    slopes = [0.0] + [(_step(phi, sw, sb, qq, min(cc + 1e-5, 1.0))[1]
                       - _step(phi, sw, sb, qq, cc - 1e-5)[1]) / (min(cc + 1e-5, 1.0) - cc + 1e-5)
                      for qq, cc in zip(qs[1:], cs[1:], strict=True)]
    return np.array(cs), np.array(slopes)


@pytest.fixture(scope="module")
def measured() -> dict:
    """One shared-draw pass over the four chains (~15 s on 2 busy cores)."""
    kw = {"width": WIDTH, "depth": DEPTH, "trials": TRIALS, "batch": 2,
          "input_correlation": C0, "device": "cpu", "gradients": False}
    specs = {name: ChainSpec(init="scaled", init_params={"sigma_w2": sw}, activation="tanh",
                             bias="normal", bias_params={"sigma_b2": SB2}, **kw)
             for name, sw in TANH_POINTS.items()}
    specs["relu"] = ChainSpec(init="scaled", init_params={"sigma_w2": 2.0}, activation="relu",
                              **kw)
    return dict(zip(specs, run_many(list(specs.values())), strict=True))


def band(corr: np.ndarray, layer: int, c_ref: float, slope: float) -> tuple[float, float]:
    """(median over trials at ``layer``, allowed distance from the reference): see above."""
    values = corr[:, layer]
    se = 1.2533 * values.std(ddof=1) / math.sqrt(len(values))
    carried = layer if slope >= 1 else min(layer, 1 / (1 - slope))
    bias = carried * (1 - c_ref**2) / WIDTH
    return float(np.median(values)), 4 * se + bias + 2e-6


def test_layer_1_is_the_closed_form(measured):
    # c_1 = (sigma_w2 c0 + sigma_b2) / (sigma_w2 + sigma_b2): one layer, no map yet; the band
    # is 4 se of the median (the 1-layer bias (1 - c^2) / n ~ 0.0015 included).
    for name, result in measured.items():
        sw, sb = result.spec.weight_recipe().sigma_w2, result.spec.bias_recipe().sigma_b2
        c1 = (sw * C0 + sb) / (sw + sb)
        med, tol = band(result.stats["corr"], 1, c1, 0.0)
        assert abs(med - c1) < tol, (name, med, c1, tol)
        assert result.stats["corr"][:, 0] == pytest.approx(C0, abs=5 * 0.75 / math.sqrt(WIDTH))


def test_relu_follows_the_arccosine_kernel(measured):
    result = measured["relu"]
    ref = relu_reference(DEPTH)
    # initlab's theory agrees with the closed form: its quadrature of the ReLU kink is exact
    # to rounding (~1e-13 measured, 100 compositions of a map with slope <= 1): 1e-10.
    np.testing.assert_allclose(result.curve("corr"), ref, atol=1e-10)
    slopes = [0.0] + [(arccos_map(min(c + 1e-6, 1)) - arccos_map(c - 1e-6)) / 2e-6
                      for c in ref[1:]]
    for layer in (2, 10, 30, 50, 100):
        med, tol = band(result.stats["corr"], layer, ref[layer], slopes[layer])
        assert abs(med - ref[layer]) < tol, (layer, med, ref[layer], tol)


@pytest.mark.parametrize("name", list(TANH_POINTS))
def test_tanh_ordered_edge_chaotic_at_depth_10_50_100(measured, name):
    result = measured[name]
    ref, slopes = reference(np.tanh, TANH_POINTS[name], SB2, DEPTH)
    # initlab's theory_corr against this rule: two Gauss rules (64 and 120 nodes) on an
    # analytic integrand; tanh's poles at +-i pi / 2 bound a 64-node rule's error at
    # q <= 1.5 near 1e-7: 1e-6.
    theory = for_chain(result.spec, result.spec.weight_recipe())["corr"]
    np.testing.assert_allclose(theory, ref, atol=1e-6)
    for layer in (10, 50, 100):
        med, tol = band(result.stats["corr"], layer, ref[layer], slopes[layer])
        assert abs(med - ref[layer]) < tol, (name, layer, med, ref[layer], tol)
    # The phases themselves, beyond the bands above (which allow corr = 1 at the edge):
    # ordered inputs merge (theory 1 - c_100 ~ 1e-13; two float32 signals equal up to
    # rounding have 1 - cos ~ 1e-14: 1e-6 is far from both); at the edge and in chaos they
    # stay apart by the collapse criterion 1 - corr > 1e-3 (theory: 0.06 and 0.70).
    final = float(np.median(result.stats["corr"][:, -1]))
    if name == "ordered":
        assert 1 - final < 1e-6, (name, final)
    else:
        assert 1 - final > 1e-3, (name, final)


def test_summary_and_figure_carry_the_correlation(measured, tmp_path):
    import json

    from initlab.summary import summarize
    from initlab.theory import phase_params
    from initlab.verdict import Thresholds

    for name in ("edge", "relu"):
        result = measured[name]
        summary = summarize(result, Thresholds())
        text = json.dumps(summary, allow_nan=False)  # JSON-safe: inf (ReLU's xi_c) is null
        phase = json.loads(text)["phase"]
        expect = phase_params(result.spec.activation, result.spec.weight_recipe().sigma_w2,
                              result.spec.bias_recipe().sigma_b2)
        for key in ("q_star", "c_star", "chi_1", "chi_c", "xi_q", "xi_c"):
            value = getattr(expect, key)
            assert phase[key] == (value if math.isfinite(value) else None), (name, key)
        assert phase["c_attracting"] == expect.c_attracting
        last = result.stats["corr"][:, -1]
        assert summary["final_corr"] == float(np.median(last))
        assert summary["final_corr_q10"] <= summary["final_corr"] <= summary["final_corr_q90"]
        recipe = result.spec.weight_recipe()
        assert summary["final_theory_corr"] == for_chain(result.spec, recipe)["corr"][-1]
    assert json.loads(json.dumps(summarize(measured["relu"], Thresholds())))["phase"][
        "xi_c"] is None  # ReLU at sigma_w2 = 2: chi_c = 1, no exponential depth scale
    from initlab.figures import job as plots
    from initlab.job import Job, write_job

    write_job(Job(measured["edge"].spec, out_dir=tmp_path), measured["edge"], {"engine": 0.0})
    path = plots.plot_corr(plots.JobView.read(tmp_path), tmp_path / plots.CORR_PNG)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file


def test_summary_leaves_the_phase_out_where_the_theory_does_not_apply():
    from initlab.chain import run_chain
    from initlab.summary import summarize
    from initlab.verdict import Thresholds

    kw = {"width": 8, "depth": 2, "trials": 2, "device": "cpu", "gradients": False}
    for spec in (ChainSpec(init="lsuv", batch=2, **kw),  # the rescaling is not in the map
                 ChainSpec(init="constant", **kw),  # not zero-mean
                 ChainSpec(init="kaiming", bias="constant", **kw)):
        assert summarize(run_chain(spec), Thresholds())["phase"] is None, spec.init
    one = summarize(run_chain(ChainSpec(init="kaiming", **kw)), Thresholds())  # batch 1
    assert one["phase"]["chi_1"] == pytest.approx(1.0, abs=1e-9)  # Kaiming + ReLU: the edge
    assert one["final_corr"] is None and one["final_theory_corr"] is None
