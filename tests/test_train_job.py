"""Training as a kind of job (initlab.trainjob through initlab.job): the command line's
``train=`` group, the files and summary block a training job writes, chains of one shape
trained as one group, step 0 equal to the probe at initialization, and a run without
``train`` measuring at initialization exactly as before."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FirstBatches, main_in_process, one_line

from initlab import trainjob
from initlab.job import Job, run_jobs
from initlab.probing import probe
from initlab.spec import ChainSpec
from initlab.train import TrainSpec, sequential
from initlab.train.chain import ChainConfig, model_schemes
from initlab.train.data import load_data

TANH = dict(init="scaled", activation="tanh", bias="normal", bias_params={"sigma_b2": 0.05})
SMALL = TrainSpec(steps=12, batch_size=16, lr=1e-2, record_every=6, eval_every=6)


def chain(sigma_w2=1.76, **kw) -> ChainSpec:
    base = dict(width=12, depth=3, trials=3, seed=4, device="cpu", gradients=False)
    return ChainSpec(init_params={"sigma_w2": sigma_w2}, **{**TANH, **base, **kw})


def test_a_training_job_writes_its_files_and_summary_block(tmp_path):
    job = Job(chain(), out_dir=tmp_path / "a", train=SMALL)
    summary = run_jobs([job])[0]
    assert summary["status"] == "ok"
    files = {p.name for p in (tmp_path / "a").iterdir()}
    assert {"train_steps.csv", "train_steps.parquet", "train_layers.csv",
            "train_layers.parquet", "train_histogram.csv", "layers.csv",
            "summary.json"} <= files
    written = json.loads((tmp_path / "a" / "summary.json").read_text())
    block = written["training"]
    steps = pd.read_parquet(tmp_path / "a" / "train_steps.parquet")
    final = steps[steps.step == SMALL.steps].eval_acc.to_numpy()
    assert block["final_eval_acc"] == pytest.approx(float(np.median(final)), abs=0)
    assert block["steps"] == SMALL.steps and block["trials"] == 3
    assert written["settings"]["train_lr"] == SMALL.lr  # the training settings are settings
    layers = pd.read_csv(tmp_path / "a" / "train_layers.csv")
    assert {"module", "module_type", "near_zero", "std"} <= set(layers.columns)
    assert sorted(layers.step.unique()) == SMALL.record_steps()
    last = layers[(layers.step == 0) & (layers.layer == block["step0"]["layer"])]
    assert block["step0"]["std"] == pytest.approx(float(np.median(last["std"])), rel=1e-12)


def test_without_train_a_job_measures_at_init_only(tmp_path):
    summary = run_jobs([Job(chain(), out_dir=tmp_path / "b")])[0]
    assert "training" not in summary
    assert not list((tmp_path / "b").glob("train_*"))
    assert "train_lr" not in summary["settings"]


def test_chains_of_one_shape_train_as_one_group_and_each_as_if_alone(tmp_path):
    specs = [chain(1.0), chain(1.76), chain(3.0), chain(1.76, width=10)]
    groups = trainjob.plan([(s, SMALL) for s in specs])
    assert sorted(map(len, groups)) == [1, 3]
    run_jobs([Job(s, out_dir=tmp_path / str(i), train=SMALL) for i, s in enumerate(specs)])
    alone = tmp_path / "alone"
    run_jobs([Job(specs[2], out_dir=alone, train=SMALL)])
    a = pd.read_parquet(tmp_path / "2" / "train_steps.parquet")
    b = pd.read_parquet(alone / "train_steps.parquet")
    # a trial batched with others is the trial alone: each row of the bmm's is its own
    # product, summed in the same order (initlab.train.chain's test covers every
    # optimizer); the file's numbers are identical
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.numerics
def test_step_zero_in_the_job_files_is_the_probe_at_initialization(tmp_path):
    # float64 both ways: bmm and nn.Linear sum in other orders, ~fan_in x eps64 relative
    # per layer over depth + 2 layers: < 1e-12 at these sizes
    spec = chain(dtype="float64")
    run_jobs([Job(spec, out_dir=tmp_path, train=SMALL)])
    layers = pd.read_parquet(tmp_path / "train_layers.parquet")
    step0 = layers[layers.step == 0].sort_values(["trial", "layer"])
    config = ChainConfig.of(spec)
    data = load_data(SMALL, None, torch.float64)
    net = sequential(config, data.features, data.outputs, torch.float64)
    result = probe(lambda: sequential(config, data.features, data.outputs, torch.float64),
                   FirstBatches(data.x_train, SMALL.batch_size), trials=spec.trials,
                   seed=spec.seed, gradients=False, include=["Activation", str(len(net) - 1)],
                   **model_schemes(config))
    got = step0.pivot(index="trial", columns="layer", values="std").to_numpy()
    np.testing.assert_allclose(got, result.stats["std"], rtol=1e-12)


def test_the_command_line_trains_and_refuses_bad_training_values(tmp_path, capsys):
    out = tmp_path / "run"
    code, _ = main_in_process(["train=teacher", "width=8", "depth=2", "trials=2",
                               "train.steps=4", "train.record_every=2", "train.eval_every=2",
                               "report=false", "plots=false", f"hydra.run.dir={out}"], capsys)
    assert code == 0
    assert json.loads((out / "summary.json").read_text())["training"]["data"] == "teacher"
    code, err = main_in_process(["train=digits", "train.optimizer=lbfgs"], capsys)
    assert code == 2
    assert one_line(err) == ("initlab: error: train.optimizer='lbfgs' is not allowed; "
                             "allowed: sgd, momentum, adam, rmsprop")
    code, err = main_in_process(["train.lr=3"], capsys)
    assert code == 2 and "training is off" in one_line(err)


def test_model_jobs_train_each_alone_and_a_conv_chain_gets_a_readout(tmp_path):
    from initlab.modelspec import ModelSpec

    spec = ModelSpec(model="conv_chain", channels=2, depth=2, size=8, trials=2, device="cpu",
                     gradients=False)
    fast = TrainSpec(steps=4, batch_size=8, record_every=2, eval_every=2)
    slow = TrainSpec(steps=4, batch_size=8, record_every=2, eval_every=2, lr=1e-5)
    # one init-time pass serves both (same model); their training differs
    summaries = run_jobs([Job(spec, out_dir=tmp_path / "fast", train=fast),
                          Job(spec, out_dir=tmp_path / "slow", train=slow)])
    assert [s["status"] for s in summaries] == ["ok", "ok"]
    steps = {k: pd.read_parquet(tmp_path / k / "train_steps.parquet") for k in ("fast", "slow")}
    assert (steps["fast"].lr.dropna() == 1e-3).all() and (steps["slow"].lr.dropna() == 1e-5).all()
    first = steps["fast"][steps["fast"].step == 0].train_loss.to_numpy()
    np.testing.assert_array_equal(first, steps["slow"][steps["slow"].step == 0].train_loss)
    layers = pd.read_parquet(tmp_path / "fast" / "train_layers.parquet")
    assert layers.module_type.iloc[-1] == "Linear"  # the readout to digits' 10 classes
    assert set(layers.module_type) == {"input", "Conv2d", "Activation", "Linear"}


def test_train_tensorboard_true_writes_event_files_beside_the_tables(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    code, _ = main_in_process(["train=teacher", "width=8", "depth=2", "trials=2",
                               "train.steps=4", "train.record_every=2", "train.eval_every=2",
                               "train.tensorboard=true", "report=false", "plots=false",
                               f"hydra.run.dir={out}"], capsys)
    assert code == 0
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    steps = pd.read_parquet(out / "train_steps.parquet")
    loss = steps.groupby("step").train_loss.median()
    got = {e.step: e.value for e in events.Scalars("train/loss")}
    # the event file stores float32: the medians to float32 rounding
    assert got == pytest.approx(loss.to_dict(), rel=1e-6)


def test_a_sweeps_summary_csv_has_the_training_results(tmp_path):
    from initlab.report import write_report

    specs = [chain(1.0), chain(1.76)]
    for i, s in enumerate(specs):
        run_jobs([Job(s, out_dir=tmp_path / f"{i}_scaled_tanh", train=SMALL)])
    table = pd.read_csv(write_report(tmp_path) / "summary.csv")
    for i in range(2):
        block = json.loads((tmp_path / f"{i}_scaled_tanh" / "summary.json").read_text())
        row = table[table.job == f"{i}_scaled_tanh"].iloc[0]
        assert row.train_verdict == block["training"]["verdict"]
        assert row.train_final_eval_acc == block["training"]["final_eval_acc"]
    # gradients were off in every job: no all-empty gradient columns
    assert not [c for c in table.columns if c.startswith("grad_") and c != "grad_verdict"]


def test_a_sweep_over_a_training_setting_names_it_as_swept(tmp_path):
    from initlab.report import write_report

    for i, lr in enumerate((1e-2, 1e-3)):
        spec = TrainSpec(steps=4, batch_size=16, lr=lr, record_every=2, eval_every=2)
        run_jobs([Job(chain(), out_dir=tmp_path / f"{i}_scaled_tanh", train=spec)])
    text = (write_report(tmp_path) / "report.md").read_text()
    assert "Swept: train_lr (0.001, 0.01)." in text or "Swept: train_lr (0.01, 0.001)." in text
