"""summary.csv and the Jobs table carry two inputs' final correlation beside its theory
when the jobs have two inputs a trial, and no empty correlation columns when they do not."""

from __future__ import annotations

import json

import pandas as pd

from initlab.job import Job, run_jobs
from initlab.report import write_report
from initlab.spec import ChainSpec


def _sweep(root, batch):
    for i, w2 in enumerate((1.0, 2.0)):
        spec = ChainSpec(init="scaled", init_params={"sigma_w2": w2}, activation="tanh",
                         bias="normal", bias_params={"sigma_b2": 0.05}, width=16, depth=4,
                         trials=2, batch=batch, input_correlation=0.5 if batch > 1 else 0.0,
                         device="cpu", gradients=False)
        run_jobs([Job(spec, out_dir=root / f"{i}_scaled_tanh_depth4")])
    return write_report(root)


def test_two_inputs_put_the_final_correlation_beside_its_theory(tmp_path):
    report = _sweep(tmp_path, batch=2)
    table = pd.read_csv(report / "summary.csv")
    for i in range(2):
        summary = json.loads((tmp_path / f"{i}_scaled_tanh_depth4" / "summary.json").read_text())
        row = table[table.job == f"{i}_scaled_tanh_depth4"].iloc[0]
        assert row.final_corr == summary["final_corr"]
        assert row.final_theory_corr == summary["final_theory_corr"]
    assert "| final_corr | final_theory_corr |" in (report / "report.md").read_text()


def test_one_input_has_no_correlation_columns(tmp_path):
    table = pd.read_csv(_sweep(tmp_path, batch=1) / "summary.csv")
    assert not [c for c in table.columns if "corr" in c]


def test_a_digits_jobs_corr_figure_names_the_measured_input_cosine(tmp_path, capsys):
    from conftest import main_in_process

    from initlab.figures.job import JobView

    code, _ = main_in_process(["model=simple_cnn", "inputs=digits", "batch=4", "trials=2",
                               "report=false", "plots=false", f"hydra.run.dir={tmp_path}"],
                              capsys)
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    view = JobView.read(tmp_path, summary)
    layers = pd.read_csv(tmp_path / "layers.csv")
    cosine = layers[layers.layer == 0]["corr"].median()  # not input_correlation's 0
    assert view.corr_note == f"digits inputs, measured cosine {cosine:.2g}"
