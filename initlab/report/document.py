"""The report as a document: a title and sections of blocks, one builder per section.

Renderers (``render``) turn it into Markdown or HTML; nothing here reads files
other than through the loaded jobs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from initlab.reference import final_layer, judge
from initlab.report import phase
from initlab.report.figures import verdict_text
from initlab.report.settings import label
from initlab.report.tables import Summary, counts, grid_layout, in_panel, panel_keys, panel_title
from initlab.summary import fmt

CAPTIONS = {
    "heatmap": "log10 of the final std over the swept grid; cells name the verdict.",
    "std": "std of the signal by layer, median over trials with the 10-90 % band.",
    "mean": "mean of the signal by layer, same layout.",
    "corr": "Correlation between the pre-activations of two inputs by layer, same layout.",
    "phase": "Order to chaos: final correlation of two inputs over (sigma_w2, sigma_b2), "
             "measured (left) and theory (right), with the chi_1 = 1 edge.",
    "grad": "Backward pass: std of the gradient dL/dx_l of the loss <g, x_L>, g ~ N(0, I), "
            "from the output (right) to the input (left).",
    "color_dim": "Histogram of |x| by layer for one job (fastai's colour_dim over depth): "
                 "how the whole distribution moves, not just its std.",
}
JOB_COLUMNS = ("verdict", "verdict_layer", "final_std", "final_std_q10", "final_std_q90",
               "theory_final_std", "final_mean", "input_grad_std", "theory_input_grad_std")


@dataclass
class Block:
    kind: str  # "p", "table", "img"
    text: str = ""
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    image: str = ""
    narrow: str = ""  # the same figure laid out for a narrow screen (HTML only), if any


Section = tuple[str, list[Block]]


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else fmt(value, digits=3)


def table_block(header: list[str], rows: list[list[Any]]) -> Block:
    return Block("table", header=header, rows=[[_cell(c) for c in r] for r in rows])


def _verdicts(table: Summary, jobs) -> str:
    return "; ".join(verdict_text(j.summary) for j in jobs) or "—"


def intro(table: Summary, name: str) -> Section:
    jobs = table.jobs
    lines = [f"{len(jobs)} job{'s' if len(jobs) != 1 else ''}: "
             + ", ".join(f"{n} {s}" for s, n in counts(jobs).items())]
    waiting = [j for j in jobs if j.status in ("unfinished", "never started")]
    if waiting:
        lines.append(f"{len(waiting)} of the {len(jobs)} jobs the sweep planned did not finish "
                     "(listed under Problems).")
    if table.axes:
        lines.append("Swept: " + "; ".join(
            f"{a} ({', '.join(str(v) for v in table.values[a])})" for a in table.axes) + ".")
    if table.fixed:
        lines.append("Fixed: " + ", ".join(f"{k}={v}" for k, v in table.fixed.items()) + ".")
    lines.append("Verdict per job: the most common over its trials — exploded (non-finite or "
                 "std above the threshold) or vanished (all zeros or std below it) at the "
                 "layer given, else stable. Final values are medians over trials at the last "
                 "layer.")
    return "", [Block("p", text=t) for t in lines]


def verdicts(table: Summary) -> Section:
    """A grid for two or more axes (a panel per value of the rest), a list for one, else jobs."""
    ok = table.ok
    if not table.axes:
        return "Verdicts", [table_block(["job", "verdict"],
                                        [[j.name, verdict_text(j.summary)] for j in ok])]
    rows, cols, panels = grid_layout(table.axes)
    if cols is None:
        body = [[str(v), _verdicts(table, [j for j in ok if table.at(j, rows) == v])]
                for v in table.values[rows]]
        return "Verdicts", [table_block([rows, "verdict"], body)]
    blocks = []
    for key in panel_keys(table, panels):
        sel = [j for j in ok if in_panel(table, j, panels, key)]
        body = [[str(r)] + [_verdicts(table, [j for j in sel if table.at(j, rows) == r
                                              and table.at(j, cols) == c])
                            for c in table.values[cols]]
                for r in table.values[rows]]
        if panels:
            blocks.append(Block("p", text=f"**{panel_title(panels, key)}**"))
        blocks.append(table_block([f"{rows} \\ {cols}"] + [str(c) for c in table.values[cols]],
                                  body))
    return "Verdicts", blocks


def figures(drawn: dict[str, str], lines_note: str = "") -> Section:
    by_layer = ("std", "mean", "corr", "grad")
    return "Figures", [Block("img", image=drawn[k], text=CAPTIONS[k] + (
        f" {lines_note}." if lines_note and k in by_layer else ""))
        for k in ("heatmap", "std", "mean", "corr", "grad", "color_dim") if k in drawn]


def _f(value: float, digits: int = 3) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def order_to_chaos(grid: phase.PhaseGrid | None, drawn: dict[str, str]) -> Section:
    """The phase figure, what it shows in words, and the measured-vs-theory gap table."""
    if grid is None:
        return "Order to chaos", []
    g = phase.gaps(grid)
    b_ref, _ = phase.representatives(grid)
    e = phase.edge_at(grid, b_ref)
    depth = f"layer {grid.depth}" if grid.depth else "the last layer"
    c0 = f", which start at c0 = {grid.c0}" if grid.c0 is not None else ""
    width = f"width {grid.width}" if grid.width else "finite width"
    text = [
        f"Each cell is one job: σ_w² (weight variance × fan_in) along x, σ_b² (bias variance) "
        f"along y. The colour is the correlation between two inputs' pre-activations at {depth}"
        f"{c0}: yellow means the network has merged them into one, dark that it has "
        "decorrelated them.",
        ("Left of the white curve" if np.isfinite(grid.edge_w2).any() else "Where χ₁ < 1")
        + " lies the ordered phase (χ₁ < 1): the correlation is driven to 1 and the network "
        "forgets which input it saw. "
        + ("Right of it" if np.isfinite(grid.edge_w2).any() else "Where χ₁ > 1")
        + " lies the chaotic phase (χ₁ > 1): the correlation falls to a fixed point c* < 1.",
    ]
    if np.isfinite(grid.edge_w2).any():
        text.append(
            "The curve is the edge of chaos, χ₁ = 1, computed by the mean-field theory for "
            f"{grid.activation}: there correlations converge slowest, so information about the "
            "input travels deepest" + (f"; at σ_b² = {b_ref} it sits at σ_w² = {e:.2f}."
                                       if math.isfinite(e) else "."))
    else:
        text.append(f"The mean-field theory for {grid.activation} draws no χ₁ = 1 edge here "
                    f"({grid.edge_note or 'none found'}); the phases are told apart by each "
                    "job's χ₁ in its summary.json.")
    if g["cells"]:
        x, y, m, t = g["at"]
        text.append(
            f"The left panel is measured at {width} (median over {grid.trials} trials), the "
            f"right one is the infinite-width theory: over {g['cells']} cells the median "
            f"|measured − theory| is {_f(g['median'])}, and the largest gap, "
            f"{g['largest']:+.3f}, is at σ_w² = {x}, σ_b² = {y} (measured {m:.3f}, theory "
            f"{t:.3f}, circled in red).")
        ch = g["phases"].get("chaotic")
        se = g["beyond_3se"]
        if ch and se:
            verdict = ("so at this trial count the gaps are what trial-to-trial scatter gives"
                       if se[0] == 0 else "more than trial scatter explains")
            text.append(
                f"Finite width shows as scatter: in the chaotic phase one chain's final "
                f"correlation varies by {_f(ch[3], 2)} (median sd over trials) around the "
                f"theory, while the median of the trials sits close to it (median gap "
                f"{ch[1]:+.3f} there). {se[0]} of {se[1]} cells differ from the theory by more "
                f"than 3 standard errors of their median, {verdict}. In the ordered phase "
                "both are 1.")
    zero = [i for i, b in enumerate(grid.sigma_b2) if b == 0]
    ordered = phase.phase_sides(grid)[zero[0]] == "ordered" if zero else None
    if zero and ordered.any() and np.nanmin(grid.theory[zero[0]][ordered]) < 0.9:
        low = float(np.nanmin(grid.theory[zero[0]][ordered]))
        text.append(f"On the σ_b² = 0 row the ordered side stays below 1 at this depth (theory "
                    f"down to {low:.2f}): without a bias the signal itself vanishes (q* = 0) "
                    "and the correlation approaches 1 only marginally (χ_c = 1), not "
                    "exponentially.")
    if grid.shared:
        text.append(f"Other settings vary too: each cell shows the first job of its "
                    f"(σ_w², σ_b²) in job order; {grid.shared} jobs are not in the diagram.")
    rows = [["all cells", g["cells"], g["median"], g["median_signed"]]]
    for name, label_ in (("ordered", "ordered (χ₁ < 1)"), ("chaotic", "chaotic (χ₁ > 1)")):
        if name in g["phases"]:
            n, signed, absolute, _ = g["phases"][name]
            rows.append([label_, n, absolute, signed])
    blocks = []
    if "phase" in drawn:
        blocks.append(Block("img", image=drawn["phase"], text=CAPTIONS["phase"],
                            narrow=drawn.get("phase_narrow", "")))
    blocks += [Block("p", text=t) for t in text]
    blocks.append(table_block(["cells", "count", "median abs(measured − theory)",
                               "median (measured − theory)"], rows))
    if g["at"] is not None:
        x, y, m, t = g["at"]
        blocks.append(table_block(["largest gap at σ_w²", "σ_b²", "measured", "theory", "gap"],
                                  [[str(x), str(y), m, t, g["largest"]]]))
    return "Order to chaos", blocks


def seed_table(table: Summary) -> Section:
    """Seed says / measured: each reference number judged against the job's trials."""
    rows = []
    for job in table.ok:
        ref = job.summary.get("reference")
        if not ref:
            continue
        final = final_layer(job.layers)
        for row in ref["rows"]:
            seed = row.get("seed")
            ok, rule = judge(row["quantity"], float("nan") if seed is None else seed, final)
            mark = {True: "✓ pass", False: "✗ fail", None: "—"}[ok]
            rows.append([str(ref.get("source", job.name)), label(job.settings, "init"),
                         label(job.settings, "activation"), row["quantity"], seed,
                         row.get("measured"), rule, mark])
    if not rows:
        return "Seed says / measured", []
    return "Seed says / measured", [
        Block("p", text="The seed reports single runs; a row passes when its number is a "
                        "plausible draw from our trials (rule in the row)."),
        table_block(["source", "init", "activation", "quantity", "seed says", "measured", "rule",
                     "result"], rows)]


