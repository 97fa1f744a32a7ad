"""The report's "Order to chaos" section: the phase figure, what it shows in words (numbers
from the jobs' files), and how far the measurement sits from the theory."""

from __future__ import annotations

import math

import numpy as np

from initlab.report import phase
from initlab.report.blocks import Block, Section, table_block

CAPTION = ("Order to chaos: final correlation of two inputs over (sigma_w2, sigma_b2), "
           "measured (first panel) and mean-field theory (second panel), with the chi_1 = 1 "
           "edge.")


def _f(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _intro(grids: list[phase.PhaseGrid]) -> list[str]:
    g = grids[0]
    depth = f"layer {g.depth}" if g.depth else "the last layer"
    c0 = f", which start at c0 = {g.c0}" if g.c0 is not None else ""
    curve = all(np.isfinite(x.edge_w2).any() for x in grids)
    return [
        "Each cell is one job: σ_w² (weight variance × fan_in) along x, σ_b² (bias variance) "
        f"along y. The colour is the correlation between two inputs' pre-activations at {depth}"
        f"{c0}: yellow means the network has merged them into one, dark that it has "
        "decorrelated them.",
        ("Left of the white curve lies the ordered phase (χ₁ < 1)" if curve
         else "The ordered phase is where χ₁ < 1")
        + ": the correlation is driven to 1 and the network forgets which input it saw. "
        + ("Right of it lies the chaotic phase (χ₁ > 1)" if curve
           else "The chaotic phase is where χ₁ > 1")
        + ": the correlation falls to a fixed point c* < 1."]


def _about(grid: phase.PhaseGrid, g: dict) -> list[str]:
    """Edge, gap, finite width and special rows of one activation's grid."""
    text = []
    b_ref, _ = phase.representatives(grid)
    e = phase.edge_at(grid, b_ref)
    if np.isfinite(grid.edge_w2).any():
        text.append(
            "The curve is the edge of chaos, χ₁ = 1, computed by the mean-field theory for "
            f"{grid.act_label}: there correlations converge slowest, so information about the "
            "input travels deepest" + (f"; at σ_b² = {b_ref} it sits at σ_w² = {e:.2f}."
                                       if math.isfinite(e) else "."))
    else:
        text.append(f"The mean-field theory for {grid.act_label} draws no χ₁ = 1 edge here "
                    f"({grid.edge_note or 'none found'}); the phases are told apart by each "
                    "job's χ₁ in its summary.json.")
    if g["cells"]:
        x, y, m, t = g["at"]
        width = f"width {grid.width}" if grid.width else "finite width"
        text.append(
            f"The measured panel is at {width} (median over {grid.trials} trials), the "
            f"theory panel is the infinite-width limit: over {g['cells']} cells the median "
            f"|measured − theory| is {_f(g['median'])}, and the largest gap, "
            f"{g['largest']:+.3f}, is at σ_w² = {x}, σ_b² = {y} (measured {m:.3f}, theory "
            f"{t:.3f}, circled in red).")
        ch, se = g["phases"].get("chaotic"), g["beyond_3se"]
        if ch and se:
            verdict = ("so at this trial count the gaps are what trial-to-trial scatter gives"
                       if se[0] == 0 else "more than trial scatter explains")
            text.append(
                f"Finite width shows as scatter: in the chaotic phase one chain's final "
                f"correlation varies by {_f(ch[3], 2)} (median sd over trials) around the "
                f"theory; the median of the trials is off by {ch[1]:+.3f} there (median over "
                f"the chaotic cells). {se[0]} of {se[1]} cells differ from the theory by more "
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
    if grid.missing:
        cells = len(grid.sigma_w2) * len(grid.sigma_b2)
        text.append(f"This grid is partial: {grid.missing} of its {cells} cells have no "
                    "finished job (failed, cut short or never started: listed under "
                    "Problems) and are left grey; the numbers above cover the "
                    f"{cells - grid.missing} finished cells only.")
    if grid.shared:
        text.append(f"Other settings vary too: each cell shows the first job of its "
                    f"(σ_w², σ_b²) in job order; {grid.shared} jobs are not in the diagram.")
    return text


def section(grids: list[phase.PhaseGrid] | phase.PhaseGrid,
            drawn: dict[str, str]) -> Section:
    """Figure, words (a paragraph set per activation when several) and two tables: the gap
    per phase and the largest gap."""
    grids = [grids] if isinstance(grids, phase.PhaseGrid) else list(grids)
    if not grids:
        return "Order to chaos", []
    several = len(grids) > 1
    blocks = []
    if "phase" in drawn:
        blocks.append(Block("img", image=drawn["phase"], text=CAPTION,
                            narrow=drawn.get("phase_narrow", "")))
    blocks += [Block("p", text=t) for t in _intro(grids)]
    lead = ["activation"] if several else []
    rows, largest = [], []
    for grid in grids:
        g = phase.gaps(grid)
        who = [grid.act_label] if several else []
        about = _about(grid, g)
        if several:
            about[0] = f"**{grid.act_label}**: " + about[0]
        blocks += [Block("p", text=t) for t in about]
        rows.append(who + ["all cells", g["cells"], g["median"], g["median_signed"]])
        for name, text in (("ordered", "ordered (χ₁ < 1)"), ("chaotic", "chaotic (χ₁ > 1)")):
            if name in g["phases"]:
                n, signed, absolute, _ = g["phases"][name]
                rows.append(who + [text, n, absolute, signed])
        if g["at"] is not None:
            x, y, m, t = g["at"]
            largest.append(who + [str(x), str(y), m, t, g["largest"]])
    blocks.append(table_block(lead + ["cells", "count", "median abs(measured − theory)",
                                      "median (measured − theory)"], rows))
    if largest:
        blocks.append(table_block(lead + ["largest gap at σ_w²", "σ_b²", "measured", "theory",
                                          "gap"], largest))
    return "Order to chaos", blocks
