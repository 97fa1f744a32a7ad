"""Ctrl-C and SIGTERM: one stop, noticed wherever it lands; and announced pauses for tests.

The command line (``initlab.app.main``) watches SIGINT and SIGTERM for its whole run
(``watching``). The first one raises KeyboardInterrupt wherever the process is — a
config being composed, an engine pass, a job's files, Hydra's bookkeeping, the report —
and is remembered, so a stop that Python cannot raise where it lands (inside a
finalizer) still ends the run as interrupted. Further signals do not raise while the
first one unwinds (files are being cleaned up); ``Watch.settle`` ends the work: the
signal received so far decides, and any later one is noted and ignored, so the
process's last steps and its exit stay quiet. ``Watch.again`` opens a window (the report
written after a stop) that a further signal cuts short.

A signal the process inherited as ignored (a background job of a non-interactive shell)
stays ignored, as for any program. A process forked from the watching one (the report's
figure workers) ignores both signals: its parent stops it.

``INITLAB_PAUSE_AT`` (tests only): ``stage[:n][,stage[:n]...]``. When the watching
process reaches the n-th occurrence (1 if not given) of a named stage (``STAGES``), it
prints ``initlab: paused at <stage> <n>`` to stderr and waits there until a signal
stops it, so a test interrupts at a known point instead of a guessed moment. Unset,
``pause`` returns at once and nothing else changes.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)
PAUSE_VAR = "INITLAB_PAUSE_AT"
#: Where a pause can be asked for: before Hydra starts (``check``), each job's config
#: composed by the fused launcher, each engine pass (at its first progress tick, inside the
#: pass), each file written whole (``initlab.store``: its temp file written, not yet
#: renamed), each job's Hydra bookkeeping (its .hydra/ files and log open), each report
#: (built, not yet renamed into place), and the end of the work (``exit``).
STAGES = ("check", "compose", "measure", "write", "bookkeeping", "report", "exit")


def _pauses(text: str) -> set[tuple[str, int]]:
    wanted = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        stage, _, n = item.partition(":")
        wanted.add((stage, int(n) if n.isdigit() else 1))
    return wanted


class Watch:
    """The signals seen by the watching process, and whether the next one raises."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.seen: list[int] = []
        self.raise_at = 1  # the count of signals at which the handler raises (0: never)
        self.pauses = _pauses(os.environ.get(PAUSE_VAR, ""))
        self.reached: Counter[str] = Counter()

    def handle(self, signum: int, frame: object) -> None:
        if os.getpid() != self.pid:  # a forked worker: its parent stops it
            return
        self.seen.append(signum)
        if len(self.seen) == self.raise_at:
            raise KeyboardInterrupt

    def settle(self) -> int | None:
        """End the work: the first signal received (None if none); later ones are ignored."""
        self.raise_at = 0
        return self.seen[0] if self.seen else None

    @property
    def twice(self) -> bool:
        """Whether a second signal came while the first one unwound."""
        return len(self.seen) >= 2

    @contextmanager
    def again(self) -> Iterator[None]:
        """A further signal raises KeyboardInterrupt inside the block."""
        self.raise_at = len(self.seen) + 1
        try:
            yield
        finally:
            self.raise_at = 0


_active: Watch | None = None


@contextmanager
def watching(restore: bool = True) -> Iterator[Watch]:
    """Watch SIGINT and SIGTERM (from the main thread only). ``restore``: put the previous
    handlers back at the end; without it (the process is about to exit) later signals are
    noted and ignored."""
    global _active
    watch, saved = Watch(), {}
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            if signal.getsignal(sig) != signal.SIG_IGN:
                saved[sig] = signal.signal(sig, watch.handle)
    previous, _active = _active, watch
    try:
        yield watch
    finally:
        _active = previous
        watch.raise_at = 0
        if restore:
            for sig, handler in saved.items():
                signal.signal(sig, handler)


def pause(stage: str) -> None:
    """Wait for a signal at ``stage`` when ``INITLAB_PAUSE_AT`` asks for it (see the module)."""
    watch = _active
    if watch is None or not watch.pauses or os.getpid() != watch.pid:
        return
    watch.reached[stage] += 1
    n = watch.reached[stage]
    if (stage, n) not in watch.pauses:
        return
    print(f"initlab: paused at {stage} {n}", file=sys.stderr, flush=True)
    while True:  # a signal ends the sleep at once; the loop only re-checks, never waits on time
        time.sleep(0.05)


def at_first_tick(stage: str, progress: Callable[[int], object] | None
                  ) -> Callable[[int], object] | None:
    """``progress``, pausing at ``stage`` on its first tick when a pause there is asked for
    (the pass is then under way); ``progress`` itself otherwise."""
    watch = _active
    if watch is None or not any(s == stage for s, _ in watch.pauses):
        return progress
    ticked = []

    def tick(n: int) -> None:
        if not ticked:
            ticked.append(True)
            pause(stage)
        if progress is not None:
            progress(n)

    return tick
