"""The report as a document: a title and sections of blocks, one builder per section.

Renderers (``render``) turn it into Markdown or HTML; nothing here reads files
other than through the loaded jobs.
"""

from __future__ import annotations

from initlab.labels import label
from initlab.report import phase, phase_section, training
from initlab.report.blocks import Block, Section, table_block
from initlab.report.figures import grad_text, verdict_text
from initlab.report.judge import final_layer, judge
from initlab.report.tables import Summary, counts, grid_layout, in_panel, panel_keys, panel_title

CAPTIONS = {
    "heatmap": "log10 of the final std over the swept grid (median over trials): blue "
               "shrank, red grew; a std that overflowed (non-finite) or is exactly 0 has a "
               "hatched colour of its own beyond either end of the scale. Cells name the "
               "verdict, or on a large grid the final std.",
    "std": "std of the signal by layer, median over trials with the 10-90 % band.",
    "mean": "mean of the signal by layer, same layout.",
    "corr": "Correlation between the pre-activations of two inputs by layer, same layout.",
    "grad": "Backward pass: std of the gradient dL/dx_l of the loss <g, x_L>, g ~ N(0, I), "
            "from the output (right) to the input (left).",
    "color_dim": "Histogram of |x| by layer for one job (fastai's colour_dim over depth): "
                 "how the whole distribution moves, not just its std.",
}
JOB_COLUMNS = ("verdict", "verdict_layer", "grad_verdict", "grad_verdict_layer", "final_std",
               "final_std_q10", "final_std_q90", "theory_final_std", "final_mean",
               "grad_ratio", "theory_grad_ratio", "final_corr", "final_theory_corr")


def _verdicts(table: Summary, jobs) -> str:
    """Each job's forward verdict and its gradient's: ``stable, grad exploded @91``."""
    return "; ".join(f"{verdict_text(j.summary)}, {grad_text(j.summary)}" for j in jobs) or "—"


def _critical_choices(table: Summary) -> list[str]:
    """What ``init=critical`` picked per activation: σ_w², σ_b² and χ₁ from the summaries."""
    out: dict[str, str] = {}
    for job in table.ok:
        phase = job.summary.get("phase") or {}
        if job.settings.get("init") == "critical" and phase.get("sigma_w2") is not None:
            out.setdefault(str(job.settings.get("activation")), (
                f"σ_w² = {phase['sigma_w2']:.4g}, σ_b² = {phase['sigma_b2']:.3g} (χ₁ = "
                f"{phase['chi_1']:.4g}) for {job.settings.get('activation')}"))
    return list(out.values())


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
    chose = _critical_choices(table)
    if chose:
        lines.append("init=critical chose " + "; ".join(chose) + ".")
    lines.append("Verdicts per job, each the most common over its trials. Forward: the signal "
                 "exploded (non-finite or std above the threshold) or vanished (all zeros or "
                 "std below it) at the layer given, else stable. Gradient (grad): going back "
                 "from the output, dL/dx grew past the threshold times the output gradient's "
                 "std (or became non-finite) or shrank below it, at the first layer where it "
                 "did, else stable; \"not recorded\" for jobs written before gradient verdicts, "
                 "\"off\" without a backward pass. Final values are medians over trials at the "
                 "last layer.")
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
    keys = panel_keys(table, panels)
    if len(keys) * len(table.values[rows]) * len(table.values[cols]) > MAX_GRID:
        return "Verdicts", _exceptions(table, rows, cols, panels)
    blocks = []
    for key in keys:
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


#: More cells than this: the verdict grid is told as its most common verdict and a table
#: of the jobs that differ from it (a 16 x 12 phase sweep would print "stable" 191 times).
MAX_GRID = 48


