"""Write ``DIR/report/`` whole: built in ``DIR/.report.tmp-XXXX``, then renamed over it.

A reader never sees a half-made report: the old ``report/`` stays until the
new one is complete, is renamed away, and the new one takes its name. Files
and folders get the modes a plain ``open()``/``mkdir()`` would give under the
current umask.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from matplotlib.figure import Figure

from initlab import interrupts, store
from initlab.report import document, figures, parallel, phase, render, training
from initlab.report.load import JobRecord, ReportError, ReportIOError, find_jobs
from initlab.report.phase_figure import phase_diagram
from initlab.report.tables import Summary, tabulate

REPORT_DIR = "report"
FIGURES = {
    "heatmap": "heatmap.png",
    "heatmap_narrow": "heatmap_narrow.png",  # the HTML's phone view of each figure
    "std": "std_by_layer.png",
    "std_narrow": "std_by_layer_narrow.png",
    "mean": "mean_by_layer.png",
    "mean_narrow": "mean_by_layer_narrow.png",
    "grad": "grad_by_layer.png",
    "grad_narrow": "grad_by_layer_narrow.png",
    "corr": "corr_by_layer.png",
    "corr_narrow": "corr_by_layer_narrow.png",
    "phase": "phase_diagram.png",
    "phase_narrow": "phase_diagram_narrow.png",  # the panels stacked: the HTML's phone view
    "color_dim": "color_dim.png",
    "color_dim_narrow": "color_dim_narrow.png",
}
MAX_LINES = 10  # more lines than this in a panel: the by-layer figures draw a named selection


def lines_shown(table: Summary,
                grids: list[phase.PhaseGrid] | phase.PhaseGrid | None
                ) -> tuple[list[JobRecord], str]:
    """The jobs drawn as lines by layer, and a note naming them when they are a selection:
    for a sigma_w2 x sigma_b2 sweep one sigma_b2 row across the phases (per activation),
    else evenly spaced."""
    ok = table.ok
    grids = [grids] if isinstance(grids, phase.PhaseGrid) else list(grids or [])
    panels: dict[object, list[JobRecord]] = {}  # a panel per activation (figures.by_layer)
    axes = figures.by_layer_panels(table)
    for job in ok:
        panels.setdefault(tuple(table.at(job, a) for a in axes), []).append(job)
    if max((len(p) for p in panels.values()), default=0) <= MAX_LINES:
        return ok, ""
    if grids:
        cells, words = [], []
        for grid in grids:
            b2, w2 = phase.representatives(grid)
            cells += [grid.jobs[(w, b2)] for w in w2 if (w, b2) in grid.jobs]
            e = phase.edge_at(grid, b2)
            edge = f"; the chi_1 = 1 edge is at sigma_w2 = {e:.2f}" if math.isfinite(e) else ""
            who = f"{grid.act_label}: " if len(grids) > 1 else ""
            words.append(f"{who}sigma_b2 = {b2}, sigma_w2 = " + ", ".join(str(w) for w in w2)
                         + f" (ordered to chaotic{edge})")
        return cells, f"{len(cells)} of {len(ok)} settings shown: " + "; ".join(words)
    picked = []
    for jobs in panels.values():  # up to MAX_LINES a panel, evenly spaced in job order
        step = (len(jobs) - 1) / max(1, MAX_LINES - 1)
        picked += [jobs[i] for i in dict.fromkeys(round(n * step)
                                                  for n in range(min(MAX_LINES, len(jobs))))]
    return picked, (f"{len(picked)} of {len(ok)} settings shown (at most {MAX_LINES} a panel), "
                    "evenly spaced in job order: "
                    + ", ".join(j.name.split("_")[0] for j in picked))


def choose_job(table: Summary, name: str | None) -> JobRecord | None:
    """The job for the histogram picture: ``name`` if given, else the first stable one."""
    ok = [j for j in table.ok if (j.path / store.HISTOGRAM_CSV).exists()]
    if name is not None:
        for job in ok:
            if job.name == name or job.name.split("_")[0] == name:
                return job
        raise ReportError(f"--job {name}: not a finished job with a histogram; jobs: "
                          + (", ".join(j.name for j in ok) or "none"))
    stable = [j for j in ok if j.summary.get("verdict") == "stable"]
    return (stable or ok or [None])[0]


def _draw(table: Summary, folder: Path, job: str | None,
          grids: list[phase.PhaseGrid]) -> tuple[dict[str, str], list[str], str]:
    """Draw the figures; returns {key: file}, notes on those not drawn, the lines' note."""
    drawn: dict[str, str] = {}
    notes: list[str] = []
    tasks: list[parallel.Task] = []

    def draw(key: str, make: Callable[[], Figure]) -> None:
        tasks.append((key, make, folder / FIGURES[key]))

    chosen = choose_job(table, job)  # a bad --job fails before anything is drawn
    ok = table.ok
    shown, note = lines_shown(table, grids)
    if len(ok) > 1:
        draw("heatmap", lambda: figures.heatmap(table))
        draw("heatmap_narrow", lambda: figures.heatmap(table, narrow=True))
    if grids:
        draw("phase", lambda: phase_diagram(grids))
        draw("phase_narrow", lambda: phase_diagram(grids, narrow=True))
    if ok:
        for stat in ("std", "mean"):
            draw(stat, lambda s=stat: figures.by_layer(table, s, shown, note))
            draw(f"{stat}_narrow", lambda s=stat: figures.by_layer(table, s, shown, note, True))
    with_corr = [j for j in shown if "corr" in j.layers and (j.settings.get("batch") or 1) >= 2]
    if with_corr:
        draw("corr", lambda: figures.by_layer(table, "corr", with_corr, note))
        draw("corr_narrow", lambda: figures.by_layer(table, "corr", with_corr, note, True))
    with_grads = [j for j in shown if "grad_x_std" in j.layers]
    if with_grads:
        draw("grad", lambda: figures.by_layer(table, "grad_x_std", with_grads, note))
        draw("grad_narrow",
             lambda: figures.by_layer(table, "grad_x_std", with_grads, note, True))
    if chosen is not None:
        draw("color_dim", lambda: figures.color_dim(chosen))
        draw("color_dim_narrow", lambda: figures.color_dim(chosen, narrow=True))
    tasks += training.figure_tasks(table, folder)
    for (key, _, path), error in zip(tasks, parallel.draw_all(tasks), strict=True):
        if error is None:  # one odd figure must not cost the whole report
            drawn[key] = path.name
        else:
            notes.append(f"{path.name} could not be drawn: {error}")
    return drawn, notes, note


