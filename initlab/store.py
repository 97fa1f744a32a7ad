"""Files of a job directory, written whole: a temp file in the same directory, then rename.

The file contract (readers rely on these names): ``layers.csv``,
``layers.parquet``, ``summary.json``, ``std_by_layer.png``, ``mean_by_layer.png``,
``grad_by_layer.png`` (with gradients), ``corr_by_layer.png`` (batch >= 2), and
``histogram.csv`` (per-layer counts of log10|x| in fixed bins); a training job adds
``train_steps``/``train_layers`` (.parquet, .csv) and ``train_histogram.csv``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from initlab import interrupts

LAYERS_CSV = "layers.csv"
LAYERS_PARQUET = "layers.parquet"
SUMMARY_JSON = "summary.json"
HISTOGRAM_CSV = "histogram.csv"
#: A training job's files (``initlab.trainjob``): the two tables as .parquet and .csv
TRAIN_STEPS = "train_steps"
TRAIN_LAYERS = "train_layers"
TRAIN_HISTOGRAM_CSV = "train_histogram.csv"


def umask() -> int:
    """The process's umask. It can only be read by setting it, so it is set and put back
    at once. The umask is process-wide: a thread creating a file in that instant would
    use 0; initlab writes its files from one thread."""
    old = os.umask(0)
    os.umask(old)
    return old


def plain_mode() -> int:
    """The mode a plain ``open(path, "w")`` gives a new file: 0o666 minus the umask."""
    return 0o666 & ~umask()


@contextmanager
def atomic_path(path: Path):
    """Yield a temp path next to ``path``; on success rename it onto ``path``, else delete it.

    ``mkstemp`` creates the temp file ``-rw-------``; before the rename it gets
    the mode a plain ``open()`` would have given (the umask respected), so
    others may read the results where the umask says so.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # 0o777 minus the umask, as mkdir does
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # name the file the user asked for, not the temp file
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    os.close(fd)
    try:
        yield Path(tmp)
        interrupts.pause("write")  # tests only: written, not yet under its name
        os.chmod(tmp, plain_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_with(path: Path, writer: Callable[[Path], Any]) -> Path:
    """Write ``path`` whole by calling ``writer(temp_path)``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_json(path: Path, data: dict[str, Any]) -> Path:
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n"
    return write_with(path, lambda tmp: tmp.write_text(text))


def write_layers(job_dir: Path, frame: pd.DataFrame) -> None:
    """The tidy per-layer table as CSV and Parquet."""
    job_dir = Path(job_dir)
    write_with(job_dir / LAYERS_CSV, lambda tmp: frame.to_csv(tmp, index=False))
    write_with(job_dir / LAYERS_PARQUET, lambda tmp: frame.to_parquet(tmp, index=False))


def write_histogram(job_dir: Path, frame: pd.DataFrame) -> None:
    write_with(Path(job_dir) / HISTOGRAM_CSV, lambda tmp: frame.to_csv(tmp, index=False))


#: Columns every per-layer table has (the file contract).
LAYER_COLUMNS = ("init", "activation", "depth", "width", "trial", "layer", "mean", "std", "rms",
                 "zero_frac", "abs_max", "finite")
