"""TensorBoard event files from a finished training run (the optional ``tensorboard`` extra).

``write_events(record, log_dir)`` writes one event file of a ``TrainingRecord``, after the
run (nothing here runs during training). Tags, with ``step`` the number of updates done:

- ``train/loss``, ``train/accuracy``: the training batch's, median over trials, at every
  step 0..steps; ``train/lr``: the learning rate of the update that starts at the step;
- ``eval/loss``, ``eval/accuracy``: held-out, median over trials, at the evaluation steps;
- ``layers/<layer>/mean``, ``/std``, ``/near_zero``: median over trials, at the recorded
  steps; ``/grad_x_std``, ``/grad_w_std`` too, for layers that have them (not NaN in every
  trial);
- ``layers/<layer>``: a histogram per recorded step of log10|x| (summed over trials, as the
  record keeps it): one bucket per non-empty bin of ``initlab.columns.hist_edges`` between
  the first and the last non-empty one, its counts the record's; ``sum``/``sum_squares``
  at the bins' centres (the record has no more). Exact zeros and non-finite values have
  no log10: they are the scalars ``layers/<layer>/zeros`` and ``/nonfinite`` (counts,
  summed over trials). A step whose values are all zero or non-finite has no histogram.

Accuracy is left out on a regression task (NaN there). Forward statistics are written
as they are, NaN included (a trial that diverged makes its median NaN).

Reproducible: every event's wall time is its step (seconds since an epoch of 0), the file
is ``events.out.tfevents.0000000000.initlab`` (no time, host or pid in the name, unlike
``SummaryWriter``'s), so the same record writes the same bytes. It is written to a
temporary name beside it and renamed when complete (a reader never sees half a file;
writing again replaces it), its events in step order as a logger during training writes
them. The events are the ``Summary`` protos that
``torch.utils.tensorboard.SummaryWriter.add_scalar``/``add_histogram_raw`` build
(``simple_value`` scalars, a ``HistogramProto`` whose ``bucket_limit`` holds each bucket's
upper edge, ``min``/``max`` the outer edges), written with tensorboard's ``RecordWriter``;
``SummaryWriter`` itself stamps its file name and first event with the clock.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from initlab.columns import hist_edges
from initlab.train.record import TrainingRecord

#: The event file's name: fixed, so a rerun replaces it (TensorBoard reads any file whose
#: name contains "tfevents").
EVENT_FILE = "events.out.tfevents.0000000000.initlab"
MISSING = "TensorBoard logging needs the tensorboard package: pip install 'initlab[tensorboard]'"
#: Per-layer statistics written as scalars (median over trials).
LAYER_STATS = ("mean", "std", "near_zero")
LAYER_GRADS = ("grad_x_std", "grad_w_std")


def _protos() -> tuple[Any, Any, Any]:
    """tensorboard's Event and Summary protos and RecordWriter, or the one-line error."""
    try:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary
        from tensorboard.summary.writer.record_writer import RecordWriter
    except ImportError:
        raise ImportError(MISSING) from None
    return Event, Summary, (HistogramProto, RecordWriter)


def _median(values: np.ndarray) -> np.ndarray:
    """Median over trials (axis 0), NaN where a trial is NaN (as ``record.summary``)."""
    return np.median(np.asarray(values, dtype=np.float64), axis=0)


def scalars(record: TrainingRecord) -> Iterator[tuple[str, int, float]]:
    """Every scalar ``write_events`` writes: (tag, step, value), grouped by tag."""
    classify = record.task == "classify"
    series = [("train/loss", record.train_loss), ("eval/loss", record.eval_loss)]
    if classify:
        series += [("train/accuracy", record.train_acc), ("eval/accuracy", record.eval_acc)]
    for tag, values in series:
        steps = record.eval_steps if tag.startswith("eval/") else range(values.shape[1])
        for step, v in zip(steps, _median(values), strict=True):
            yield tag, int(step), float(v)
    for step, v in enumerate(np.asarray(record.lr, dtype=np.float64)):
        yield "train/lr", step, float(v)
    recorded = [int(s) for s in record.steps_recorded]
    for layer, name in enumerate(record.layer_names):
        for stat in LAYER_STATS:
            for step, v in zip(recorded, _median(record.stats[stat][:, :, layer]), strict=True):
                yield f"layers/{name}/{stat}", step, float(v)
        for stat in LAYER_GRADS:
            values = record.grads[stat][:, :, layer]
            if np.isnan(values).all():
                continue
            for step, v in zip(recorded, _median(values), strict=True):
                yield f"layers/{name}/{stat}", step, float(v)
        if record.hist is not None:
            for stat, column in (("zeros", 0), ("nonfinite", 1)):
                for step, v in zip(recorded, record.hist[:, layer, column], strict=True):
                    yield f"layers/{name}/{stat}", step, float(v)


