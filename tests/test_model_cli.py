"""The ``model`` config group on the command line: conv_chain, simple_cnn, a user's model.

Configs are composed as tests/test_config.py does; runs go through ``initlab.app.main``
in this process (``main_in_process``) with few trials and a small conv chain
(4 channels, 13x13 -> 1x1 in 6 valid 3x3 convolutions), so each test stays within a
few seconds.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import main_in_process, one_line, only_child
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from initlab import config, paths, store
from initlab.job import log_line
from initlab.report.load import load_job

#: a small conv chain: 13 -> 11 -> ... -> 1 (sizes s_l = 13 - 2 l), fan_in = 4 * 9 = 36
SMALL = ["model.channels=4", "model.size=13", "model.depth=6"]
QUIET = ["report=false", "plots=false"]
SIDES = [13 - 2 * layer for layer in range(7)]


@pytest.fixture(autouse=True)
def clean_global_hydra(monkeypatch, tmp_path):
    """Each test starts and ends with no Hydra instance, in its own working directory."""
    monkeypatch.chdir(tmp_path)
    GlobalHydra.instance().clear()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add contention on a shared machine
    yield
    torch.set_num_threads(threads)
    GlobalHydra.instance().clear()


def compose_config(*overrides: str):
    config.register()
    with initialize_config_dir(version_base="1.3", config_dir=str(paths.conf_dir())):
        return compose("config", overrides=list(overrides))


def run_dir(tmp_path):
    return only_child(tmp_path / "outputs" / "runs")


def read_job(job):
    summary = json.loads((job / store.SUMMARY_JSON).read_text())
    return summary, pd.read_parquet(job / store.LAYERS_PARQUET)


# --- composing ---------------------------------------------------------------------------


def test_model_group_has_the_chain_as_default_and_the_probe_models():
    assert set(paths.group_options("model")) == {"chain", "conv_chain", "simple_cnn", "custom"}
    cfg = compose_config()
    assert cfg.model.name == "chain" and not config.is_model(cfg)
    assert cfg.inputs == "gaussian"
    conv = config.model_spec_from_config(compose_config("model=conv_chain"))
    # seed 001: 16 channels (the default), 99 valid 3x3 convolutions, 199 x 199 -> 1 x 1
    assert (conv.channels, conv.depth, conv.size) == (16, 99, 199)
    assert conv.shape() == (16, 199, 199)
    cnn = config.model_spec_from_config(compose_config("model=simple_cnn"))
    assert cnn.shape() == (1, 28, 28)
    assert (cnn.init, cnn.activation, cnn.bias) == ("kaiming", "relu", "zero")


def test_the_chain_keeps_its_job_directory_names():
    assert config.job_tag("chain", None, 100) == "depth100"  # as before the model group
    assert config.job_tag("conv_chain", None, 100) == "conv_chain"
    assert config.job_tag("custom", "my.package.make_net", 100) == "make_net"


def test_model_settings_a_model_does_not_take_are_ignored_so_sweeps_can_mix_models():
    spec = config.model_spec_from_config(compose_config("model=simple_cnn", *SMALL))
    assert spec.shape() == (1, 28, 28)


@pytest.mark.parametrize(("args", "expected"), [
    (["model=nope"], "model=nope is not an option; allowed: chain, conv_chain, custom"),
    (["model=conv_chain", "depth=50"],
     "depth=50 does not apply to model=conv_chain (a setting of the chain); set model.depth"),
    (["model=simple_cnn", "width=64"], "width=64 does not apply to model=simple_cnn"),
    (["model=conv_chain", "weights=shared"], "weights=shared does not apply to model=conv_chain"),
    (["model=conv_chain", "model.size=21", "model.depth=20"], "(or depth <= 10)"),
    (["model=conv_chain", "model.channels=0"], "model.channels=0 is not allowed"),
    (["model=conv_chain", "model.nope=1"], "model.nope: no such setting"),
    (["model=custom"], "model=custom needs model._target_=<module.function>"),
    (["model._target_=no_such_package_m1.make", "model.input_shape=[4]"],
     "model._target_='no_such_package_m1.make' cannot be imported"),
    (["model._target_=torch.nn.Linear", "model.input_shape=[0]"],
     "model.input_shape=[0] is not allowed"),
    (["model=conv_chain", "init=lsuv"], "lsuv"),
    (["inputs=digits"], "inputs=digits applies to models"),
    (["model=simple_cnn", "inputs=pictures"], "inputs='pictures' is not allowed"),
    (["-m", "model=conv_chain,simple_cnn", "depth=50"], "depth=50 does not apply"),
])
def test_bad_model_settings_are_refused_in_one_line(args, expected, capsys, tmp_path):
    code, err = main_in_process(args, capsys)
    assert code == 2
    assert expected in one_line(err)
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*.json"))


def test_digits_without_scikit_learn_say_how_to_install(monkeypatch):
    import importlib.util

    from initlab import inputs

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sklearn" else real(name, *a))
    with pytest.raises(ValueError, match=r"pip install 'initlab\[digits\]'"):
        inputs.check("digits", (1, 28, 28))


# --- running ------------------------------------------------------------------------------


def test_conv_chain_run_writes_a_chain_job_directory(capsys, tmp_path):
    code, err = main_in_process(["model=conv_chain", *SMALL, "trials=3", "batch=2",
                                 "report=false", "plots=true"], capsys)
    assert code == 0, err
    job = run_dir(tmp_path)
    summary, frame = read_job(job)
    assert summary["status"] == "ok"
    assert (summary["model"], summary["settings"]["model"]) == ("conv_chain", "conv_chain")
    assert (summary["depth"], summary["width"], summary["trials"]) == (6, 4, 3)
    assert summary["verdict"] in ("stable", "vanished", "exploded")
    assert "init=kaiming activation=relu depth=6" in log_line(summary)
    assert len(frame) == 3 * 7 and set(store.LAYER_COLUMNS) <= set(frame.columns)
    assert (frame["model"] == "conv_chain").all()
    first = frame[frame.trial == 0]
    assert list(first["module"]) == ["input", "0+1", "2+3", "4+5", "6+7", "8+9", "10+11"]
    assert set(first["module_type"][1:]) == {"Conv2d+relu"}
    for column in ("theory_mean", "theory_std", "theory_corr", "theory_grad_x_std"):
        assert np.isfinite(first[column]).all(), column
    assert (job / store.HISTOGRAM_CSV).exists() and (job / "std_by_layer.png").exists()
    assert load_job(job).status == "ok"  # the report reads it as a finished job


def test_conv_theory_columns_are_the_relu_closed_form_with_fan_in_c_times_9(capsys, tmp_path):
    """N(0, 0.2^2) weights, fan_in = 4 * 9 = 36: sigma_w2 = 36 * 0.04 = 1.44. For ReLU,
    q_1 = sigma_w2 E[x_0^2] = 1.44, q_l = (sigma_w2 / 2) q_{l-1}; x_l has mean
    sqrt(q_l / (2 pi)) and E[x_l^2] = q_l / 2; the pre-activation cosine follows the
    arc-cosine kernel c' = (sqrt(1 - c^2) + (pi - arccos c) c) / pi from c_0 = 0; the
    gradient's mean square shrinks by (sigma_w2 / 2) (s_l / s_{l-1})^2 per layer back
    (initlab.theory.conv). Quadrature is exact to ~1e-12 (initlab.theory.quadrature)."""
    code, err = main_in_process(["model=conv_chain", *SMALL, "init=normal", "init.std=0.2",
                                 "trials=1", "batch=2", *QUIET], capsys)
    assert code == 0, err
    _, frame = read_job(run_dir(tmp_path))
    first = frame[frame.trial == 0]
    sigma_w2, depth = 36 * 0.2**2, 6
    q = np.array([1.0] + [sigma_w2 * (sigma_w2 / 2) ** (layer - 1) for layer in range(1, 7)])
    mean = np.concatenate([[0.0], np.sqrt(q[1:] / (2 * math.pi))])
    second = np.concatenate([[1.0], q[1:] / 2])
    c = [0.0, 0.0]
    for _ in range(depth - 1):
        c.append((math.sqrt(1 - c[-1] ** 2) + (math.pi - math.acos(c[-1])) * c[-1]) / math.pi)
    grad = np.array([(sigma_w2 / 2) ** ((depth - layer) / 2) * SIDES[-1] / SIDES[layer]
                     for layer in range(depth + 1)])
    np.testing.assert_allclose(first["theory_mean"], mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(first["theory_std"], np.sqrt(second - mean**2), rtol=1e-9)
    np.testing.assert_allclose(first["theory_corr"], c, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(first["theory_grad_x_std"], grad, rtol=1e-9)


@pytest.mark.numerics
def test_the_valid_conv_gradient_shrinks_by_the_side_ratio(capsys, tmp_path):
    """A linear conv chain (activation none) with sigma_w2 = 1 (xavier, fan_in = fan_out =
    36): sum_p E[g_{l-1}(p)^2] = sum_o E[g_l(o)^2] exactly, so the input gradient's mean
    square is (s_L / s_0)^2 = (1/13)^2 = 0.0059, not the chain's 1. Band: 4 standard errors
    of the mean over 64 trials (measured here), around the exact expectation."""
    code, err = main_in_process(["model=conv_chain", *SMALL, "init=xavier", "activation=none",
                                 "trials=64", "dtype=float64", *QUIET], capsys)
    assert code == 0, err
    summary, frame = read_job(run_dir(tmp_path))
    inputs = frame[frame.layer == 0]
    ms = inputs["grad_x_std"].to_numpy() ** 2 + inputs["grad_x_mean"].to_numpy() ** 2
    expected = (SIDES[-1] / SIDES[0]) ** 2
    assert abs(ms.mean() - expected) < 4 * ms.std(ddof=1) / math.sqrt(len(ms))
    assert summary["theory_input_grad_std"] == pytest.approx(math.sqrt(expected), rel=1e-9)


def test_simple_cnn_rows_are_its_five_convolutions_without_theory(capsys, tmp_path):
    code, err = main_in_process(["model=simple_cnn", "trials=2", *QUIET], capsys)
    assert code == 0, err
    summary, frame = read_job(run_dir(tmp_path))
    first = frame[frame.trial == 0]
    assert list(first["module_type"]) == ["input"] + ["Conv2d"] * 5
    assert summary["depth"] == 5 and summary["width"] == 64  # the widest layer: 64 channels
    assert first["theory_std"].isna().all() and summary["theory_final_std"] is None
    assert summary["theory_note"] == "none applies to model=simple_cnn"


def test_a_users_model_runs_from_its_target(capsys, tmp_path, monkeypatch):
    (tmp_path / "m1_user_model.py").write_text(textwrap.dedent("""
        from torch import nn

        def make(width=8, layers=3):
            return nn.Sequential(*[m for _ in range(layers)
                                   for m in (nn.Linear(width, width), nn.Tanh())])
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    code, err = main_in_process(["model._target_=m1_user_model.make", "model.input_shape=[8]",
                                 "+model.params.layers=4", "init=xavier", "trials=2", *QUIET],
                                capsys)
    assert code == 0, err
    summary, frame = read_job(run_dir(tmp_path))
    assert (summary["model"], summary["model_target"]) == ("custom", "m1_user_model.make")
    assert summary["activation"] == "model" and summary["depth"] == 4
    assert list(frame[frame.trial == 0]["module_type"]) == ["input"] + ["Linear"] * 4
    sys.modules.pop("m1_user_model", None)


