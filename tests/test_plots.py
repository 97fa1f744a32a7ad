"""Per-job figures (initlab/figures/): drawn from files without pyplot, bands against numpy's
quantiles."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

from initlab.chain import run_chain
from initlab.columns import THEORY_STATS
from initlab.figures import job as plots
from initlab.numbers import bands
from initlab.spec import ChainSpec

REPO = Path(__file__).resolve().parents[1]


def test_importing_plots_leaves_the_users_backend_and_pyplot_alone():
    """A notebook user's backend must not switch (the module used to call matplotlib.use)."""
    code = ("import sys, matplotlib; import initlab.figures, initlab.job; "
            "print('matplotlib.pyplot' in sys.modules, matplotlib.get_backend())")
    env = {"MPLBACKEND": "svg", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == ["False", "svg"]


def test_production_code_does_not_look_for_pytest():
    """Behaviour under test must be the behaviour users get."""
    for path in (REPO / "initlab").rglob("*.py"):
        assert "PYTEST_CURRENT_TEST" not in path.read_text(), path


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_every_figure_is_a_png_of_the_set_size(tmp_path):
    _, out = _finished_job(tmp_path, batch=1)
    view = plots.JobView.read(out)
    for draw, name in ((plots.plot_std, plots.STD_PNG), (plots.plot_mean, plots.MEAN_PNG),
                       (plots.plot_grad, plots.GRAD_PNG)):
        path = draw(view, tmp_path / name)
        assert path == tmp_path / name
        width, height = png_size(path)
        # 7 x 4.2 inches at 100 dpi, laid out to fit (constrained layout): 700 x 420 pixels
        assert (width, height) == (700, 420), (name, width, height)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [plots.STD_PNG, plots.MEAN_PNG, plots.GRAD_PNG, "job"])  # no temp file left behind


def test_bands_are_numpys_quantiles_of_the_finite_trials():
    values = np.array([[1.0, 5.0, np.nan],
                       [2.0, np.inf, np.nan],
                       [3.0, 7.0, np.nan],
                       [4.0, -np.inf, np.nan]])
    med, lo, hi = bands(values)
    for layer, finite in enumerate(([1.0, 2.0, 3.0, 4.0], [5.0, 7.0])):
        ref = np.quantile(finite, [0.5, 0.1, 0.9])
        # the same linear interpolation on the same finite values: equal up to an ulp
        np.testing.assert_allclose([med[layer], lo[layer], hi[layer]], ref, rtol=4e-16)
    assert np.isnan([med[2], lo[2], hi[2]]).all()  # every trial overflowed: NaN, no warning


def _finished_job(tmp_path, **settings):
    from initlab.job import Job, run_job
    from initlab.verdict import Thresholds

    spec = ChainSpec(**{"init": "kaiming", "activation": "relu", "width": 16, "depth": 6,
                        "trials": 3, "batch": 2, "device": "cpu", **settings})
    out = tmp_path / "job"
    run_job(Job(spec, Thresholds(), out))
    return spec, out


def test_a_jobs_figures_drawn_from_its_files_show_what_the_engine_computed(tmp_path):
    """initlab-plot draws from layers.parquet + summary.json: the view read back from the
    files must hold the engine's arrays and theory (Parquet keeps float64 exactly)."""
    spec, out = _finished_job(tmp_path)
    result = run_chain(spec)
    read = plots.JobView.read(out)
    assert read.batch == 2 and "init=kaiming" in read.title and "width=16" in read.title
    for name in ("mean", "std", "corr"):
        np.testing.assert_array_equal(read.stats[name], result.stats[name], err_msg=name)
    for name in ("grad_x_std", "grad_w_std"):
        np.testing.assert_array_equal(read.stats[name], result.grads[name], err_msg=name)
    for name in THEORY_STATS:
        np.testing.assert_array_equal(read.curve(name), result.curve(name), err_msg=name)
    drawn = plots.job_figures(out)
    assert [p.name for p in drawn] == [plots.STD_PNG, plots.MEAN_PNG, plots.GRAD_PNG,
                                       plots.CORR_PNG]
    assert all(png_size(p)[0] > 300 for p in drawn)


def test_a_job_without_theory_says_so_instead_of_drawing_a_line(tmp_path):
    _, out = _finished_job(tmp_path, init="constant", gradients=False, batch=1)
    view = plots.JobView.read(out)
    assert np.isnan(view.curve("std")).all()
    assert view.no_theory == "no theory line: none for constant weights or biases (not zero-mean)"
    assert [p.name for p in plots.job_figures(out)] == [plots.STD_PNG, plots.MEAN_PNG]


def test_initlab_plot_draws_every_finished_job_and_names_each_one_it_cannot(tmp_path, capsys):
    from initlab.plotcli import main

    _, good = _finished_job(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "summary.json").write_text('{"status": "failed", "error": "x"}')
    why = f"{broken}: the job did not finish (status 'failed'); nothing to draw"
    assert main([str(tmp_path)]) == 0  # neither is a job dir itself: the sweep's jobs
    assert plots.job_dirs(tmp_path) == [broken, good]
    assert capsys.readouterr().err.splitlines() == [f"initlab-plot: skipped {why}"]
    assert main([str(good), str(broken)]) == 1  # named by the user: an error
    assert capsys.readouterr().err.splitlines() == [f"initlab-plot: error: {why}"]
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "no job directory" in capsys.readouterr().err