def histogram(counts: np.ndarray, edges: np.ndarray) -> dict[str, Any] | None:
    """``HistogramProto`` fields of one layer's bins (``counts``: the record's bins after
    [zeros, non-finite], one per interval of ``edges``), trimmed to the first..last
    non-empty bin; None when every bin is empty."""
    counts = np.asarray(counts, dtype=np.int64)
    filled = np.flatnonzero(counts)
    if filled.size == 0:
        return None
    first, last = int(filled[0]), int(filled[-1])
    kept = counts[first:last + 1].astype(np.float64)
    centres = (edges[first:last + 1] + edges[first + 1:last + 2]) / 2
    return dict(min=float(edges[first]), max=float(edges[last + 1]), num=float(kept.sum()),
                sum=float(kept @ centres), sum_squares=float(kept @ centres ** 2),
                bucket_limit=edges[first + 1:last + 2].tolist(), bucket=kept.tolist())


def write_events(record: TrainingRecord, log_dir: Path, tag: str = "") -> Path:
    """Write ``record`` as a TensorBoard event file (module docstring: tags, reproducibility)
    and return the file's path.

    ``tag``: the run's name, a relative path: the file goes in ``log_dir / tag`` (TensorBoard
    shows each folder under the directory it is pointed at as a run, so several configs of a
    job go side by side as ``tag``s), in ``log_dir`` itself when empty.
    Raises ImportError (one line) without the tensorboard package.
    """
    Event, Summary, (HistogramProto, RecordWriter) = _protos()
    parts = PurePosixPath(tag.replace(os.sep, "/")).parts if tag else ()
    if tag and (PurePosixPath(tag).is_absolute() or ".." in parts):
        raise ValueError(f"tag must be a relative path inside log_dir, not {tag!r}")
    run = Path(log_dir).joinpath(*parts)
    run.mkdir(parents=True, exist_ok=True)

    events = []
    for name, step, value in scalars(record):
        events.append(Event(wall_time=float(step), step=step, summary=Summary(
            value=[Summary.Value(tag=name, simple_value=value)])))
    if record.hist is not None:
        edges = hist_edges(record.hist_dtype)
        if record.hist.shape[-1] != 2 + len(edges) - 1:
            raise ValueError(f"record.hist has {record.hist.shape[-1] - 2} bins, "
                             f"hist_edges({record.hist_dtype!r}) {len(edges) - 1}")
        for r, step in enumerate(int(s) for s in record.steps_recorded):
            for layer, name in enumerate(record.layer_names):
                fields = histogram(record.hist[r, layer, 2:], edges)
                if fields is not None:
                    events.append(Event(wall_time=float(step), step=step, summary=Summary(
                        value=[Summary.Value(tag=f"layers/{name}",
                                             histo=HistogramProto(**fields))])))

    # In step order, as a logger during training writes them (stable: tags keep their order).
    events.sort(key=lambda event: event.step)
    events.insert(0, Event(wall_time=0.0, file_version="brain.Event:2"))
    path = run / EVENT_FILE
    partial = run / ".initlab-events.partial"  # no "tfevents": TensorBoard skips it
    writer = RecordWriter(open(partial, "wb"))
    try:
        for event in events:
            writer.write(event.SerializeToString())
        writer.flush()
    finally:
        writer.close()
    os.replace(partial, path)
    return path
