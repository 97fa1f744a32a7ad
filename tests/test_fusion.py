"""Shared engine passes: run_many / run_jobs (initlab/job.py) and the fused launcher.

The same-computation properties are exact; fused against separate is not (a
wider matmul may sum in another order) and is bounded by an error argument.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import SWEEP_ACTS, SWEEP_INITS, run_initlab

from initlab import job
from initlab.chain import run_chain, run_many
from initlab.job import Job, plan_passes, run_jobs, total_work
from initlab.spec import ChainSpec
from initlab.verdict import Thresholds

EPS64 = np.finfo(np.float64).eps


def cpu(**kw) -> ChainSpec:
    kw.setdefault("gradients", False)
    return ChainSpec(device="cpu", **kw)


def summary(path) -> dict:
    return json.loads((path / "summary.json").read_text())


@pytest.mark.numerics
def test_fused_pass_equals_separate_runs_within_rounding():
    """Each config of a pass sees the weights and inputs it would see alone.

    Error argument (float64): a config's columns go through the same dot products of
    ``width`` terms whether alone or beside others; only the BLAS blocking may change the
    summation order. Rounding errors of an n-term dot product are ~ sqrt(n) eps |w||x|
    (random rounding, Higham & Mary 2019), and for a Gaussian W, |w||x| ~ sqrt(n) |w.x|:
    per layer the two signals differ by ~ n eps relatively, these add over the layers (the
    chain passes relative perturbations on with gain ~ 1), and both computations err:
    2 * depth * width * eps. A factor 10 covers the tails over the 2 x 11 x 21 trial-layers
    compared: rtol = 20 * depth * width * eps = 2.8e-12. The mean is a cancelling sum: its
    error is bounded on the scale of the rms, not of itself. Gradients go through
    act'(h); tanh' = 1 - tanh(h)^2 is computed from a rounded tanh and amplifies its error
    by cosh(h)^2 (~1e7 for normal/tanh, whose |h| reaches ~8), so that pair's gradients
    are left out (the forward signal, tanh(h), is well conditioned).
    """
    depth, width = 10, 32
    specs = [cpu(init=i, activation=a, width=width, depth=depth, trials=2, batch=2,
                 dtype="float64", gradients=True)
             for i in ("zero", "normal", "scaled", "xavier", "kaiming", "orthogonal", "lsuv",
                       "torch_default")
             for a in ("none", "tanh", "relu")]
    rtol = 20 * depth * width * EPS64
    for spec, fused in zip(specs, run_many(specs), strict=True):
        alone = run_chain(spec)
        label = f"{spec.init}/{spec.activation}"
        for name in ("std", "unit_std", "rms", "abs_max"):
            np.testing.assert_allclose(fused.stats[name], alone.stats[name], rtol=rtol,
                                       atol=0, err_msg=label)
        assert (np.abs(fused.stats["mean"] - alone.stats["mean"])
                <= rtol * alone.stats["rms"]).all(), label
        np.testing.assert_array_equal(fused.stats["finite"], alone.stats["finite"])
        if (spec.init, spec.activation) == ("normal", "tanh"):
            continue
        for name in ("grad_x_std", "grad_w_std"):
            np.testing.assert_allclose(fused.grads[name], alone.grads[name], rtol=rtol,
                                       atol=0, err_msg=f"{label} {name}")


def plans_for(specs, root, **kw) -> list[Job]:
    return [Job(s, Thresholds(), root / f"job{i}", make_plots=False, **kw)
            for i, s in enumerate(specs)]


@pytest.mark.numerics
def test_run_jobs_shares_passes_and_cuts_depth_sweeps(tmp_path):
    """Three schemes x two depths (no gradients) and one other width: two passes, the
    shallower jobs cut from the deeper ones; each job's table is what a run alone gives."""
    specs = [cpu(init=i, activation="tanh", width=16, depth=d, trials=2)
             for i in ("scaled", "xavier", "orthogonal") for d in (6, 3)]
    specs.append(cpu(init="kaiming", activation="relu", width=8, depth=4, trials=2))
    passes = plan_passes(specs)
    assert sorted(len(p.specs) for p in passes) == [1, 3]
    assert all(s.depth != 3 for p in passes for s in p.specs)
    done = []
    plans = plans_for(specs, tmp_path)
    summaries = run_jobs(plans, progress=done.append)
    assert sum(done) == total_work(plans) == 3 * 2 * 7 + 2 * 5
    for plan, written in zip(plans, summaries, strict=True):
        assert written["status"] == "ok" == summary(plan.out_dir)["status"]
        table = pd.read_parquet(plan.out_dir / "layers.parquet")
        alone = run_chain(plan.spec)
        # float32 tables: fused and alone within 2 * depth * width * eps (see above)
        np.testing.assert_allclose(table["std"].to_numpy().reshape(2, -1), alone.stats["std"],
                                   rtol=2 * 6 * 16 * np.finfo(np.float32).eps)