def jobs_table(table: Summary) -> Section:
    frame = table.frame
    cols = [c for c in ["job", *table.axes, *JOB_COLUMNS] if c in frame.columns]
    shown = frame[cols].astype(object).where(frame[cols].notna(), None)
    if "verdict_layer" in shown:
        shown["verdict_layer"] = ["—" if v is None else str(int(v))
                                  for v in shown["verdict_layer"]]
    return "Jobs", [
        Block("p", text="final_std is measured (median and 10-90 % of trials), theory_final_std "
                        "the mean-field prediction; input_grad_std the std of dL/dx_0 beside its "
                        "prediction. All columns: summary.csv."),
        table_block(cols, shown.values.tolist())]


def symmetry(table: Summary) -> Section:
    same = [j.name for j in table.ok if j.summary.get("identical_units_layer") is not None]
    if not same:
        return "Symmetry not broken", []
    return "Symmetry not broken", [Block("p", text=(
        "In " + ", ".join(same) + " every unit of a layer carries the same value from "
        "layer 1 on (std over units exactly 0, mean not 0): with all weights equal, no "
        "unit can ever differ from another — the symmetry problem."))]


def fluctuation(table: Summary) -> Section:
    keys = ("log_norm_ratio_mean", "predicted_log_norm_ratio_mean", "log_norm_ratio_var",
            "predicted_log_norm_ratio_var")
    fluct = [j for j in table.ok if all(j.summary.get(k) is not None for k in keys)]
    if not fluct:
        return "Finite-width fluctuation", []
    rows = [[j.name, label(j.settings, "init"), label(j.settings, "activation"),
             *(j.summary[k] for k in keys)] for j in fluct]
    return "Finite-width fluctuation", [
        Block("p", text="ln(|x_L|^2 / |x_0|^2) over trials, measured beside Hanin & Rolnick "
                        "(2018): variance 5 beta for He-initialised ReLU, 2 beta for "
                        "Gaussian linear layers, beta = depth / width."),
        table_block(["job", "init", "activation", "mean", "predicted mean", "variance",
                     "predicted variance"], rows)]


def problems(table: Summary) -> Section:
    rows = [[j.name, j.status, j.problem] for j in table.jobs if not j.ok]
    return "Problems", [table_block(["job", "status", "why"], rows)] if rows else []


def build(table: Summary, name: str, drawn: dict[str, str], notes: list[str],
          grid: phase.PhaseGrid | None = None,
          lines_note: str = "") -> tuple[str, list[Section]]:
    """Title and non-empty sections, in reading order."""
    sections = [intro(table, name)]
    if table.ok:
        sections.append(verdicts(table))
    sections += [order_to_chaos(grid, drawn), figures(drawn, lines_note), seed_table(table),
                 jobs_table(table), symmetry(table), fluctuation(table), problems(table),
                 ("Figures not drawn", [Block("p", text=n) for n in notes])]
    return f"initlab report: {name}", [s for s in sections if s[1]]
