"""``initlab-report [DIR] [--job NAME]``: write DIR/report/ (default DIR: the newest run).

Errors are one line, ``initlab-report: error: <path>: <cause>``: exit 2 for a
directory that is not a run or sweep (or a bad argument), 1 when reading or
writing fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from initlab.report.load import ReportError, ReportIOError, newest
from initlab.report.write import write_report


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``initlab-report``."""
    parser = argparse.ArgumentParser(
        prog="initlab-report",
        description="Write DIR/report/ (summary.csv, report.md, report.html, figures) "
                    "from the files of a sweep or run.")
    parser.add_argument("directory", nargs="?", type=Path,
                        help="sweep or run directory (default: the newest under outputs/)")
    parser.add_argument("--job", help="job (directory name or number) for the histogram figure")
    args = parser.parse_args(argv)
    try:
        directory = args.directory if args.directory is not None else newest()
        folder = write_report(directory, job=args.job)
    except ReportError as exc:
        print(f"initlab-report: error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, ReportIOError) else 2
    except OSError as exc:  # anything the writer did not name: still one line
        print(f"initlab-report: error: {exc.filename or args.directory}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    print(folder / "report.html")
    return 0