def test_a_depth_sweep_of_one_config_is_exactly_the_separate_runs(tmp_path):
    """One config per pass: the deepest run alone is the same computation as each job's."""
    specs = [cpu(init="scaled", activation="tanh", width=16, depth=d, trials=2) for d in (5, 9)]
    plans = plans_for(specs, tmp_path)
    run_jobs(plans)
    for plan in plans:
        table = pd.read_parquet(plan.out_dir / "layers.parquet")
        np.testing.assert_array_equal(table["std"].to_numpy().reshape(2, -1),
                                      run_chain(plan.spec).stats["std"])


def test_engine_seconds_are_each_jobs_share_of_its_pass(tmp_path):
    specs = [cpu(init=i, activation="relu", width=16, depth=d, trials=2)
             for i in ("scaled", "kaiming") for d in (8, 2)]
    plans = plans_for(specs, tmp_path)
    summaries = run_jobs(plans)
    seconds = [s["seconds"] for s in summaries]
    assert {s["shared_by"] for s in seconds} == {4}
    assert len({s["pass"] for s in seconds}) == 1
    assert all(s["engine"] > 0 and "note" in s for s in seconds)
    # shares add up to the pass (each rounded to 1e-4 s: 4 * 0.5e-4 at most)
    assert abs(sum(s["engine"] for s in seconds) - seconds[0]["pass"]) <= 4 * 0.5e-4 + 0.5e-4
    # proportional to trial-layers: depth 8 (9 layers) against depth 2 (3 layers)
    assert seconds[0]["engine"] == pytest.approx(3 * seconds[1]["engine"], abs=2e-4)
    alone = job.run_job(Job(specs[0], Thresholds(), tmp_path / "alone"))
    assert alone["seconds"]["engine"] > 0 and alone["seconds"]["total"] >= \
        alone["seconds"]["engine"]


def test_a_failing_pass_records_its_jobs_and_the_others_go_on(tmp_path, monkeypatch, caplog):
    from initlab import measure

    real = measure.run_group

    def out_of_memory_for_width_8(group, **kw):
        if group[0].width == 8:
            raise MemoryError("cannot allocate 8 bytes")
        return real(group, **kw)

    monkeypatch.setattr(measure, "run_group", out_of_memory_for_width_8)
    specs = [cpu(init=i, width=w, depth=3, trials=1) for w in (8, 16) for i in ("scaled", "xavier")]
    plans = plans_for(specs, tmp_path)
    summaries = run_jobs(plans)
    assert [s["status"] for s in summaries] == ["failed", "failed", "ok", "ok"]
    for plan in plans[:2]:
        written = summary(plan.out_dir)
        assert written["status"] == "failed"
        assert written["error"] == "MemoryError: cannot allocate 8 bytes"
        assert written["settings"] == plan.spec.describe()
    assert (plans[2].out_dir / "layers.csv").is_file()
    failures = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(failures) == 2 and all("\n" not in r.getMessage() for r in failures)


