"""The report's training section (initlab.report.training), from synthetic sweeps with known
numbers (tests/training_jobs.py): heatmap cells, the 6 xi_c curve, the boundary paragraph,
the fastai words, the narrow variants and their text sizes, and no torch on the way."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, clean_env
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import QuadMesh
from matplotlib.image import AxesImage
from matplotlib.patches import StepPatch
from matplotlib.text import Text
from training_jobs import ACC, DEPTHS, PHASES, chain_settings, trainability_sweep, write_job

from initlab.figures.style import DPI
from initlab.report import parallel, render, training
from initlab.report.load import find_jobs
from initlab.report.tables import tabulate

#: CSS px a figure gets: a 390-px phone's column (12-px padding each side), a 1200-px
#: desktop's (body max-width 1100 px less the padding)
PHONE, DESKTOP = 366, 1076
#: the smallest text we call readable, in CSS px
READABLE = 9.0


def table_of(path):
    table = tabulate(find_jobs(path))
    assert all(j.ok for j in table.jobs), [(j.name, j.problem) for j in table.jobs]
    return table


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return table_of(trainability_sweep(tmp_path_factory.mktemp("trainability")))


@pytest.fixture(scope="module")
def fastai(tmp_path_factory):
    """plain, 1cycle, 1cycle + batchnorm; the 1cycle one's layer 3 std rises 4x and falls."""
    root = tmp_path_factory.mktemp("fastai")
    wave = {0: 1.0, 10: 4.0, 20: 1.0, 30: 1.0, 40: 1.0}
    for n, (schedule, bn, acc) in enumerate([("constant", None, 0.97),
                                             ("one_cycle", None, 0.98),
                                             ("one_cycle", True, 0.99)]):
        settings = {"model": "simple_cnn", "init": "kaiming", "activation": "relu",
                    "depth": 5, "train_schedule": schedule,
                    **({"model_batchnorm": True} if bn else {})}
        std = (lambda t, s, layer: wave[s] if layer == 3 else 1.0) if n == 1 else None
        write_job(root / f"{n}_kaiming_relu", settings, acc=acc, layers=6, std=std,
                  types=["input", *["Conv2d"] * 5])
    return table_of(root)


@pytest.fixture(scope="module")
def five(tmp_path_factory):
    """Five learning rates of one chain: the small multiples wrap to a second row."""
    root = tmp_path_factory.mktemp("five")
    for n, lr in enumerate((1e-4, 3e-4, 1e-3, 3e-3, 1e-2)):
        write_job(root / f"{n}_lr", {**chain_settings(1.0, 4), "train_lr": lr}, acc=0.6 + n / 20)
    return table_of(root)


def draw(table, tmp_path):
    tasks = training.figure_tasks(table, tmp_path)
    errors = parallel.draw_all(tasks, workers=1)
    assert errors == [None] * len(tasks), errors
    return {key: path.name for key, _, path in tasks}, tasks


def test_the_trainability_grid_equals_the_summaries(sweep):
    tr = training.collect(sweep)
    (grid,) = training.trainability(tr)
    assert grid.sigma_w2 == sorted(PHASES) and grid.depths == list(DEPTHS)
    for (w, d), acc in ACC.items():
        assert grid.acc[grid.depths.index(d), grid.sigma_w2.index(w)] == acc
    six = [6 * xi if xi is not None else np.inf for xi, _ in PHASES.values()]
    assert list(grid.six_xi_c) == six
    assert grid.edge == 1.76 and [grid.side(k) for k in range(3)] == ["ordered", "edge",
                                                                     "chaotic"]


