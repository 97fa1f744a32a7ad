"""``initlab-plot [DIR ...]``: draw per-job figures from a job's files, on demand.

A sweep does not draw its jobs' figures (``plots=auto``; its report draws every
job side by side); this draws them afterwards for any job directory, or for every
finished job of a sweep directory (default: the newest run or sweep under
``outputs/``). The figures are ``std_by_layer.png``, ``mean_by_layer.png``, and with
the data for them ``grad_by_layer.png`` and ``corr_by_layer.png``, written into
each job's directory; a training job adds ``train_curves.png``,
``train_layer_stats.png`` and ``train_color_dim.png``. Errors are one line each; the
exit status is 1 when a job given could not be drawn, 2 when a directory holds no job
at all; a sweep's jobs that did not finish are skipped with a line each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from initlab.figures.job import FiguresError, job_dirs, job_figures
from initlab.figures.train import TrainFilesError, draw_training


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``initlab-plot``."""
    parser = argparse.ArgumentParser(
        prog="initlab-plot",
        description="Draw the per-job figures (std, mean, gradients, correlation by layer) "
                    "of a job directory, or of every finished job of a sweep directory.")
    parser.add_argument("directories", nargs="*", type=Path,
                        help="job or sweep directories (default: the newest under outputs/)")
    args = parser.parse_args(argv)
    try:
        if args.directories:
            directories = args.directories
        else:
            from initlab.report.load import newest

            directories = [newest()]
    except Exception as exc:  # noqa: BLE001  (ReportError: no outputs/ yet)
        print(f"initlab-plot: error: {exc}", file=sys.stderr)
        return 2
    status = 0
    for directory in directories:
        jobs = job_dirs(directory)
        if not jobs:
            print(f"initlab-plot: error: {directory}: no job directory (no summary.json) here",
                  file=sys.stderr)
            status = max(status, 2)
            continue
        for job in jobs:
            try:
                for path in job_figures(job) + draw_training(job):
                    print(path)
            except (FiguresError, TrainFilesError) as exc:
                if job != Path(directory):  # a sweep's unfinished job: say so and go on
                    print(f"initlab-plot: skipped {exc}", file=sys.stderr)
                    continue
                print(f"initlab-plot: error: {exc}", file=sys.stderr)
                status = max(status, 1)
            except OSError as exc:
                print(f"initlab-plot: error: {exc.filename or job}: "
                      f"{exc.strerror or exc}", file=sys.stderr)
                status = max(status, 1)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