def test_an_unwritable_job_directory_fails_that_job_only(tmp_path, caplog):
    specs = [cpu(init=i, width=8, depth=2, trials=1) for i in ("scaled", "xavier", "kaiming")]
    plans = plans_for(specs, tmp_path)
    tmp_path.joinpath("job0").write_text("a file in the way\n")  # no directory can go there
    (plans[1].out_dir / "layers.csv").mkdir(parents=True)  # the table cannot be written
    summaries = run_jobs(plans)
    assert [s["status"] for s in summaries] == ["failed", "failed", "ok"]
    assert tmp_path.joinpath("job0").read_text() == "a file in the way\n"
    recorded = summary(plans[1].out_dir)  # recorded where the directory allows
    assert recorded["status"] == "failed" and "(Is a directory)" in recorded["error"]
    assert summary(plans[2].out_dir)["status"] == "ok"
    lines = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(lines) == 2 and "not recorded" in lines[0] and "recorded in" in lines[1]


def test_the_fused_launcher_keeps_hydras_bookkeeping(tiny_sweep):
    """The shared sweep ran under the default (fused) launcher: one pass for six jobs, and
    every job directory as Hydra's run_job makes it."""
    jobs = [p for p in tiny_sweep.iterdir() if (p / "summary.json").is_file()]
    assert len(jobs) == len(SWEEP_INITS) * len(SWEEP_ACTS)
    for path in jobs:
        written = summary(path)
        assert written["status"] == "ok"
        assert written["seconds"]["shared_by"] == len(jobs)
        for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
            assert (path / ".hydra" / name).is_file()
        assert f"init={written['init']}" in (path / ".hydra" / "overrides.yaml").read_text()
        log = (path / "initlab.log").read_text()
        assert f"init={written['init']} activation={written['activation']}" in log


def test_a_fused_sweep_with_a_blocked_job_directory_runs_the_others(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "1_kaiming_relu_depth3").write_text("in the way\n")
    proc = run_initlab(["-m", "init=scaled,kaiming", "activation=relu", "depth=3",
                        "width=8", "trials=1", "plots=false", "report=false",
                        "progress=true", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.splitlines()[-1] == f"initlab: 1 of 2 jobs failed; results: {sweep}"
    assert "sweep:" in proc.stderr and "trial-layer" in proc.stderr  # the bar moved
    assert summary(sweep / "0_scaled_relu_depth3")["status"] == "ok"
    out = proc.stdout + proc.stderr
    lines = [line for line in out.splitlines() if "1_kaiming_relu_depth3" in line]
    assert len(lines) == 1 and "job failed" in lines[0] and "(File exists)" in lines[0], out


def test_progress_bar_modes():
    from initlab.progress import Lines, progress_bar

    assert progress_bar("false", 10, "x") is None
    # pytest's stderr is not a terminal: lines in the log instead of a bar
    assert isinstance(progress_bar("auto", 10, "x"), Lines)
    bar = progress_bar("true", 10, "x")
    try:
        assert bar.total == 10
    finally:
        bar.close()


def test_a_sweep_stopped_between_writing_and_bookkeeping_is_counted_once(tmp_path, monkeypatch,
                                                                         capsys):
    """The fused launcher writes every job's files (run_jobs) before Hydra's bookkeeping
    (.hydra/config.yaml, hydra.yaml). Ctrl-C in between must leave each finished directory
    tied to its planned job: the report counts 4 jobs, 4 ok, not 4 ok plus 4 never started."""
    from conftest import main_in_process

    import hydra_plugins.initlab_launcher.fused_launcher as fused
    from initlab.report import find_jobs

    def interrupted(**kwargs):
        raise KeyboardInterrupt

    # Hydra may import the launcher module afresh: patch the name it binds at import too
    import hydra.core.utils

    monkeypatch.setattr(fused, "run_job", interrupted)
    monkeypatch.setattr(hydra.core.utils, "run_job", interrupted)
    monkeypatch.chdir(tmp_path)
    code, err = main_in_process(["-m", "init=scaled,kaiming", "activation=tanh,relu", "depth=3",
                                 "width=8", "trials=2", "plots=false"], capsys)
    assert code == 130, err
    assert "4 of 4 jobs finished" in err
    (sweep,) = (tmp_path / "outputs" / "multiruns").iterdir()
    jobs = find_jobs(sweep)
    assert len(jobs) == 4 and {j.status for j in jobs} == {"ok"}
    for j in jobs:  # Hydra's own files never came: the early overrides.yaml tied them
        assert not (j.path / ".hydra" / "config.yaml").exists()
