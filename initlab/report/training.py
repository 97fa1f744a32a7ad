"""The report's training section, from the files training jobs wrote (no torch, no theory).

A job trained when its directory holds ``train_steps`` (read by ``initlab.figures.train``)
or its summary.json a ``training`` block (verdict, final held-out accuracy and loss over
trials, chance; a chain's ``phase`` with ``xi_c``). The section: final held-out accuracy
over the swept settings, the curves side by side, and for a sweep over ``init.sigma_w2`` x
``depth`` the **trainability diagram** (accuracy per cell, 6 xi_c over it: Schoenholz et al.
2017, a random network trains when depth <~ 6 xi_c) with, per sigma_w2, the deepest depth
that trained against 6 xi_c; for a few configs (fastai's plain / 1cycle / batchnorm) what
each layer's std and share near zero did, in words, beside ``plot_layer_stats`` and
``color_dim``. ``figure_tasks(table, folder)``: the figures (``training_figures``) for the
report's drawing pool; ``section(table, drawn)``: the section.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from initlab.figures import train as T
from initlab.labels import DERIVED, is_number
from initlab.report import training_figures as F
from initlab.report.blocks import Block, Section, table_block
from initlab.report.load import JobRecord
from initlab.report.tables import Summary
from initlab.report.training_figures import Boundary, axis, boundaries, show

W_KEY, DEPTH_KEY, B_KEY = "init_sigma_w2", "depth", "bias_sigma_b2"
#: settings preferred to name a config, in this order (the rest follow, sorted)
PREFERRED = ("model", "init", W_KEY, "activation", "bias", B_KEY, DEPTH_KEY, "width",
             "train_schedule", "model_batchnorm", "train_optimizer", "train_lr", "train_steps",
             "train_batch_size", "trials", "seed")
#: settings that never name a config (where a job ran, not what it ran)
IGNORED = ("device",)
#: configs up to which the section describes each one's layers and draws them side by side
FEW = 6
#: chi_1 this close to 1 is the edge of chaos (xi_c beyond any depth swept)
EDGE_TOL = 1e-3


@lru_cache(maxsize=256)
def _cached(path: str, mtime: int, what: str) -> pd.DataFrame | None:
    reader = {"steps": T.read_steps, "layers": T.read_layers, "hist": T.read_histogram}[what]
    return reader(Path(path))


def read(job: JobRecord, what: str) -> pd.DataFrame | None:
    """``job``'s ``steps``, ``layers`` or ``hist`` file, read once per report (figures and
    words both use it) while the directory is unchanged (files are renamed into it)."""
    return _cached(str(job.path), job.path.stat().st_mtime_ns, what)


@dataclass
class Run:
    """One training job: its settings (flat, as summary.json has them) and training block."""

    job: JobRecord
    settings: dict[str, Any]
    training: dict[str, Any]
    steps: pd.DataFrame | None = None
    problem: str = ""

    @property
    def name(self) -> str:
        return self.job.name

    @property
    def phase(self) -> dict[str, Any]:
        return self.training.get("phase") or self.job.summary.get("phase") or {}

    def theory(self, key: str) -> float:
        """``phase[key]`` (``xi_c``, ``chi_1``): NaN where the summary has none, inf where it
        says null (xi_c at the edge of chaos)."""
        value = self.phase.get(key, math.nan) if isinstance(self.phase, dict) else math.nan
        return math.inf if value is None else float(value) if is_number(value) else math.nan

    @property
    def trained(self) -> bool | None:
        verdict = self.training.get("verdict")
        return None if verdict is None else verdict == "trained"

    def final(self, what: str = "acc", q: str = "") -> float:
        """``final_eval_<what><q>`` from the summary, else the median (q: ``_q10``/``_q90``:
        10 %/90 %) over trials at the last held-out evaluation in train_steps."""
        key, frame, column = f"final_eval_{what}{q}", self.steps, f"eval_{what}"
        if key in self.training:
            return float(self.training[key]) if is_number(self.training[key]) else math.nan
        if frame is None or column not in frame or not frame[column].notna().any():
            return math.nan
        last = frame[frame["step"] == frame.loc[frame[column].notna(), "step"].max()]
        return float(np.nanquantile(last[column].to_numpy(float),
                                    {"": 0.5, "_q10": 0.1, "_q90": 0.9}[q]))


@dataclass
class Trained:
    """The training jobs of a report: what varies between them, and the fewest settings
    that name each one (``naming``)."""

    runs: list[Run]
    varying: list[str] = field(default_factory=list)
    naming: list[str] = field(default_factory=list)

    def value(self, run: Run, key: str) -> Any:
        value = run.settings.get(key)
        others = {type(r.settings.get(key)) for r in self.runs} - {type(None)}
        return False if value is None and others == {bool} else value

    def values(self, key: str) -> list[Any]:
        seen = list({repr(v): v for v in (self.value(r, key) for r in self.runs)}.values())
        numbers = all(is_number(v) for v in seen)
        return sorted(seen) if numbers else seen

    def label(self, run: Run, keys: list[str] | None = None) -> str:
        keys = self.naming if keys is None else keys
        return ", ".join(f"{axis(k).split('.')[-1]}={show(self.value(run, k))}"
                         for k in keys) or run.name


def _order(key: str) -> tuple:
    return (PREFERRED.index(key), "") if key in PREFERRED else (len(PREFERRED), key)


def naming(runs: list[Run], keys: list[str]) -> list[str]:
    """The fewest of ``keys`` that tell the runs apart, picked greedily (most configs told
    apart first, ties in ``PREFERRED`` order), returned in that order."""
    def groups(chosen: list[str]) -> int:
        return len({tuple(repr(r.settings.get(k)) for k in chosen) for r in runs})

    chosen: list[str] = []
    while remaining := [k for k in keys if k not in chosen]:
        best = max(remaining, key=lambda k: (groups([*chosen, k]), -_order(k)[0]))
        if groups([*chosen, best]) <= groups(chosen):
            break
        chosen.append(best)
    return sorted(chosen, key=_order)


def collect(table: Summary) -> Trained | None:
    """The report's training jobs (finished jobs with training files or a training block)."""
    runs = []
    for job in table.ok:
        block = job.summary.get("training")
        if not isinstance(block, dict) and not (job.path and T.has_training(job.path)):
            continue
        raw = job.summary.get("settings")
        run = Run(job, {**job.settings, **(raw if isinstance(raw, dict) else {})},
                  block if isinstance(block, dict) else {})
        try:
            run.steps = read(job, "steps")
        except T.TrainFilesError as exc:
            run.problem = str(exc)
        runs.append(run)
    if not runs:
        return None
    skip = set(IGNORED) | (set(DERIVED) if any(r.settings.get("model", "chain") != "chain"
                                               for r in runs) else set())
    keys = sorted({k for r in runs for k in r.settings} - skip, key=_order)
    varying = [k for k in keys if len({repr(r.settings.get(k)) for r in runs}) > 1]
    return Trained(runs, varying, naming(runs, varying))


