"""Comparison report of a sweep (or one run), built only from the files its jobs wrote.

    initlab-report [DIR] [--job NAME]     # DIR: a sweep or run directory (default: newest)

Writes ``DIR/report/`` whole: ``summary.csv`` (one row per job), ``report.md``,
a self-contained ``report.html`` and the figures. Modules, one job each:
``load`` (find the jobs, planned ones included, and settle each one's status),
``checks`` (do a job's files hold together), ``settings`` (a job's settings
and labels, from its own files), ``tables`` (axes and the summary frame),
``figures``, ``document`` (one builder per section), ``render`` (Markdown,
HTML), ``write`` (the folder, replaced whole) and ``cli``. Importing it does not touch pyplot or the
matplotlib backend.
"""

from initlab.report.cli import main
from initlab.report.load import JobRecord, ReportError, find_jobs
from initlab.report.write import write_report

__all__ = ["JobRecord", "ReportError", "find_jobs", "main", "write_report"]