def _fill(folder: Path, directory: Path, table: Summary, job: str | None) -> None:
    grids: list[phase.PhaseGrid] = []
    try:
        grids = phase.build_all(table.jobs)
    except Exception as exc:  # the phase section must not cost the whole report
        notes_first = [f"phase diagram could not be built: {type(exc).__name__}: {exc}"]
    else:
        notes_first = []
    drawn, notes, note = _draw(table, folder, job, grids)
    table.frame.to_csv(folder / "summary.csv", index=False)
    title, sections = document.build(table, directory.name, drawn, notes_first + notes,
                                     grids=grids, lines_note=note)
    (folder / "report.md").write_text(render.markdown(title, sections), encoding="utf-8")
    (folder / "report.html").write_text(render.page(title, sections, folder), encoding="utf-8")


def write_report(directory: Path, job: str | None = None) -> Path:
    """Write ``directory/report/`` whole and return it. Raises ReportError (one line) when the
    directory is not a run or sweep, or cannot be written."""
    directory = Path(directory)
    table = tabulate(find_jobs(directory))
    final = directory / REPORT_DIR
    if final.exists() and not final.is_dir():
        raise ReportError(f"{final}: exists and is not a directory; move it to write the report")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{REPORT_DIR}.tmp-", dir=directory))
    except OSError as exc:
        raise ReportIOError(f"{directory}: {exc.strerror or exc}") from None
    mask = store.umask()
    old = None
    try:
        _fill(tmp, directory, table, job)
        interrupts.pause("report")  # tests only: built, not yet in place
        for path in tmp.iterdir():  # as a plain open() and mkdir() would make them
            path.chmod(0o666 & ~mask)
        tmp.chmod(0o777 & ~mask)  # mkdtemp made it 0700
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{REPORT_DIR}.old-", dir=directory))
            os.replace(final, old / REPORT_DIR)
        os.replace(tmp, final)
    except BaseException as exc:
        if old is not None and not final.exists():  # put the old report back where it was
            with contextlib.suppress(OSError):
                os.replace(old / REPORT_DIR, final)
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        if isinstance(exc, OSError):
            raise ReportIOError(f"{exc.filename or directory}: {exc.strerror or exc}") from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final
