"""The report's Order-to-chaos section on a real 2 x 2 sigma_w2 x sigma_b2 sweep of tanh.

References independent of the report: the jobs' own layers.csv (read here with pandas,
median taken here), a literal Gauss-Hermite fixed-point iteration for chi_1, and
Schoenholz et al. (2017, Fig. 1): at sigma_b2 = 0.05 tanh's edge sits at sigma_w2 ~ 1.76.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import ok, only_child, run_initlab

from initlab.report import phase, phase_section, write_report
from initlab.report.load import find_jobs
from initlab.report.phase_figure import phase_diagram

W2, B2 = (0.5, 3.0), (0.0, 0.1)


@pytest.fixture(scope="module")
def phase_sweep(tmp_path_factory):
    """One tiny real sweep over both knobs, reported in-process; returns the sweep folder."""
    root = tmp_path_factory.mktemp("phase")
    ok(run_initlab(["-m", "init=scaled", "bias=normal", "activation=tanh",
                    "init.sigma_w2=" + ",".join(map(str, W2)),
                    "bias.sigma_b2=" + ",".join(map(str, B2)), "depth=8", "width=32",
                    "trials=2", "batch=2", "input_correlation=0.5", "plots=false",
                    "report=false", "gradients=false", "device=cpu"], cwd=root))
    sweep = only_child(root / "outputs" / "multiruns")
    write_report(sweep)
    return sweep


def files_grid(sweep) -> dict[tuple[float, float], tuple[float, float]]:
    """(sigma_w2, sigma_b2) -> (median corr, theory_corr) at the last layer, from layers.csv."""
    out = {}
    for job in sweep.iterdir():
        if not (job / "layers.csv").exists():
            continue
        s = json.loads((job / "summary.json").read_text())["settings"]
        frame = pd.read_csv(job / "layers.csv")
        last = frame[frame["layer"] == frame["layer"].max()]
        out[(s["init_sigma_w2"], s["bias_sigma_b2"])] = (float(np.median(last["corr"])),
                                                          float(last["theory_corr"].iloc[0]))
    return out


def tanh_chi1(w2: float, b2: float, nodes: int = 80, steps: int = 2000) -> float:
    """chi_1 = w2 E[tanh'(sqrt(q*) z)^2] at the fixed point q* of q -> w2 E[tanh^2] + b2,
    by plain iteration from q = 1 and probabilists' Gauss-Hermite (80 nodes: tanh is
    entire in a strip, the rule's error is far below 1e-10 at q < 5)."""
    z, wt = np.polynomial.hermite_e.hermegauss(nodes)
    wt = wt / wt.sum()
    q = 1.0
    for _ in range(steps):  # contraction rate chi_q < 1 at these points: 2000 steps converge
        q = w2 * float(wt @ np.tanh(np.sqrt(q) * z) ** 2) + b2
    return w2 * float(wt @ (1 - np.tanh(np.sqrt(q) * z) ** 2) ** 2)


def test_section_and_figures_exist(phase_sweep):
    report = phase_sweep / "report"
    assert (report / "phase_diagram.png").stat().st_size > 0
    assert (report / "corr_by_layer.png").stat().st_size > 0  # batch 2: a correlation exists
    md = (report / "report.md").read_text()
    assert "## Order to chaos" in md and "(phase_diagram.png)" in md
    html = (report / "report.html").read_text()
    assert "<h2>Order to chaos</h2>" in html


def test_grid_equals_job_files(phase_sweep):
    grid = phase.build(find_jobs(phase_sweep))
    assert grid.sigma_w2 == list(W2) and grid.sigma_b2 == list(B2)
    ref = files_grid(phase_sweep)
    assert len(ref) == 4
    for (w, b), (meas, theory) in ref.items():
        i, k = grid.sigma_b2.index(b), grid.sigma_w2.index(w)
        # summary.json's median and ours over the same trials' values; the CSV holds them to
        # 17 significant digits (pandas' float repr round-trips): agreement to 1e-12
        assert grid.measured[i, k] == pytest.approx(meas, abs=1e-12)
        assert grid.theory[i, k] == pytest.approx(theory, abs=1e-12)


def test_grid_without_summary_fields_reads_layers(phase_sweep, tmp_path):
    """Older summary.json without final_corr / phase: the layers tables give the same grid."""
    copy = tmp_path / "sweep"
    shutil.copytree(phase_sweep, copy)
    for path in copy.glob("*/summary.json"):
        data = json.loads(path.read_text())
        for key in ("phase", "final_corr", "final_theory_corr"):
            data.pop(key, None)
        path.write_text(json.dumps(data))
    grid = phase.build(find_jobs(copy))
    for (w, b), (meas, theory) in files_grid(copy).items():
        i, k = grid.sigma_b2.index(b), grid.sigma_w2.index(w)
        assert grid.measured[i, k] == pytest.approx(meas, abs=1e-12)  # same values, see above
        assert grid.theory[i, k] == pytest.approx(theory, abs=1e-12)


def test_largest_gap_row_matches_files(phase_sweep):
    ref = files_grid(phase_sweep)
    (w, b), (m, t) = max(ref.items(), key=lambda kv: abs(kv[1][0] - kv[1][1]))
    md = (phase_sweep / "report" / "report.md").read_text()
    row = re.search(r"^\| largest gap at σ_w² \|.*\n\|.*\n\| (.+) \|$", md, re.M).group(1)
    cells = [c.strip() for c in row.split("|")]
    assert (float(cells[0]), float(cells[1])) == (w, b)
    # cells are printed to 3 significant digits: half a unit of the third digit
    for printed, value in zip(cells[2:], (m, t, m - t), strict=True):
        assert float(printed) == pytest.approx(value, rel=5e-3, abs=1e-12)
    median = float(np.median([abs(x - y) for x, y in ref.values()]))
    table = phase_section.section(phase.build(find_jobs(phase_sweep)), {})[1]
    all_cells = next(b for b in table if b.kind == "table").rows[0]
    assert all_cells[0] == "all cells" and int(all_cells[1]) == 4
    assert float(all_cells[2]) == pytest.approx(median, rel=5e-3)  # 3 digits, as above


def test_drawn_edge_is_chi1_equal_one(phase_sweep):
    grid = phase.build(find_jobs(phase_sweep))
    fig = phase_diagram(grid)
    for ax in fig.axes[:2]:  # both panels: the same curve, the data actually plotted
        (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "edge (theory)"]
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        assert len(x) >= 10 and np.all(np.diff(y) > 0)  # the jobs' recorded curve, 48 points
        # over sigma_b2 in [0, 0.3] of which 0..0.1 (the grid's rows) are drawn
        for w, b in zip(x[::9], y[::9], strict=True):
            if b > 0:  # at sigma_b2 = 0 q* = 0: chi_1 = w2 exactly, the curve starts at 1
                # bisection to 45 halvings of a grid step and a 24+ node rule: chi_1 = 1 to
                # far better than 1e-6; the literal rule above is good to 1e-10
                assert tanh_chi1(w, b) == pytest.approx(1.0, abs=1e-6)
        assert x[0] == pytest.approx(1.0, abs=1e-6)  # sigma_b2 = 0: chi_1 = sigma_w2
        # Schoenholz et al. quote 1.76 (three digits, +-0.005); the drawn curve is linear
        # between points 0.3/47 apart, whose curvature error there is below 1e-3
        assert np.interp(0.05, y, x) == pytest.approx(1.76, abs=0.006)
    meshes = [ax.collections[0] for ax in fig.axes[:2]]
    assert meshes[0].norm.vmin == meshes[1].norm.vmin and meshes[0].norm.vmax == 1.0
    assert meshes[1].norm.vmax == 1.0  # one colour scale for measured and theory
    np.testing.assert_array_equal(np.asarray(meshes[0].get_array()).reshape(2, 2),
                                  grid.measured)
    np.testing.assert_array_equal(np.asarray(meshes[1].get_array()).reshape(2, 2),
                                  grid.theory)


def test_no_phase_section_for_other_sweeps(tiny_sweep):
    """init x activation without the two knobs: no figure, no section."""
    assert not phase.applies(find_jobs(tiny_sweep))
    assert not (tiny_sweep / "report" / "phase_diagram.png").exists()
    assert "Order to chaos" not in (tiny_sweep / "report" / "report.md").read_text()


def test_html_gives_phones_the_stacked_figure(phase_sweep):
    report = phase_sweep / "report"
    assert (report / "phase_diagram_narrow.png").stat().st_size > 0
    html = (report / "report.html").read_text()
    picture = re.search(r"<picture><source media=\"\(max-width: 640px\)\" srcset=\"data:image/"
                        r"png;base64,[A-Za-z0-9+/=]+\"><img [^>]+></picture>", html)
    assert picture is not None
    # every figure has a phone layout now: each <img> sits in a <picture>
    assert html.count("<picture>") == html.count("<img ") >= 2


def test_many_settings_draw_named_representatives():
    """16 x 12 grid (the preset's): the by-layer figures draw one sigma_b2 row's ordered,
    edge and chaotic members, and say which."""
    from initlab.report.load import JobRecord
    from initlab.report.tables import Summary
    from initlab.report.write import lines_shown

    w2 = [0.5 + 0.25 * k for k in range(16)]
    b2 = [0.025 * i for i in range(12)]
    from initlab.prediction import edge_curve

    jobs = {(w, b): JobRecord(name=f"{n}_x", path=None, status="ok",
                              summary={"phase": {"edge": edge_curve("tanh", (), b)}})
            for n, (w, b) in enumerate((w, b) for w in w2 for b in b2)}
    nan = np.full((12, 16), np.nan)
    grid = phase.PhaseGrid("tanh", {}, w2, b2, nan, nan, nan, nan, nan, jobs)
    phase.edge(grid, list(jobs.values()))
    table = Summary(jobs=list(jobs.values()), axes=[], values={}, coords={}, fixed={})
    shown, note = lines_shown(table, grid)
    cells = [k for k, j in jobs.items() if any(j is s for s in shown)]
    assert 3 <= len(shown) <= 5 and {b for _, b in cells} == {0.05}
    ws = sorted(w for w, _ in cells)
    assert ws[0] == 0.5 and ws[-1] == 4.25 and 1.75 in ws  # 1.75: the column nearest 1.76
    assert note.startswith(f"{len(shown)} of 192 settings shown: sigma_b2 = 0.05")
    assert "edge is at sigma_w2 = 1.76" in note


def test_extra_jobs_in_a_cell_are_counted(phase_sweep, tmp_path):
    """A second job at the same (sigma_w2, sigma_b2) (here: another seed) does not replace
    the first, and the section says how many jobs the diagram leaves out."""
    copy = tmp_path / "sweep"
    shutil.copytree(phase_sweep, copy)
    first = sorted(p for p in copy.iterdir() if (p / "summary.json").exists())[0]
    extra = copy / ("9_" + first.name.split("_", 1)[1])
    shutil.copytree(first, extra)
    data = json.loads((extra / "summary.json").read_text())
    data["settings"]["seed"] = data["seed"] = 1
    data["final_corr"] = 0.123456  # not the first job's: must not reach the grid
    (extra / "summary.json").write_text(json.dumps(data))
    grid = phase.build(find_jobs(copy))
    assert grid.shared == 1 and 0.123456 not in grid.measured
    blocks = phase_section.section(grid, {})[1]
    assert any("1 jobs are not in the diagram" in b.text for b in blocks)


def test_one_diagram_row_per_activation(phase_sweep, tmp_path):
    """The same grid relabelled relu beside tanh: two rows of panels, a table row set each."""
    copy = tmp_path / "sweep"
    shutil.copytree(phase_sweep, copy)
    for n, job in enumerate(sorted(p for p in copy.iterdir() if (p / "summary.json").exists())):
        twin = copy / f"{10 + n}_scaled_relu_depth8"
        shutil.copytree(job, twin)
        data = json.loads((twin / "summary.json").read_text())
        data["settings"]["activation"] = data["activation"] = "relu"
        (twin / "summary.json").write_text(json.dumps(data))
    jobs = find_jobs(copy)
    assert phase.activations(jobs) == ["tanh", "relu"]
    grids = phase.build_all(jobs)
    assert [g.measured.shape for g in grids] == [(2, 2), (2, 2)]
    np.testing.assert_array_equal(grids[0].measured, grids[1].measured)  # same files
    fig = phase_diagram(grids)
    meshes = [ax for ax in fig.axes if ax.collections and ax.get_title()]
    assert [ax.get_title().split(":")[0] for ax in meshes] == ["tanh"] * 2 + ["relu"] * 2
    tables = [b for b in phase_section.section(grids, {})[1] if b.kind == "table"]
    assert tables[0].header[0] == "activation"
    assert {r[0] for r in tables[0].rows} == {"tanh", "relu"}


def test_a_grid_of_few_lines_a_panel_draws_them_all():
    """The default sweep, 5 schemes x 3 activations: 15 settings but 5 lines a panel, so
    every line is drawn (a cap on the total once emptied the tanh panel); a panel with more
    than MAX_LINES lines gets at most MAX_LINES, and the note says so."""
    from initlab.report.load import JobRecord
    from initlab.report.tables import Summary
    from initlab.report.write import MAX_LINES, lines_shown

    def table_of(inits, acts):
        jobs = [JobRecord(name=f"{n}_x", path=None, status="ok")
                for n in range(len(inits) * len(acts))]
        coords = {j.name: {"init": i, "activation": a}
                  for j, (i, a) in zip(jobs, ((i, a) for i in inits for a in acts), strict=True)}
        return Summary(jobs=jobs, axes=["init", "activation"], values={}, coords=coords,
                       fixed={})

    few = table_of(["zero", "normal", "scaled", "xavier", "kaiming"], ["none", "tanh", "relu"])
    shown, note = lines_shown(few, None)
    assert shown == few.ok and note == ""
    many = table_of([f"s{k}" for k in range(MAX_LINES + 3)], ["tanh", "relu"])
    shown, note = lines_shown(many, None)
    per_panel = {a: sum(many.at(j, "activation") == a for j in shown) for a in ("tanh", "relu")}
    assert per_panel == {"tanh": MAX_LINES, "relu": MAX_LINES}
    assert note.startswith(f"{2 * MAX_LINES} of {2 * (MAX_LINES + 3)} settings shown")
