"""Figures, always drawn from a job's files: one plotting path for a job's own figures
(``job``) and the report's panels, one style (``style``), one by-layer panel
(``panels``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from initlab.figures.job import FiguresError, job_figures
from initlab.figures.train import TrainFilesError, draw_training

log = logging.getLogger("initlab")


def draw_job(job_dir: Path, summary: dict[str, Any]) -> list[Path]:
    """A job's figures (a training job's too) from its tables and ``summary`` (before
    summary.json is written); a figure that fails is logged and the job stays ok
    (``initlab-plot <dir>`` draws it again)."""
    try:
        return job_figures(job_dir, summary) + draw_training(job_dir, summary)
    except (FiguresError, TrainFilesError, ValueError, OSError) as exc:
        log.error("figures of %s failed: %s: %s", job_dir, type(exc).__name__, exc)
        return []