def test_the_diagram_draws_the_cells_and_6_xi_c_from_the_files(sweep):
    tr = training.collect(sweep)
    grids = training.trainability(tr)
    fig = training.F.trainability(grids, "40 steps")
    ax = fig.axes[0]
    mesh = [c for c in ax.collections if isinstance(c, QuadMesh)][0]
    np.testing.assert_array_equal(np.asarray(mesh.get_array()).reshape(3, 3),
                                  [[ACC[(w, d)] for w in sorted(PHASES)] for d in DEPTHS])
    curve = [ln for ln in ax.lines if ln.get_label().startswith("6 $\\xi_c$")][0]
    assert list(curve.get_xdata()) == [0.5, 3.0]  # the edge's 6 xi_c is infinite
    assert list(curve.get_ydata()) == [6 * 1.5, 6 * 2.0]
    assert "∞ at 1.76" in curve.get_label()
    top = ax.get_ylim()[1]
    marker = [ln for ln in ax.lines if ln.get_marker() == "^"][0]
    assert list(marker.get_xdata()) == [1.76] and list(marker.get_ydata()) == [top]
    stairs = [p for p in ax.patches if isinstance(p, StepPatch)][0]
    edge_8_16 = np.sqrt(8 * 16)  # the cell edge above depth 8 on the log axis
    np.testing.assert_allclose(stairs.get_data().values, [edge_8_16, edge_8_16, top])
    words = [t.get_text() for t in ax.texts]
    assert "← ordered" in words and "chaotic →" in words


def test_the_boundary_paragraph_says_where_it_lies_in_numbers(sweep):
    title, blocks = training.section(sweep, {})
    text = "\n".join(b.text for b in blocks if b.kind == "p")
    assert title == "Training"
    assert ("σ_w² = 0.5 (ordered, 6 ξ_c = 9): trained up to depth 8 (5.3 ξ_c), not at 16 — "
            "consistent.") in text
    assert ("σ_w² = 1.76 (edge, 6 ξ_c = ∞): trained up to depth 8, not at 16 — failed within "
            "6 ξ_c.") in text
    assert ("σ_w² = 3 (chaotic, 6 ξ_c = 12): trained up to depth 16 (8 ξ_c) (every depth "
            "swept) — trained beyond 6 ξ_c.") in text
    assert "agrees with 6 ξ_c in 1 of 3 columns" in text
    assert "χ₁ = 1 near σ_w² = 1.76" in text
    table = [b for b in blocks if b.kind == "table" and "6 ξ_c" in b.header][0]
    assert table.rows[0] == ["0.5", "ordered", "1.5", "9", "8", "16", "consistent"]
    assert table.rows[1][:4] == ["1.76", "edge", "∞", "∞"]


def test_a_heatmap_cell_is_each_summarys_accuracy(tmp_path):
    accs = {}
    for n, (act, w2) in enumerate([(a, w) for a in ("tanh", "relu") for w in (1.0, 2.0)]):
        accs[(act, w2)] = 0.5 + 0.1 * n
        write_job(tmp_path / f"{n}_scaled_{act}", chain_settings(w2, 4, act), acc=0.5 + 0.1 * n)
    table = table_of(tmp_path)
    tr = training.collect(table)
    assert tr.naming == ["init_sigma_w2", "activation"]
    assert training.trainability(tr) == []
    fig = training.F.heatmap(tr)
    image = [i for i in fig.axes[0].images if isinstance(i, AxesImage)][0]
    rows = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    cols = [float(t.get_text()) for t in fig.axes[0].get_xticklabels()]
    grid = np.asarray(image.get_array())
    for (act, w2), acc in accs.items():
        assert grid[rows.index(act), cols.index(w2)] == pytest.approx(acc)


def test_the_fastai_sweep_is_described_in_words(fastai, tmp_path):
    tr = training.collect(fastai)
    assert tr.naming == ["train_schedule", "model_batchnorm"]
    assert [tr.label(r) for r in tr.runs] == [
        "schedule=constant, batchnorm=False", "schedule=one_cycle, batchnorm=False",
        "schedule=one_cycle, batchnorm=True"]
    drawn, _ = draw(fastai, tmp_path)
    assert {"train_heatmap", "train_curves", "train_layers", "train_color_dim"} <= set(drawn)
    _, blocks = training.section(fastai, drawn)
    words = [b.text for b in blocks if b.kind == "p" and b.text.startswith("**schedule")]
    assert len(words) == 3
    assert words[0].startswith("**schedule=constant, batchnorm=False**: held-out accuracy "
                               "0.970 (10-90 %: 0.960-0.980), trained")
    # layer 1's std: median over the two trials of 1.1 + step/100 + trial/1000
    assert "layer 1 (Conv2d m1): std 1.1 → 1.5 (highest 1.5 at step 40)" in words[0]
    assert "near zero 2.1 % → 2.1 %" in words[0]
    assert "No layer's std rose and fell by 2x or more." in words[0]
    assert ("layer 3 (Conv2d m3): std 1 → 1 (highest 4 at step 10), near zero 2.3 % → 2.3 %; "
            "its std rose and fell by 2x or more 1 time, first 1 (step 0) → 4 (10) → 1 (20)"
            ) in words[1]


