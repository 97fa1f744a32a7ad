"""Issue 15's adversarial pass, item 2: the report's labels of jobs that did not finish
(killed, cut short, never started) come from their own config or the sweep's record, one
axis per setting, and a phase grid cut short says it is partial. The user's models and
the working directory come from ``test_adversarial``'s fixture."""

from __future__ import annotations

import shutil

import numpy as np
from conftest import main_in_process, only_child
from test_adversarial import QUIET, in_tmp  # noqa: F401  (in_tmp: the autouse fixture)

from initlab.report import phase, write_report
from initlab.report.load import find_jobs
from initlab.report.tables import tabulate


def _sweep(args: list[str], tmp_path, capsys):
    code, err = main_in_process(["-m", *args, *QUIET], capsys)
    assert code == 0, err
    return only_child(tmp_path / "outputs" / "multiruns")


def _jobs(sweep):
    return sorted((p for p in sweep.iterdir() if (p / ".hydra").is_dir()),
                  key=lambda p: int(p.name.split("_")[0]))


def test_an_unfinished_model_job_keeps_its_model_and_no_chain_appears(tmp_path, capsys):
    sweep = _sweep(["model=simple_cnn", "seed=0,1", "trials=1"], tmp_path, capsys)
    (_jobs(sweep)[0] / "summary.json").unlink()
    table = tabulate(find_jobs(sweep))
    assert [j.status for j in table.jobs] == ["unfinished", "ok"]
    assert table.axes == ["seed"] and table.fixed["model"] == "simple_cnn"
    assert "chain" not in set(table.frame.astype(str).to_numpy().ravel())


def test_a_cut_conv_chain_sweep_labels_its_unfinished_and_unstarted_jobs(tmp_path, capsys):
    sweep = _sweep(["model=conv_chain", "model.depth=2,3,4", "model.size=9",
                    "model.channels=2", "trials=1"], tmp_path, capsys)
    jobs = _jobs(sweep)
    (jobs[1] / "summary.json").unlink()  # killed while it ran
    shutil.rmtree(jobs[2])  # never started
    table = tabulate(find_jobs(sweep))
    assert [j.status for j in table.jobs] == ["ok", "unfinished", "never started"]
    assert table.axes == ["model.depth"] and table.values["model.depth"] == [2, 3, 4]
    assert table.fixed["model"] == "conv_chain(channels=2, size=9)"
    assert list(table.frame["model.depth"]) == [2, 3, 4]


def test_a_swept_target_is_one_axis_finished_or_not(tmp_path, capsys):
    sweep = _sweep(["model._target_=adv_models.mlp,adv_models.mlp3", "model.input_shape=[8]",
                    "trials=1"], tmp_path, capsys)
    table = tabulate(find_jobs(sweep))
    assert table.axes == ["model.target"]
    (_jobs(sweep)[1] / "summary.json").unlink()
    table = tabulate(find_jobs(sweep))
    assert table.axes == ["model.target"]
    assert table.values["model.target"] == ["adv_models.mlp", "adv_models.mlp3"]


def test_a_phase_grid_cut_short_spans_the_plan_and_says_it_is_partial(tmp_path, capsys):
    sweep = _sweep(["init=scaled", "bias=normal", "init.sigma_w2=1.0,2.0,3.0",
                    "bias.sigma_b2=0.0,0.1", "activation=tanh", "batch=2",
                    "input_correlation=0.5", "depth=3", "width=8", "trials=2",
                    "gradients=false"], tmp_path, capsys)
    for job in _jobs(sweep)[4:]:
        shutil.rmtree(job)  # the sweep was stopped after 4 of 6 jobs
    jobs = find_jobs(sweep)
    table = tabulate(jobs)
    assert table.values["init.sigma_w2"] == [1.0, 2.0, 3.0]  # not only the finished 1.0, 2.0
    [grid] = phase.build_all(jobs)
    assert (grid.sigma_w2, grid.sigma_b2, grid.missing) == ([1.0, 2.0, 3.0], [0.0, 0.1], 2)
    assert np.isnan(grid.measured[:, 2]).all() and np.isfinite(grid.measured[:, :2]).all()
    text = (write_report(sweep) / "report.md").read_text()
    assert ("This grid is partial: 2 of its 6 cells have no finished job (failed, cut short "
            "or never started: listed under Problems) and are left grey") in text
