"""Faults an adversarial pass found on the new surfaces (issue 15), each pinned: what the
command line, the report, the probe and the specs do now with an input that once gave a
traceback, a wrong label, a silent loss or a wrong judgement.

Runs go through ``initlab.app.main`` in this process (``main_in_process``), tiny sizes.
"""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import main_in_process, one_line, only_child
from hydra.core.global_hydra import GlobalHydra
from torch import nn

from initlab import config, probe
from initlab.checks import Broken, read_layers
from initlab.modelspec import ModelSpec
from initlab.report.load import find_jobs
from initlab.rules import SpecError
from initlab.spec import ChainSpec
from initlab.validate import UsageError, check_args, compose_overrides

QUIET = ["report=false", "plots=false", "progress=false"]
USER_MODELS = """
    import torch
    from torch import nn

    def mlp(depth=2):
        return nn.Sequential(*[nn.Linear(8, 8) for _ in range(depth)])

    def mlp3():
        return mlp(3)

    class _Silent(nn.Module):
        def __init__(self, cast):
            super().__init__()
            self.lin, self.cast = nn.Linear(8, 8), cast

        def forward(self, x):
            y = self.lin(x)
            return None if self.cast is None else y.to(self.cast)

    def returns_none():
        return _Silent(None)

    def returns_ints():
        return _Silent(torch.int64)

    def one_unit():
        return nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1))

    def only_one_unit():
        return nn.Sequential(nn.Linear(8, 1))
"""


