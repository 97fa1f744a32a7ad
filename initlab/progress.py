"""Progress for long work: a tqdm bar on a terminal, a log line every ``EVERY`` seconds
elsewhere (a CI log, ``nohup``, a file), so no run stays silent for minutes.

``progress`` = ``auto`` (the bar on a terminal, else the lines), ``true`` (the bar
always), ``false`` (nothing). Both count the same units (``initlab.job.Job.work``:
trial-layers measured, trial-layer updates trained).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from initlab.rules import PROGRESS

log = logging.getLogger("initlab")

#: Seconds between two progress lines when there is no terminal.
EVERY = 15.0


class Lines:
    """``update(n)``/``close()`` like a tqdm bar; logs ``label: 42 % (n of total units),
    30 s`` when ``EVERY`` seconds have passed since the last line (or the start)."""

    def __init__(self, total: int, label: str, unit: str) -> None:
        self.total, self.label, self.unit = max(int(total), 1), label, unit
        self.n = 0
        self.start = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= EVERY:
            self.last = now
            log.info("%s: %d %% (%d of %d %ss), %.0f s", self.label,
                     min(100, 100 * self.n // self.total), self.n, self.total, self.unit,
                     now - self.start)

    def close(self) -> None:
        """Nothing to clear: the lines stay in the log."""


def progress_bar(mode: Any, total: int, label: str, unit: str = "trial-layer"):
    """A tqdm bar on stderr (``progress`` true, or auto on a terminal), ``Lines`` (auto
    elsewhere), or None (false)."""
    mode = str(mode).lower()
    if mode not in PROGRESS or mode == "false":
        return None
    if mode == "auto" and not sys.stderr.isatty():
        return Lines(total, label, unit)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit=unit, leave=False, file=sys.stderr)
