"""TensorBoard export of the aggregates: one run per grid cell whose scalars are the seed mean,
the CI bounds and n per epoch, plus the HParams dashboard, whose one score per cell is the one
rule of every report: the objective's seed-mean at the epoch `how` picks (peak or final).

Written with tensorboard's own protobufs and EventFileWriter, which need neither torch nor
TensorFlow (tensorboardX would import torch).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import summary_v2 as hp
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from rnnbench import metrics as m
from rnnbench.results.columns import default_how, default_metric, metric_columns, setting_columns
from rnnbench.results.stats import aggregate
from rnnbench.results.table import cells_at_epoch

SERIES = ("mean", "ci_low", "ci_high", "n")


def _plain(value: object) -> bool | int | float | str:
    """HParams accept only bool, number or string."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return str(value)


def _domain(column: pd.Series) -> hp.Discrete:
    """The setting's values as a typed domain: numbers sort as numbers in the dashboard."""
    values = sorted({_plain(v) for v in column.dropna()}, key=lambda v: (isinstance(v, str), v))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return hp.Discrete([float(v) for v in values])
    return hp.Discrete([str(v) for v in values])


def run_name(cell: dict[str, object]) -> str:
    """A folder name like `model=lstm,lr=0.3`, safe on every filesystem."""
    text = ",".join(f"{k}={v}" for k, v in cell.items()) or "all"
    return re.sub(r"[^\w.,=@+-]", "_", text)


def _write(writer: EventFileWriter, summary: summary_pb2.Summary, step: int) -> None:
    writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))


def export_tensorboard(
    df: pd.DataFrame,
    logdir: str | os.PathLike,
    by: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    ci: float = 0.95,
    diverged: str = "exclude",
    how: str | None = None,
) -> list[Path]:
    """Write one TensorBoard run per cell (`by`, default the varying config minus seed) under
    `logdir`; scalar tags are `<metric>/mean`, `<metric>/ci_low`, `<metric>/ci_high`, `<metric>/n`
    at step = epoch, and `<objective>/score_<how>` (what HParams ranks the cells by). Returns the
    run folders."""
    cells = list(by) if by is not None else setting_columns(df)
    metrics = list(metrics) if metrics is not None else metric_columns(df)
    agg = aggregate(df, by=[*cells, m.EPOCH], metrics=metrics, diverged=diverged, ci=ci)
    agg = agg[agg["n"] > 0]
    objective, how = default_metric(df), how or default_how(df)
    score_tag = f"{objective}/score_{how}"
    scores = cells_at_epoch(df, objective, cells, how, ci, diverged)["mean"] if cells else pd.Series(dtype=float)
    root = Path(logdir)
    root.mkdir(parents=True, exist_ok=True)

    config = EventFileWriter(str(root))
    _write(
        config,
        hp.hparams_config_pb(
            hparams=[hp.HParam(c, _domain(df[c])) for c in cells],
            metrics=[hp.Metric(score_tag), *(hp.Metric(f"{metric}/{s}") for metric in metrics for s in ("mean", "n"))],
        ),
        0,
    )
    config.close()

    runs = []
    for key, part in agg.groupby(cells, sort=True) if cells else [((), agg)]:
        cell = dict(zip(cells, key))
        run = root / run_name(cell)
        writer = EventFileWriter(str(run))
        _write(writer, hp.hparams_pb({k: _plain(v) for k, v in cell.items()}, trial_id=run.name), 0)
        for (epoch, metric), row in part.set_index([m.EPOCH, "metric"]).sort_index().iterrows():
            values = [
                summary_pb2.Summary.Value(tag=f"{metric}/{s}", simple_value=float(row[s])) for s in SERIES if np.isfinite(row[s])
            ]
            _write(writer, summary_pb2.Summary(value=values), int(epoch))
        score = scores.get(key[0] if len(cells) == 1 else key, np.nan) if cells else np.nan
        if np.isfinite(score):
            _write(writer, summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=score_tag, simple_value=float(score))]), 0)
        writer.close()
        runs.append(run)
    return runs