def test_a_failing_model_run_exits_1_with_one_line(capsys, tmp_path, monkeypatch):
    (tmp_path / "m1_broken_model.py").write_text(textwrap.dedent("""
        from torch import nn

        class Broken(nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = nn.Linear(4, 4)

            def forward(self, x):
                raise RuntimeError("forward is broken")

        def make():
            return Broken()
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    code, err = main_in_process(["model._target_=m1_broken_model.make",
                                 "model.input_shape=[4]", "trials=1", *QUIET], capsys)
    assert code == 1
    assert one_line(err) == "initlab: error: job failed: RuntimeError: forward is broken"
    summary = json.loads((run_dir(tmp_path) / store.SUMMARY_JSON).read_text())
    assert summary["status"] == "failed" and summary["model"] == "custom"
    sys.modules.pop("m1_broken_model", None)


def test_a_model_sweep_runs_each_model_and_names_its_directories(capsys, tmp_path):
    code, err = main_in_process(["-m", "model=conv_chain,simple_cnn", *SMALL, "trials=2",
                                 *QUIET], capsys)
    assert code == 0, err
    sweep = only_child(tmp_path / "outputs" / "multiruns")
    names = {p.name for p in sweep.iterdir() if p.is_dir()}
    assert names == {"0_kaiming_relu_conv_chain", "1_kaiming_relu_simple_cnn"}
    for job in (p for p in sweep.iterdir() if p.is_dir()):
        summary = json.loads((job / store.SUMMARY_JSON).read_text())
        assert summary["status"] == "ok" and summary["model"] == job.name.rsplit("_relu_", 1)[1]


def test_digit_inputs_are_real_images_not_centred(capsys, tmp_path):
    pytest.importorskip("sklearn")
    code, err = main_in_process(["model=simple_cnn", "inputs=digits", "trials=4", "batch=8",
                                 *QUIET], capsys)
    assert code == 0, err
    summary, frame = read_job(run_dir(tmp_path))
    x0 = frame[frame.layer == 0]
    # pixels / the set's rms (7.75): mean 4.88 / 7.75 = 0.63 over the set, all >= 0;
    # resizing 8x8 -> 28x28 moves it a little; 4 x 8 images drawn: well above 0.3
    assert (x0["mean"] > 0.3).all()
    assert summary["inputs"] == "digits"
    assert x0["corr"].mean() > 0.3  # non-negative images: their cosines are far from 0


def test_digits_feed_a_conv_chain_with_theory_from_the_measured_inputs(capsys, tmp_path):
    pytest.importorskip("sklearn")
    code, err = main_in_process(["model=conv_chain", *SMALL, "inputs=digits", "trials=2",
                                 "batch=2", *QUIET], capsys)
    assert code == 0, err
    _, frame = read_job(run_dir(tmp_path))
    first = frame[frame.trial == 0]
    x0 = frame[frame.layer == 0]
    assert first["theory_corr"].iloc[0] == pytest.approx(x0["corr"].mean(), rel=1e-9)
    assert np.isfinite(first["theory_std"]).all()


def test_ctrl_c_in_a_model_job_stops_with_one_line_and_status_130(capsys, tmp_path,
                                                                  monkeypatch):
    (tmp_path / "m1_interrupted_model.py").write_text(textwrap.dedent("""
        from torch import nn

        class Interrupted(nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = nn.Linear(4, 4)

            def forward(self, x):
                if x.device.type != "meta":  # the pre-flight runs it on the meta device
                    raise KeyboardInterrupt
                return self.lin(x)

        def make():
            return Interrupted()
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        code, err = main_in_process(["model._target_=m1_interrupted_model.make",
                                     "model.input_shape=[4]", "trials=1", *QUIET], capsys)
    finally:
        logging.disable(logging.NOTSET)  # the interrupt handler silences logging process-wide
    assert code == 130
    assert one_line(err).startswith("initlab: interrupted; 0 of 1 job finished; results: ")
    sys.modules.pop("m1_interrupted_model", None)


def test_model_include_hooks_the_named_modules(capsys, tmp_path):
    """simple_cnn has an Activation after four of its five convolutions."""
    code, err = main_in_process(["model=simple_cnn", "model.include=[Activation]", "trials=2",
                                 *QUIET], capsys)
    assert code == 0, err
    summary, frame = read_job(run_dir(tmp_path))
    assert summary["module_types"] == ["input"] + ["Activation"] * 4
    assert frame[frame.layer > 0]["grad_w_std"].isna().all()  # an activation has no weight