def _exceptions(table: Summary, rows: str, cols: str, panels: list[str]) -> list[Block]:
    ok = table.ok
    said = {j.name: _verdicts(table, [j]) for j in ok}
    common = max(set(said.values()), key=list(said.values()).count) if said else "—"
    odd = [j for j in ok if said[j.name] != common]
    blocks = [Block("p", text=f"{len(ok) - len(odd)} of {len(ok)} jobs: **{common}**"
                    + (f"; the other {len(odd)}:" if odd else "."))]
    if odd:
        axes = [rows, cols, *panels]
        blocks.append(table_block([*axes, "verdict"],
                                  [[str(table.at(j, a)) for a in axes] + [said[j.name]]
                                   for j in odd]))
    return blocks


def figures(drawn: dict[str, str], lines_note: str = "") -> Section:
    by_layer = ("std", "mean", "corr", "grad")
    return "Figures", [Block("img", image=drawn[k], text=CAPTIONS[k] + (
        f" {lines_note}." if lines_note and k in by_layer else ""),
        narrow=drawn.get(f"{k}_narrow", ""))
        for k in ("heatmap", "std", "mean", "corr", "grad", "color_dim") if k in drawn]


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
    derived = ["depth", "width"] if "model" in table.axes else []  # each model's own
    cols = [c for c in ["job", *table.axes, *derived, *JOB_COLUMNS] if c in frame.columns]
    shown = frame[cols].astype(object).where(frame[cols].notna(), None)
    for column in ("verdict_layer", "grad_verdict_layer"):
        if column in shown:
            shown[column] = ["—" if v is None else str(int(v)) for v in shown[column]]
    _say_nonfinite(frame, shown)
    return "Jobs", [
        Block("p", text="final_std is measured (median and 10-90 % of trials), theory_final_std "
                        "the mean-field prediction; grad_ratio is std(dL/dx_0) / std(dL/dx_L), "
                        "how much the gradient grew from the output back to the input (median "
                        "over trials), beside the mean-field theory_grad_ratio; with two inputs a "
                        "trial, final_corr is their cosine at the last layer (median over "
                        "trials) beside final_theory_corr. \"non-finite\": "
                        "the median overflowed (inf/NaN), in the signal or in its gradient, "
                        "never 0. All columns: summary.csv."),
        table_block(cols, shown.values.tolist())]


#: Jobs-table columns whose empty value means the median went non-finite: the forward
#: signal's, and the gradient's (which also breaks where it flows through a broken signal).
FORWARD_FINALS = ("final_std", "final_std_q10", "final_std_q90", "final_mean",
                  "final_mean_q10", "final_mean_q90")
GRAD_FINALS = ("grad_ratio", "grad_ratio_q10", "grad_ratio_q90", "input_grad_std")


def _say_nonfinite(frame, shown) -> None:
    """Write "non-finite" where a median is empty because the signal (or its gradient)
    overflowed, not "nan" or 0."""
    broken = frame["first_nonfinite_layer"].notna() if "first_nonfinite_layer" in frame \
        else frame["job"].map(lambda _: False)
    grad_broken = broken | (frame["grad_verdict"] == "exploded") if "grad_verdict" in frame \
        else broken
    for columns, where in ((FORWARD_FINALS, broken), (GRAD_FINALS, grad_broken)):
        for column in (c for c in columns if c in shown):
            shown[column] = ["non-finite" if v is None and bool(w) else v
                             for v, w in zip(shown[column], where, strict=True)]


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
          grids: list[phase.PhaseGrid] | None = None,
          lines_note: str = "") -> tuple[str, list[Section]]:
    """Title and non-empty sections, in reading order."""
    sections = [intro(table, name)]
    if table.ok:
        sections.append(verdicts(table))
    sections += [phase_section.section(grids or [], drawn), training.section(table, drawn),
                 figures(drawn, lines_note),
                 seed_table(table), jobs_table(table), symmetry(table), fluctuation(table),
                 problems(table),
                 ("Figures not drawn", [Block("p", text=n) for n in notes])]
    heads = [h for h, _ in sections]
    if grids and "Verdicts" in heads:  # a phase sweep: the diagram first, the verdicts after it
        sections.insert(heads.index("Order to chaos"), sections.pop(heads.index("Verdicts")))
    return f"initlab report: {name}", [s for s in sections if s[1]]