@pytest.fixture(autouse=True)
def in_tmp(monkeypatch, tmp_path):
    """Each test in its own directory, with the user's models importable, no Hydra left."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adv_models.py").write_text(textwrap.dedent(USER_MODELS))
    monkeypatch.syspath_prepend(str(tmp_path))
    GlobalHydra.instance().clear()
    yield
    sys.modules.pop("adv_models", None)
    GlobalHydra.instance().clear()


def refused(args: list[str], capsys) -> str:
    """Run the command line; assert it exits 2 with one line and starts no job."""
    code, err = main_in_process(args, capsys)
    assert code == 2, err
    line = one_line(err)
    assert line.startswith("initlab: error: ")
    from pathlib import Path

    assert not Path("outputs").exists(), "a job started"
    return line.removeprefix("initlab: error: ")


CUSTOM = ["model=custom", "model._target_=adv_models.mlp", "model.input_shape=[8]"]


# --- 3. model._target_ with a built-in model ----------------------------------------------


def test_a_target_beside_a_built_in_model_in_a_sweep_is_refused_before_any_job(capsys):
    line = refused(["-m", "model=simple_cnn,custom", "model._target_=adv_models.mlp",
                    "model.input_shape=[8]", "trials=2"], capsys)
    assert line == ("model._target_=adv_models.mlp does not apply to model=simple_cnn (a "
                    "built-in); use model=custom model._target_=... for your own model")


# --- 4. no module hooked ------------------------------------------------------------------


@pytest.mark.parametrize("patterns, expected", [
    (["model.include=[nomatch]"], "model.include=['nomatch'] matches no module of "
                                  "model=custom (adv_models.mlp)"),
    (["model.exclude=[*]"], "the default (every leaf module with parameters) minus "
                            "model.exclude=['*'] matches no module of model=custom"),
])
def test_patterns_that_hook_nothing_are_refused_up_front_naming_them(capsys, patterns, expected):
    line = refused([*CUSTOM, *patterns, "trials=2"], capsys)
    assert line.startswith("no module to probe: ") and expected in line


def test_in_a_sweep_the_pattern_that_hooks_nothing_is_found_before_any_job(capsys):
    line = refused(["-m", "model=simple_cnn,conv_chain", "model.include=[Conv2d],[nomatch]"],
                   capsys)
    assert "model.include=['nomatch'] matches no module of model=simple_cnn" in line


def test_the_probe_takes_a_string_as_one_pattern_and_says_when_none_matches():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    result = probe(model, torch.randn(2, 4), include="Linear", trials=1, gradients=False)
    assert result.module_types[1:] == ["Linear", "Linear"]  # not the letters L, i, n, ...
    with pytest.raises(ValueError, match=r"^no module to probe: include=\['Lin'\] matches no "):
        probe(model, torch.randn(2, 4), include="Lin", trials=1)


# --- 5. tracebacks left --------------------------------------------------------------------


def test_critical_with_a_constant_plug_in_activation_is_one_line(capsys, registries):
    line = refused(["init=critical", "+activation._target_=torch.zeros_like",
                    "activation.name=flat", "depth=2", "trials=1"], capsys)
    assert line.startswith("init=critical cannot place activation='flat' on the edge of chaos: "
                           "its mean-field maps fail (RuntimeError: ")


def _run_and_break(tmp_path, capsys, damage) -> str:
    code, err = main_in_process(["depth=3", "width=4", "trials=2", *QUIET], capsys)
    assert code == 0, err
    job = only_child(tmp_path / "outputs" / "runs")
    damage(job)
    from initlab.plotcli import main as plot_main

    assert plot_main([str(job)]) == 1
    return one_line(capsys.readouterr().err)


def test_plotting_a_job_with_a_truncated_parquet_file_is_one_line(tmp_path, capsys):
    def truncate(job):
        data = (job / "layers.parquet").read_bytes()
        (job / "layers.parquet").write_bytes(data[: len(data) // 2])

    line = _run_and_break(tmp_path, capsys, truncate)
    assert line.startswith("initlab-plot: error: ")
    assert "layers.parquet unreadable (ArrowInvalid: " in line
    assert line.endswith("; layers.csv holds together")


def test_plotting_a_csv_cut_at_a_row_boundary_is_refused_not_drawn(tmp_path, capsys):
    """Cut mid-data but on a newline: the row count gives it away."""
    def cut(job):
        (job / "layers.parquet").unlink()
        lines = (job / "layers.csv").read_text().splitlines(keepends=True)
        (job / "layers.csv").write_text("".join(lines[:5]))

    line = _run_and_break(tmp_path, capsys, cut)
    assert line.endswith("layers.csv has 4 rows; trials*(depth+1) = 8")


def test_a_report_lists_a_job_with_a_truncated_parquet_file_as_broken(tmp_path, capsys):
    code, err = main_in_process(["depth=3", "width=4", "trials=2", *QUIET], capsys)
    assert code == 0, err
    job = only_child(tmp_path / "outputs" / "runs")
    data = (job / "layers.parquet").read_bytes()
    (job / "layers.parquet").write_bytes(data[:100])
    [record] = find_jobs(job)
    assert record.status == "broken"
    assert record.problem.startswith("layers.parquet unreadable")
    with pytest.raises(Broken):
        read_layers(job, 2, 3)


# --- 6. values that pass validation and then fail -----------------------------------------


@pytest.mark.parametrize("bias, dtype, shown", [
    (["bias=uniform", "bias.bound=1e300"], "float64", "bias.bound=1e+300"),
    (["bias=constant", "bias.value=1e200"], "float64", "bias.value=1e+200"),
    (["bias=normal", "bias.sigma_b2=1e300"], "float32", "bias.sigma_b2=1e+300"),
])
@pytest.mark.parametrize("model", [[], ["model=conv_chain", "model.depth=2", "model.size=9"]])
def test_a_bias_that_overflows_is_refused_in_one_line(capsys, bias, dtype, shown, model):
    line = refused([*model, *bias, "trials=1", f"dtype={dtype}"], capsys)
    largest = {"float64": "1.8e+308", "float32": "3.4e+38"}[dtype]
    assert line == (f"{shown} is not allowed: the bias's values or their square overflow "
                    f"{dtype} (largest {largest}); give a smaller scale")


@pytest.mark.parametrize("make", [
    lambda: ChainSpec(bias="uniform", bias_params={"bound": 1e300}, dtype="float64"),
    lambda: ModelSpec(model="simple_cnn", bias="constant", bias_params={"value": 1e200}),
])
def test_specs_refuse_an_overflowing_bias_with_a_spec_error(make):
    with pytest.raises(SpecError, match="overflow"):
        make()


def test_dict_valued_overrides_compose_as_typed(capsys, tmp_path):
    """'+model.params={depth: 4}' (conf/model/custom.yaml's spelling) and a sweep of dicts;
    without the + Hydra refuses to add keys, and the line says to add it."""
    line = refused([*CUSTOM, "model.params={depth: 4}"], capsys)
    assert line == ("model.params: has no such key yet; add keys with a +: "
                    "+model.params={depth: 4}")
    code, err = main_in_process(["-m", *CUSTOM, "+model.params={depth: 4},{depth: 3}",
                                 "trials=1", *QUIET], capsys)
    assert code == 0, err
    sweep = only_child(tmp_path / "outputs" / "multiruns")
    depths = sorted(json.loads(p.read_text())["depth"] for p in sweep.glob("*/summary.json"))
    assert depths == [3, 4]


def test_model_params_the_target_does_not_take_are_refused_before_any_job(capsys):
    line = refused(["-m", *CUSTOM, "+model.params={depth: 4},{width: 3}"], capsys)
    assert line == ("model.params (width=3) do not fit model._target_=adv_models.mlp (got an "
                    "unexpected keyword argument 'width'); its parameters: depth")


# --- 7. wrong things judged or predicted ---------------------------------------------------


def test_a_chain_reference_is_refused_for_a_model_and_for_another_chain(capsys):
    line = refused(["experiments=journey", "model=simple_cnn"], capsys)
    assert line == ("the reference (seed 001, experiment 1) was measured on the chain, not on "
                    "model=simple_cnn; run the preset without model=, or add reference=null to "
                    "run it without the reference")
    line = refused(["experiments=relu_moments", "width=16"], capsys)
    assert line.startswith("the reference (seed 001, single-layer ReLU moments (10,000 "
                           "samples)) was measured with width=512, not width=16")
    check_args(["experiments=journey", "model=simple_cnn", "reference=null"])


def test_the_reference_the_job_carries_has_no_measured_on_key():
    cfg = compose_overrides(["+experiments/journey=4_scaled_tanh"])
    reference = config.reference_from_config(cfg)
    assert "measured_on" not in reference and reference["final_std"] == 0.0549


def test_with_real_images_the_layer_0_theory_is_the_measured_input(capsys, tmp_path):
    pytest.importorskip("sklearn")
    code, err = main_in_process(["model=conv_chain", "inputs=digits", "batch=4", "trials=2",
                                 "model.depth=3", "model.size=13", "model.channels=4",
                                 *QUIET], capsys)
    assert code == 0, err
    frame = pd.read_parquet(only_child(tmp_path / "outputs" / "runs") / "layers.parquet")
    inputs = frame[frame.layer == 0]
    assert inputs["mean"].mean() > 0.3  # digits: no negative pixel
    assert np.allclose(inputs["theory_mean"], inputs["mean"].mean())
    assert np.allclose(inputs["theory_std"], inputs["std"].mean())


def test_gaussian_inputs_keep_the_theorys_own_layer_0(capsys, tmp_path):
    code, err = main_in_process(["model=conv_chain", "trials=2", "model.depth=3",
                                 "model.size=13", "model.channels=4", *QUIET], capsys)
    assert code == 0, err
    frame = pd.read_parquet(only_child(tmp_path / "outputs" / "runs") / "layers.parquet")
    assert np.allclose(frame[frame.layer == 0][["theory_mean", "theory_std"]], [0.0, 1.0])


# --- 8. messages and API edges -------------------------------------------------------------


def test_critical_with_a_huge_bias_says_to_give_less_not_more(capsys):
    line = refused(["init=critical", "init.sigma_b2=1e6", "depth=2"], capsys)
    assert line == ("init=critical with sigma_b2=1e+06: activation='relu' has no attracting "
                    "fixed point q* in [0.001, 100] for any sigma_w2 in [0.05, 1000]; give "
                    "sigma_b2 < 100 (the fixed point q* is at least sigma_b2)")


def test_a_models_init_error_lists_what_the_command_line_takes_and_the_probe_its_own():
    with pytest.raises(SpecError) as info:
        ModelSpec(model="simple_cnn", init="lsuv")
    assert "allowed: zero, normal" in str(info.value)
    assert "model" not in str(info.value).split("allowed: ")[1].split(", ")
    with pytest.raises(ValueError, match=r"allowed: model, keep, zero, normal"):
        probe(nn.Linear(2, 2), torch.randn(2, 2), init="lsuv")


def test_a_conv_chain_too_small_for_any_depth_says_the_size_it_needs(capsys):
    line = refused(["model=conv_chain", "model.size=1", "model.depth=1"], capsys)
    assert line == ("model.size=1 is too small for depth=1: each valid 3x3 convolution "
                    "removes 2 pixels, so size must be >= 2 depth + 1 = 3")


def test_a_plug_in_init_does_not_inherit_the_replaced_schemes_parameters(capsys, tmp_path,
                                                                         registries):
    """init=kaiming (the default) sets mode, distribution, negative_slope: a plug-in put in
    its place gets only what it takes; one the command line names it does not take is
    refused."""
    line = refused(["init.name=tn2", "init._target_=torch.nn.init.trunc_normal_",
                    "init.mode=fan_out", "depth=2"], capsys)
    assert line == ("init.mode=fan_out does not apply to init='tn2' (a plug-in, "
                    "torch.nn.init.trunc_normal_); its parameters: mean, std, a, b")
    code, err = main_in_process(["init.name=tn", "init._target_=torch.nn.init.trunc_normal_",
                                 "init.std=0.05", "depth=2", "width=8", "trials=1", *QUIET],
                                capsys)
    assert code == 0, err
    summary = json.loads((only_child(tmp_path / "outputs" / "runs") / "summary.json")
                         .read_text())
    assert {k: v for k, v in summary["settings"].items() if k.startswith("init")} == {
        "init": "tn", "init_std": 0.05}


@pytest.mark.parametrize("target, got", [("returns_none", "None"),
                                         ("returns_ints", "a torch.int64 tensor")])
def test_a_model_whose_output_cannot_start_a_backward_pass_is_refused(capsys, target, got):
    message = ("gradients=true needs the model's output to start the backward pass from, but "
               f"its output holds no floating-point tensor (it returned {got}); return one, "
               "or set gradients=false")
    line = refused(["model=custom", f"model._target_=adv_models.{target}",
                    "model.input_shape=[8]", "trials=1"], capsys)
    assert line == message
    import adv_models

    with pytest.raises(ValueError) as info:
        probe(getattr(adv_models, target), torch.randn(2, 8), trials=1)
    assert str(info.value) == message
    result = probe(getattr(adv_models, target), torch.randn(2, 8), trials=1, gradients=False)
    assert result.grads is None


def test_gradients_are_checked_with_the_model_in_a_sweep():
    """gradients=false, true beside two targets: only (returns_none, true) fails, and the
    sweep is refused for it before any job."""
    with pytest.raises(UsageError, match=r"it returned None\); return one, or set "
                                         r"gradients=false$"):
        check_args(["-m", "model._target_=adv_models.mlp,adv_models.returns_none",
                    "model.input_shape=[8]", "gradients=false,true"])


def test_a_one_unit_layer_has_no_std_and_a_model_of_only_such_layers_gets_no_verdict(
        capsys, tmp_path):
    """A 1-unit layer with batch 1 holds one value per trial: its std is undefined (NaN,
    never 0, which would read as vanished); the verdict is taken on the other layers, and
    with none left there is no verdict (the job fails in one line, not "stable")."""
    import adv_models

    from initlab.testing import assert_stable

    result = assert_stable(adv_models.one_unit, (8,), batch=1, trials=2)  # the hidden layer
    assert np.isnan(result.stats["std"][:, -1]).all()
    assert np.isfinite(result.stats["std"][:, 1]).all()
    assert np.isfinite(assert_stable(adv_models.one_unit, (8,), batch=4).stats["std"]).all()
    with pytest.raises(ValueError, match=r"^no verdict: every judged layer \('0'\) holds a "
                                         r"single value per trial \(one unit, batch 1\)"):
        assert_stable(adv_models.only_one_unit, (8,), batch=1, trials=2)
    code, err = main_in_process(["model._target_=adv_models.only_one_unit",
                                 "model.input_shape=[8]", "trials=2", *QUIET], capsys)
    assert code == 1
    assert one_line(err).startswith("initlab: error: job failed: ValueError: no verdict: ")


def test_spec_edges_none_params_numpy_integers():
    spec = ChainSpec(init_params=None, activation_params=None, bias_params=None, depth=2,
                     width=4, trials=1, device="cpu")
    assert (spec.init_params, spec.activation_params, spec.bias_params) == ({}, {}, {})
    spec = ChainSpec(depth=np.int64(3), width=np.int32(4), trials=np.int64(2),
                     seed=np.uint8(7), device="cpu")
    assert (spec.depth, spec.width, spec.trials, spec.seed) == (3, 4, 2, 7)
    assert all(type(v) is int for v in (spec.depth, spec.width, spec.trials, spec.seed))
    with pytest.raises(SpecError, match=r"^depth=True is not allowed"):
        ChainSpec(depth=True)


@pytest.mark.parametrize("by_layer, message", [
    (-5, r"^by_layer=-5 is not allowed; by_layer must be an integer >= 1"),
    (0, r"^by_layer=0 is not allowed"),
    (7, r"^by_layer=7 is not allowed; by_layer must be an integer <= 6 \(the chain has 6 "),
])
def test_assert_vanishes_refuses_a_layer_the_chain_does_not_have(by_layer, message):
    from initlab.testing import assert_vanishes

    with pytest.raises(ValueError, match=message):
        assert_vanishes(init="zero", activation="relu", depth=6, width=8, trials=2,
                        by_layer=by_layer)
    assert_vanishes(init="zero", activation="relu", depth=6, width=8, trials=2, by_layer=1)


def test_the_command_line_runner_is_named_for_what_it_does():
    import initlab.testing as T

    result, verdict = T.run_like_cli("init=zero", depth=3, width=4, trials=1)
    assert verdict["verdict"] == "vanished" and result.spec.depth == 3
    assert not hasattr(T, "chain") and "run_like_cli" in T.__all__