def test_every_figure_has_a_narrow_variant_that_the_page_serves_phones(fastai, tmp_path):
    drawn, tasks = draw(fastai, tmp_path)
    wide = [k for k in drawn if not k.endswith("_narrow")]
    assert wide and all(f"{k}_narrow" in drawn for k in wide)
    _, blocks = training.section(fastai, drawn)
    images = [b for b in blocks if b.kind == "img"]
    assert {b.image for b in images} == {drawn[k] for k in wide}
    assert all(b.narrow == drawn[f"{k}_narrow"] for b in images for k in wide
               if b.image == drawn[k])
    html = render.page("t", [("Training", blocks)], tmp_path)
    assert html.count("<picture>") == len(images)


def rendered_px(fig, display: float) -> float:
    """The smallest text of ``fig`` in CSS px when the PNG is shown ``display`` px wide (or
    at its own width, when narrower)."""
    FigureCanvasAgg(fig).draw()
    scale = min(1.0, display / (fig.get_figwidth() * DPI))
    sizes = [t.get_fontsize() for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip()]
    return min(sizes) / 72 * DPI * scale


@pytest.mark.parametrize("which", ["sweep", "fastai", "five"])
def test_text_is_readable_on_a_phone_and_a_desktop(which, request, tmp_path):
    table = request.getfixturevalue(which)
    tasks = training.figure_tasks(table, tmp_path)
    assert tasks
    for key, make, _ in tasks:
        fig = make()
        narrow = key.endswith("_narrow")
        if narrow:
            assert fig.get_figwidth() <= 5.0, key
        px = rendered_px(fig, PHONE if narrow else DESKTOP)
        assert px >= READABLE, (key, px)


def test_a_single_run_gets_curves_and_words_but_no_heatmap(tmp_path):
    job = write_job(tmp_path / "run", chain_settings(1.0, 4), acc=0.8)
    table = table_of(job)
    drawn, _ = draw(table, tmp_path / "report")
    assert "train_curves" in drawn and "train_heatmap" not in drawn
    _, blocks = training.section(table, drawn)
    assert any(b.text.startswith("**") and "held-out accuracy 0.800" in b.text for b in blocks)


def test_no_training_no_section(tmp_path):
    write_job(tmp_path / "0_a", chain_settings(1.0, 4))
    (tmp_path / "0_a" / "train_steps.csv").unlink()
    (tmp_path / "0_a" / "train_steps.parquet").unlink()
    summary = (tmp_path / "0_a" / "summary.json")
    summary.write_text(summary.read_text().replace('"training"', '"not_training"'))
    table = table_of(tmp_path)
    assert training.section(table, {})[1] == [] and training.figure_tasks(table, tmp_path) == []


def test_swings_find_rises_and_falls_of_2x():
    assert training.F.swings(np.array([1, 1.5, 2.5, 3, 1.2, 1.4, 3, 0.5, 0.6])) == [
        (0, 3, 4), (4, 6, 7)]
    assert training.F.swings(np.array([1, 1.9, 1.0, 1.9, 1.0])) == []
    assert training.F.swings(np.array([1, 2, 4, 8, 16])) == []  # grew, never crashed


def test_the_report_path_never_loads_torch(sweep, tmp_path):
    """In a fresh process: collect, draw and describe a training sweep; torch, the theory and
    the trainer were never imported."""
    directory = sweep.jobs[0].path.parent
    code = ("import sys; from pathlib import Path\n"
            "from initlab.report import parallel, training\n"
            "from initlab.report.load import find_jobs\n"
            "from initlab.report.tables import tabulate\n"
            f"table = tabulate(find_jobs(Path({str(directory)!r})))\n"
            f"tasks = training.figure_tasks(table, Path({str(tmp_path)!r}))\n"
            "assert parallel.draw_all(tasks, workers=1) == [None] * len(tasks)\n"
            "assert training.section(table, {k: p.name for k, _, p in tasks})[1]\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or "
            "m.startswith(('initlab.theory', 'initlab.train', 'initlab.prediction'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=clean_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout[:500]
    assert (tmp_path / "train_trainability.png").is_file()