@dataclass
class TrainGrid:
    """Held-out accuracy over (depth rows, sigma_w2 columns) for one value of the other
    settings, with each column's xi_c and chi_1 from the jobs' summaries."""

    title: str
    sigma_w2: list[float]
    depths: list[int]
    acc: np.ndarray  # (depths, sigma_w2); NaN: no finished training job
    trained: np.ndarray  # 1 trained, 0 did not, NaN unknown
    xi_c: np.ndarray  # (sigma_w2,): inf at the edge, NaN where no summary says
    chi_1: np.ndarray
    runs: dict[tuple[float, int], Run]
    edge: float = math.nan  # sigma_w2 where chi_1 = 1, where the sweep brackets it

    @property
    def six_xi_c(self) -> np.ndarray:
        return 6 * self.xi_c

    def side(self, k: int) -> str:
        chi = self.chi_1[k]
        if not math.isfinite(chi):
            return "?"
        return "edge" if abs(chi - 1) <= EDGE_TOL else "ordered" if chi < 1 else "chaotic"


def _column(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return finite[0] if finite else math.nan


def _edge(sigma_w2: list[float], chi_1: np.ndarray) -> float:
    """sigma_w2 where chi_1 crosses 1, interpolated in log-log between the swept columns."""
    for k, (w, chi) in enumerate(zip(sigma_w2, chi_1, strict=True)):
        if abs(chi - 1) <= EDGE_TOL:
            return w
        if k and chi_1[k - 1] < 1 < chi:
            a, b = math.log(chi_1[k - 1]), math.log(chi)
            lw = math.log(sigma_w2[k - 1]) + (0 - a) / (b - a) * math.log(w / sigma_w2[k - 1])
            return math.exp(lw)
    return math.nan


def trainability(tr: Trained | None) -> list[TrainGrid]:
    """One grid per value of the other naming settings, for a sweep over init.sigma_w2 and
    depth (of the chain); none otherwise."""
    if tr is None or not {W_KEY, DEPTH_KEY} <= set(tr.varying):
        return []
    runs = [r for r in tr.runs if is_number(r.settings.get(W_KEY))
            and is_number(r.settings.get(DEPTH_KEY))]
    others = [k for k in tr.naming if k not in (W_KEY, DEPTH_KEY)]
    grids = []
    for key in dict.fromkeys(tuple(repr(tr.value(r, k)) for k in others) for r in runs):
        mine = [r for r in runs if tuple(repr(tr.value(r, k)) for k in others) == key]
        w2 = sorted({float(r.settings[W_KEY]) for r in mine})
        depths = sorted({int(r.settings[DEPTH_KEY]) for r in mine})
        if len(w2) < 2 or len(depths) < 2:
            continue
        cells = {(float(r.settings[W_KEY]), int(r.settings[DEPTH_KEY])): r for r in mine}
        acc = np.full((len(depths), len(w2)), np.nan)
        trained = acc.copy()
        for (w, d), r in cells.items():
            acc[depths.index(d), w2.index(w)] = r.final("acc")
            trained[depths.index(d), w2.index(w)] = np.nan if r.trained is None else r.trained
        xi, chi = (np.array([_column([r.theory(key) for (w, _), r in cells.items() if w == x])
                             for x in w2]) for key in ("xi_c", "chi_1"))
        title = tr.label(mine[0], others) if others else ""
        grids.append(TrainGrid(title, w2, depths, acc, trained, xi, chi, cells, _edge(w2, chi)))
    return grids


def _common(tr: Trained, key: str) -> Any:
    values = tr.values(key)
    return values[0] if len(values) == 1 else None


def _steps_text(tr: Trained) -> str:
    steps = _common(tr, "train_steps") or _common(tr, "steps")
    return f"{steps} steps" if steps is not None else "training"


def about(tr: Trained) -> str:
    """What every run shares, short: ``tanh, σ_b² 0.05, width 64, 3 trials; rmsprop lr
    0.001 constant on digits``."""
    chain = (_common(tr, "model") or "chain") == "chain"
    what = {"model": "{}", "activation": "{}", B_KEY: "σ_b² {}", "width": "width {}",
            "trials": "{} trials"}
    how = {"train_optimizer": "{}", "train_lr": "lr {}", "train_schedule": "{}",
           "train_data": "on {}"}
    words = [[f.format(show(v)) for k, f in group.items() if (v := _common(tr, k)) is not None
              and (k != "width" or chain)] for group in (what, how)]
    return "; ".join(w for w in (", ".join(words[0]), " ".join(words[1])) if w)


def _frames(tr: Trained, what: str) -> dict[str, pd.DataFrame]:
    out = {}
    for run in tr.runs:
        try:
            out[run.name] = read(run.job, what)
        except T.TrainFilesError as exc:
            run.problem = run.problem or str(exc)
    return out


def figure_tasks(table: Summary, folder: Path) -> list[tuple[str, Any, Path]]:
    """The section's figures as (key, make the figure, path) for ``initlab.report.parallel``;
    each comes with ``<key>_narrow``, its layout for phones. Files are read here, before
    the drawing processes fork."""
    tr = collect(table)
    if tr is None:
        return []
    makers: dict[str, Any] = {}
    grids = trainability(tr)
    if grids:
        makers["train_trainability"] = lambda n: F.trainability(grids, _steps_text(tr), n,
                                                                about(tr))
    covered = sum(len(g.runs) for g in grids) == len(tr.runs)
    if len(tr.runs) > 1 and not covered:
        makers["train_heatmap"] = lambda n: F.heatmap(tr, n)
    if any(r.steps is not None for r in tr.runs):
        makers["train_curves"] = lambda n: F.curves(tr, n)
    if len(tr.runs) <= FEW:
        frames = {k: v for k, v in _frames(tr, "layers").items() if v is not None}
        hists = {k: v for k, v in _frames(tr, "hist").items() if v is not None and len(v)}
        if frames:
            makers["train_layers"] = lambda n: F.layer_panels(tr, frames, n)
        if hists:
            makers["train_color_dim"] = lambda n: F.color_dims(tr, hists, frames, n)
    return [(key + tail, (lambda m=make, n=bool(tail): m(n)), folder / f"{key}{tail}.png")
            for key, make in makers.items() for tail in ("", "_narrow")]


def _img(drawn: dict[str, str], key: str, text: str) -> list[Block]:
    return [Block("img", image=drawn[key], text=text, narrow=drawn.get(f"{key}_narrow", ""))
            ] if key in drawn else []


def _bound_words(b: Boundary) -> str:
    head = f"σ_w² = {b.sigma_w2:g} ({b.side}, 6 ξ_c = {F.number(b.six_xi_c)}): "
    deep, xi = b.deepest_trained, b.six_xi_c / 6
    done = ("no depth trained" if deep is None else f"trained up to depth {deep}" + (
        f" ({deep / xi:.2g} ξ_c)" if b.side != "edge" and 0 < xi < 1e3 else ""))
    fail = (f", not at {b.shallowest_failed}" if b.shallowest_failed is not None
            else " (every depth swept)" if deep is not None else "")
    odd = "" if b.monotone else " (not monotone in depth)"
    return head + done + fail + odd + (f" — {b.relation}" if b.relation != "?" else "")


def _grid_blocks(grid: TrainGrid, tr: Trained) -> list[Block]:
    found = boundaries(grid)
    edge = (f"; χ₁ = 1 near σ_w² = {grid.edge:.3g}: left of it the ordered phase, right of it "
            "the chaotic one" if math.isfinite(grid.edge) else "")
    intro = (f"{'**' + grid.title + '**: e' if grid.title else 'E'}ach cell is one job, σ_w² "
             f"along x and depth along y; colour and number: held-out accuracy after "
             f"{_steps_text(tr)} (median over trials), with the trials that trained. The white "
             "line is 6 ξ_c at each swept σ_w², ξ_c from the mean-field theory in the jobs' "
             "summaries: Schoenholz et al. (2017) find that a random network trains when its "
             f"depth is below about 6 ξ_c, which diverges at the edge of chaos{edge}.")
    agree = [b for b in found if b.relation == "consistent"]
    judged = [b for b in found if b.relation != "?"]
    verdict = (f"The measured boundary agrees with 6 ξ_c in {len(agree)} of {len(judged)} "
               "columns" + ("" if len(agree) == len(judged) else "; elsewhere: " + ", ".join(
                   f"σ_w² = {b.sigma_w2:g} {b.relation}" for b in judged if b not in agree))
               + ". A depth that failed within 6 ξ_c may train with more steps or another "
               "learning rate: 6 ξ_c bounds how deep the input's information reaches at "
               "initialisation, not what a short run achieves.")
    rows = [[f"{b.sigma_w2:g}", b.side, F.number(b.six_xi_c / 6), F.number(b.six_xi_c),
             show(b.deepest_trained), show(b.shallowest_failed), b.relation] for b in found]
    return [Block("p", text=intro), *(Block("p", text=_bound_words(b) + ".") for b in found),
            Block("p", text=verdict),
        table_block(["σ_w²", "phase", "ξ_c", "6 ξ_c", "deepest trained",
                     "shallowest not trained", "against 6 ξ_c"], rows)]


def _run_words(tr: Trained, run: Run, frame: pd.DataFrame | None) -> str:
    acc = [run.final("acc", q) for q in ("", "_q10", "_q90")]
    text = f"**{tr.label(run)}**: " + (
        f"held-out accuracy {acc[0]:.3f} (10-90 %: {acc[1]:.3f}-{acc[2]:.3f})"
        if math.isfinite(acc[0]) else f"held-out loss {run.final('loss'):.3g}")
    text += f", {run.training.get('verdict', 'no verdict')}"
    if frame is None:
        return text + "."
    stories = [F.layer_story(frame, n) for n in T.default_layers(frame)]
    calm = "" if any("rose and fell" in s for s in stories) else (
        " No layer's std rose and fell by 2x or more.")
    return text + ". First step → last: " + "; ".join(stories) + "." + calm


def section(table: Summary, drawn: dict[str, str]) -> Section:
    """Training: the trainability diagram and its boundary against 6 xi_c, the final
    accuracy, the curves, a table per config, and for a few configs their layers in words."""
    tr = collect(table)
    if tr is None:
        return "Training", []
    runs, trained = tr.runs, sum(bool(r.trained) for r in tr.runs)
    chance = _common(tr, "chance") or runs[0].training.get("chance")
    blocks = [Block("p", text=(
        f"{len(runs)} training job{'s' if len(runs) > 1 else ''} ({about(tr)}; "
        f"{_steps_text(tr)}): {trained} of {len(runs)} trained, i.e. the median trial's "
        "held-out accuracy after the last step reached chance + pass_fraction × (1 − chance)"
        + (f", chance {chance:.3f}" if chance else "") + ". Settings that differ: "
        + (", ".join(axis(k) for k in tr.varying) or "none") + "."))]
    grids = trainability(tr)
    if grids:
        blocks += _img(drawn, "train_trainability", "Trainability: held-out accuracy per "
                       "(σ_w², depth) with 6 ξ_c.")
    for grid in grids:
        blocks += _grid_blocks(grid, tr)
    blocks += _img(drawn, "train_heatmap", "Final held-out accuracy per config.")
    blocks += _img(drawn, "train_curves", "Loss and accuracy by step, a line per config.")
    blocks.append(table_block(["config", "verdict", "trained trials", "held-out accuracy",
                               "10 %", "90 %", "held-out loss"],
                              [[tr.label(r), r.training.get("verdict", "—"),
                                show(r.training.get("trained_trials")), r.final("acc"),
                                r.final("acc", "_q10"), r.final("acc", "_q90"),
                                r.final("loss")] for r in runs]))
    if len(runs) <= FEW:
        frames = _frames(tr, "layers")
        blocks.append(Block("p", text="What each config's layers did (median over trials; "
                                      "first, middle and last layer):"))
        blocks += [Block("p", text=_run_words(tr, r, frames.get(r.name))) for r in runs]
        blocks += _img(drawn, "train_layers", "Mean, std and % near zero by step per config.")
        blocks += _img(drawn, "train_color_dim", "color_dim of each config's layer before "
                       "the output, on one range of |x|.")
    blocks += [Block("p", text=f"{r.name}: {r.problem}") for r in runs if r.problem]
    return "Training", blocks
