"""ChainSpec, the one settings model, and the API importable from the package top."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import clean_env

import initlab
from initlab import chain, spec, verdict
from initlab.spec import ENGINE_SETTINGS, ChainSpec, SpecError

TINY = {"width": 4, "depth": 2, "trials": 2, "device": "cpu", "gradients": False}


def test_describe_names_every_setting_so_jobs_can_be_told_apart():
    base = ChainSpec(**TINY)
    described = base.describe()
    assert {k: described[k] for k in ENGINE_SETTINGS} == {k: getattr(base, k)
                                                          for k in ENGINE_SETTINGS}
    other = ChainSpec(**{**TINY, "gradients": True})
    assert base.describe() != other.describe()


@pytest.mark.parametrize("width", [0, 1, -3])
def test_one_width_rule_one_message(width):
    with pytest.raises(SpecError) as info:
        ChainSpec(**{**TINY, "width": width})
    assert str(info.value) == (f"width={width} is not allowed; width must be an integer >= 2 "
                               "(a std over the units of a layer needs two)")


@pytest.mark.parametrize("seed,allowed", [(0, True), (2**63 - 1, True), (2**63, False),
                                          (2**64, False), (-1, False)])
def test_seed_range_is_what_torch_generators_take(seed, allowed):
    import torch

    # torch.Generator.manual_seed takes a signed or unsigned 64-bit value; the spec allows the
    # signed range, which every generator and NumPy bit generator accepts.
    if allowed:
        ChainSpec(**{**TINY, "seed": seed})
        torch.Generator().manual_seed(seed)
    else:
        with pytest.raises(SpecError, match=r"seed=.*0 <= seed < 2\*\*63"):
            ChainSpec(**{**TINY, "seed": seed})


def test_the_notebook_api_is_importable_from_the_package_top():
    assert initlab.ChainSpec is spec.ChainSpec
    assert initlab.run_chain is chain.run_chain
    assert initlab.run_many is chain.run_many
    assert initlab.Thresholds is verdict.Thresholds
    assert set(initlab.__all__) <= set(dir(initlab))
    with pytest.raises(AttributeError):
        initlab.no_such_name  # noqa: B018


def test_importing_initlab_stays_light():
    heavy = "{'torch', 'pandas', 'matplotlib'}"
    code = f"import sys, initlab; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], env=clean_env(), capture_output=True,
                         text=True, timeout=60, check=True).stdout.strip()
    assert out == "[]"


def test_a_scheme_with_its_own_bias_or_rescaling_refuses_another_bias():
    """critical brings N(0, sigma_b2) (even where that is 0: relu's point is bias-free, and a
    bias would move it off the edge); LSUV rescales W x, a case the theory does not cover."""
    with pytest.raises(SpecError, match=r"init=critical brings its own bias .* leave bias=zero"):
        ChainSpec(init="critical", activation="relu", bias="normal", trials=1,
                  gradients=False, device="cpu")
    with pytest.raises(SpecError, match=r"init=lsuv rescales .* leave bias=zero"):
        ChainSpec(init="lsuv", activation="tanh", bias="normal", batch=4, trials=1,
                  gradients=False, device="cpu")


def test_critical_shows_the_bias_it_runs_with():
    spec = ChainSpec(init="critical", activation="tanh", trials=1, gradients=False, device="cpu")
    recipe = spec.bias_recipe()
    assert recipe.base == "normal" and recipe.sigma_b2 > 0
    assert spec.describe()["bias"] == "normal"
    assert spec.describe()["bias_sigma_b2"] == pytest.approx(recipe.sigma_b2, rel=1e-12)


def test_shared_weights_get_no_correlation_theory():
    """One matrix reused at every layer is not the map's fresh draw per layer."""
    from initlab.theory import for_chain

    spec = ChainSpec(init="scaled", activation="tanh", weights="shared", batch=2,
                     input_correlation=0.5, depth=3, width=8, trials=1, gradients=False,
                     device="cpu")
    assert np.isnan(for_chain(spec, spec.weight_recipe())["corr"]).all()


@pytest.mark.parametrize(("kw", "words"), [
    ({"activation": "leaky_relu", "activation_params": {"negative_slope": float("nan")}},
     "activation.negative_slope=nan is not allowed; it must be a finite number"),
    ({"bias": "constant", "bias_params": {"value": float("inf")}},
     "bias.value=inf is not allowed; it must be a finite number"),
    ({"init": "normal", "init_params": {"std": 1e300}},
     "weight variance x fan_in overflows a float"),
])
def test_values_that_would_crash_a_job_are_refused_up_front(kw, words):
    """A NaN parameter used to crash writing summary.json (strict JSON); std=1e300 used to
    overflow inside the job. Both are now one SpecError before anything runs."""
    with pytest.raises(SpecError, match=re.escape(words)):
        ChainSpec(**kw, trials=1, gradients=False, device="cpu")


def test_an_exploding_theory_prints_no_warning(recwarn):
    """N(0, 1) weights under ReLU, depth 1000: the mean-field moments overflow; inf, quietly."""
    from initlab.theory import for_chain

    spec = ChainSpec(init="normal", activation="relu", depth=1000, width=8, trials=1,
                     gradients=False, device="cpu")
    for_chain(spec, spec.weight_recipe())
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("fraction,allowed", [(0, True), (0.0, True), (0.25, True), (1, True),
                                              (1.5, False), (-0.1, False), (float("nan"), False),
                                              (True, False), ("half", False)])
def test_keep_fraction_is_a_number_in_0_1(fraction, allowed):
    if allowed:
        assert ChainSpec(**TINY, keep_fraction=fraction).keep_fraction == fraction
        return
    with pytest.raises(SpecError) as info:
        ChainSpec(**TINY, keep_fraction=fraction)
    assert str(info.value) == (f"keep_fraction={fraction!r} is not allowed; keep_fraction must "
                               "be a finite number with 0 <= keep_fraction <= 1 (0: always redraw)")
