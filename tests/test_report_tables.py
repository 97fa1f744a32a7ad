"""initlab.report.tables: the axes of a sweep (settings that vary, named as on the command line)
and the summary frame, for every job whatever its status."""

from __future__ import annotations

import io
import json

import pandas as pd

from initlab.report import document, render
from initlab.report.load import JobRecord, find_jobs
from initlab.report.tables import tabulate
from tests.conftest import SWEEP_ACTS, SWEEP_INITS


def _job(name: str, status: str = "ok", **settings) -> JobRecord:
    summary = {"status": status, **settings}
    if status == "ok":
        summary.update(verdict="stable", verdict_layer=None)
    return JobRecord(name=name, path=None, status=status, summary=summary, settings=settings)


def _markdown(jobs: list[JobRecord]) -> str:
    title, sections = document.build(tabulate(jobs), "sweep", {}, [])
    return render.markdown(title, sections)


BASE = {"activation": "relu", "depth": 6, "width": 16, "trials": 3}


def test_a_parameter_sweep_names_the_parameter_even_with_a_failed_job():
    """init=normal init.std=0.01,1.0 where the second job failed: the failed job's settings
    (from its overrides, as load gives them) still count."""
    jobs = [_job("0", init="normal", init_std=0.01, **BASE),
            _job("1", status="failed", init="normal", init_std=1.0, **BASE)]
    table = tabulate(jobs)
    assert table.axes == ["init.std"] and table.values["init.std"] == [0.01, 1.0]
    assert table.fixed["init"] == "normal"
    md = _markdown(jobs)
    assert "Swept: init.std (0.01, 1.0)." in md and "Swept: init (" not in md
    assert "Fixed: init=normal, activation=relu, depth=6" in md


def test_a_one_axis_sweep_gets_a_one_axis_table():
    jobs = [_job(str(n), init=name, **BASE) for n, name in enumerate(("zero", "kaiming"))]
    md = _markdown(jobs)
    assert "| init | verdict |" in md and "| kaiming | stable |" in md
    assert "None" not in md.split("## Verdicts")[1].split("##")[0]


def test_scheme_labels_show_only_the_parameters_that_tell_jobs_apart():
    jobs = [_job("0", init="zero", **BASE),
            _job("1", init="kaiming", init_mode="fan_in", **BASE),
            _job("2", init="normal", init_std=0.1, **BASE),
            _job("3", init="normal", init_std=1.0, **BASE)]
    table = tabulate(jobs)
    assert table.axes == ["init"]
    assert table.values["init"] == ["zero", "kaiming", "normal(std=0.1)", "normal(std=1.0)"]


def test_two_axes_make_a_grid_and_a_third_makes_panels():
    jobs = [_job(f"{w}{s}{d}", init="kaiming", width=w, seed=s, depth=d, activation="relu",
                 trials=1)
            for w in (16, 32) for s in (0, 1) for d in (2, 3)]
    table = tabulate(jobs)
    assert table.axes == ["depth", "width", "seed"]
    md = _markdown(jobs)
    assert "| depth \\ width | 16 | 32 |" in md
    assert "**seed=0**" in md and "**seed=1**" in md


def test_never_started_jobs_count_for_the_axes():
    jobs = [_job("0", init="zero", **BASE),
            JobRecord(name="#1", path=None, status="never started",
                      settings={"init": "scaled", **BASE})]
    table = tabulate(jobs)
    assert table.values["init"] == ["zero", "scaled"]
    assert table.frame["status"].tolist() == ["ok", "never started"]


def test_summary_frame_of_the_tiny_sweep_matches_each_summary_json(tiny_sweep):
    table = tabulate(find_jobs(tiny_sweep))
    assert table.axes == ["init", "activation"]
    assert table.values == {"init": list(SWEEP_INITS), "activation": list(SWEEP_ACTS)}
    frame = table.frame
    assert len(frame) == len(SWEEP_INITS) * len(SWEEP_ACTS) and set(frame["status"]) == {"ok"}
    for row in frame.itertuples():
        summary = json.loads((tiny_sweep / row.job / "summary.json").read_text())
        assert row.verdict == summary["verdict"] and row.final_std == summary["final_std"]
        assert row.init == summary["init"] and row.activation == summary["activation"]
        assert row.exploded + row.vanished + row.stable == summary["trials"]
        assert row.final_std_q10 <= row.final_std <= row.final_std_q90
    # the file the callback wrote in the sweep's own process is this frame
    written = pd.read_csv(tiny_sweep / "report" / "summary.csv")
    pd.testing.assert_frame_equal(written, pd.read_csv(io.StringIO(frame.to_csv(index=False))))


def test_a_model_sweep_has_the_model_as_an_axis_not_the_depth_and_width_it_implies():
    """initlab -m model=chain,conv_chain,simple_cnn init=kaiming,torch_default: each model
    brings its own layer count and widest layer, which are shown per job, not swept."""
    jobs = []
    for model, depth, width in (("conv_chain", 99, 16), ("simple_cnn", 5, 64), (None, 100, 512)):
        for init in ("kaiming", "torch_default"):
            extra = {} if model is None else {"model": model}  # chain jobs name no model
            jobs.append(_job(f"{len(jobs)}", init=init, activation="relu", depth=depth,
                             width=width, trials=3, **extra))
    table = tabulate(jobs)
    assert table.axes == ["model", "init"]
    assert table.values["model"] == ["conv_chain", "simple_cnn", "chain"]
    assert "depth" not in table.fixed and "width" not in table.fixed
    assert list(table.frame["depth"]) == [99, 99, 5, 5, 100, 100]
    md = _markdown(jobs)
    assert "Swept: model (conv_chain, simple_cnn, chain); init (kaiming, torch_default)." in md
    assert "| job | model | init | depth | width | verdict |" in md
