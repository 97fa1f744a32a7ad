"""initlab.report.parallel: figures drawn in forked workers are the figures drawn in-process,
byte for byte, and a figure that fails is one line while the others are drawn."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
from matplotlib.figure import Figure

from initlab.report import parallel


def _line(slope: float) -> Figure:
    fig = Figure(figsize=(3, 2), layout="constrained")
    ax = fig.subplots()
    x = np.arange(10)
    ax.semilogy(x, np.exp(slope * x), label=f"slope {slope}")
    ax.legend()
    return fig


def _broken() -> Figure:
    raise ValueError("no data\nsecond line")


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_forked_workers_draw_the_same_bytes_and_report_each_failure(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    def tasks(folder):
        return [("one", lambda: _line(0.5), folder / "one.png"),
                ("bad", _broken, folder / "bad.png"),
                ("two", lambda: _line(-1.0), folder / "two.png")]

    forked = parallel.draw_all(tasks(tmp_path / "a"), workers=2)
    alone = parallel.draw_all(tasks(tmp_path / "b"), workers=1)
    assert forked == alone == [None, "ValueError: no data", None]
    for name in ("one.png", "two.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert not (tmp_path / "a" / "bad.png").exists()
