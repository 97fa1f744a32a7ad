"""initlab.reference.judge: is the seed's single-run number a plausible draw from our trials?

Unit tests on hand-made final layers; the rules (2-98 % of trials, 4 standard errors, NaN
only against NaN, 0 only against 0) are in judge's docstring.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from initlab.reference import collect
from initlab.report.judge import final_layer, judge


def _final(**cols) -> pd.DataFrame:
    return pd.DataFrame(cols)


def test_judge_per_trial_quantities_use_the_trial_range():
    rng = np.random.default_rng(0)
    final = _final(std=rng.lognormal(0, 0.3, 200), mean=rng.normal(0, 0.1, 200),
                   rms=np.ones(200))
    assert judge("final_std", 1.1, final)[0] is True
    assert judge("final_std", 5.0, final)[0] is False
    assert judge("final_mean", 0.05, final)[0] is True
    assert judge("final_mean", 0.0, final)[0] is False  # 0 passes only against zeros


def test_judge_nan_and_zero():
    nan = _final(std=[np.nan] * 4, mean=[np.nan] * 4, rms=[np.nan] * 4)
    zero = _final(std=[0.0] * 4, mean=[0.0] * 4, rms=[0.0] * 4)
    assert judge("final_std", float("nan"), nan)[0] is True
    assert judge("final_std", float("nan"), zero)[0] is False
    assert judge("final_std", 0.0, zero)[0] is True


def test_judge_layer_and_averages():
    final = _final(std=[1.0] * 3, mean=[9.0, 9.1, 8.9], rms=[16.0, 16.1, 15.9],
                   first_nonfinite_layer=[28, 28, 29])
    assert judge("first_nonfinite_layer", 29, final)[0] is True
    assert judge("first_nonfinite_layer", 35, final)[0] is False
    assert judge("mean_of_means", 9.02, final)[0] is True
    assert judge("mean_of_means", 10.0, final)[0] is False
    assert judge("root_mean_square", 16.0, final)[0] is True


def test_final_layer_takes_each_trials_last_layer_and_first_nonfinite_layer():
    layers = pd.DataFrame({
        "trial": [0, 0, 0, 1, 1, 1], "layer": [0, 1, 2, 0, 1, 2],
        "mean": [0.0, 1.0, 2.0, 0.0, 3.0, 4.0], "std": [1.0] * 6, "rms": [1.0] * 6,
        "finite": [True, True, True, True, False, False], "theory_std": [9.0] * 6})
    final = final_layer(layers)
    assert final["mean"].tolist() == [2.0, 4.0]
    assert final["first_nonfinite_layer"].isna().tolist() == [True, False]
    assert final["first_nonfinite_layer"].tolist()[1] == 1


def test_collect_lists_finished_jobs_with_a_reference_and_skips_broken_ones(sweep_copy):
    jobs = sorted(p for p in sweep_copy.iterdir() if (p / "summary.json").is_file())
    for job, verdict_layer in zip(jobs[:2], (None, "abc"), strict=True):
        data = json.loads((job / "summary.json").read_text())
        data.update(verdict_layer=verdict_layer, reference={
            "source": f"seed {job.name}",
            "rows": [{"quantity": "final_std", "seed": 1.5, "measured": 0.25}]})
        (job / "summary.json").write_text(json.dumps(data))
    rows = collect(sweep_copy)  # jobs[1] is broken (verdict_layer "abc"): left out
    assert [r["source"] for r in rows] == [f"seed {jobs[0].name}"]
    assert rows[0]["final_std: seed / measured"].startswith("1.5 / 0.25")
