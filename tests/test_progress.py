"""No silent minutes: without a terminal, progress is a log line every EVERY seconds, for
every kind of job (a model's too), counted in the job's own units."""

from __future__ import annotations

import logging

from conftest import main_in_process

from initlab import progress


def test_lines_say_how_far_and_how_long(monkeypatch, caplog):
    monkeypatch.setattr(progress, "EVERY", 0.0)  # a line at every update
    lines = progress.Lines(200, "sweep", "trial-layer")
    with caplog.at_level(logging.INFO, logger="initlab"):
        lines.update(50)
        lines.update(150)
    said = [r.getMessage() for r in caplog.records]
    assert said[0].startswith("sweep: 25 % (50 of 200 trial-layers), ")
    assert said[1].startswith("sweep: 100 % (200 of 200 trial-layers), ")


def test_a_model_job_reports_progress_without_a_terminal(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(progress, "EVERY", 0.0)
    code, _ = main_in_process(["model=conv_chain", "model.channels=2", "model.depth=2",
                               "model.size=8", "trials=3", "report=false", "plots=false",
                               f"hydra.run.dir={tmp_path}"], capsys)
    assert code == 0
    log = (tmp_path / "initlab.log").read_text()  # the job's log, as Hydra writes it
    said = [line for line in log.splitlines() if " trial-layers), " in line]
    # conv_chain's work: trials x (depth + 1) = 9 trial-layers (the probe ticks per trial on
    # its loop path, once for all trials on its batched one, which this small model takes)
    assert said and said[-1].split(" (")[1].startswith("9 of 9 trial-layers)")
