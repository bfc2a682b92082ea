"""Which columns of a loaded frame are ids, config, Ray bookkeeping or metrics, and which way is "better".

`load` records the roles in `df.attrs`; frames built by hand (tests, notebooks) fall back to
inference, so every function accepts both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from rnnbench import metrics as m
from rnnbench.results.errors import ResultsError

# `trial` is one trained model; `group` the Ray trial folder that trained it (the same folder
# for the members of a grouped trial, else the trial itself).
ID_COLUMNS = ("experiment", "trial", "group", "trial_id", "status", "error")

# Keys Ray Tune adds to every result.json line next to the reported metrics.
RAY_COLUMNS = (
    "training_iteration", "time_this_iter_s", "time_total_s", "time_since_restore",
    "iterations_since_restore", "timestamp", "date", "pid", "hostname", "node_ip", "done",
    "checkpoint_dir_name", "should_checkpoint", "experiment_tag", "episodes_total",
    "timesteps_total", "timesteps_since_restore", "experiment_id",
)

# Columns that count or flag rather than measure; never averaged unless asked for by name.
NOT_AVERAGED = (m.EPOCH, m.DIVERGED)

# Smaller is better for these; everything else (accuracies, throughput) is larger-is-better.
_LOWER_IS_BETTER = (m.EPOCH_S, m.GRAD_NORM)

SEED = "seed"
# Config values that tell the repetitions of one setting apart, so they never define a cell:
# the seed, and the first-stage checkpoint a confirmation trial continues.
PER_TRIAL = (SEED, "restore_from")

STATUS_DIVERGED = "diverged"
STATUS_ERRORED = "errored"


def higher_is_better(metric: str) -> bool:
    """Direction of a metric, so `best` and `compare` know whether a peak is a max or a min."""
    return "loss" not in metric and metric not in _LOWER_IS_BETTER


def unit(metric: str) -> str:
    """The unit a metric's numbers are in, for table headers and axis labels."""
    if "acc" in metric:
        return "fraction correct"
    if "loss" in metric:
        return "nats" if metric != "train_loss_sum" else "nats, summed over batches"
    return {"epoch_s": "s", "tokens_per_s": "tokens/s", "grad_norm": "L2 norm"}.get(metric, "")


def config_columns(df: pd.DataFrame) -> list[str]:
    """The trial's config values, one column each (nested dicts flattened as `outer/inner`)."""
    if "config_columns" in df.attrs:
        return [c for c in df.attrs["config_columns"] if c in df.columns]
    return [c for c in df.columns if c not in ID_COLUMNS and c not in RAY_COLUMNS
            and c not in metric_columns(df) and c not in NOT_AVERAGED]


def metric_columns(df: pd.DataFrame) -> list[str]:
    """Numeric reported values worth averaging (not the epoch counter or the diverged flag)."""
    if "metric_columns" in df.attrs:
        return [c for c in df.attrs["metric_columns"] if c in df.columns]
    vocabulary = {v for k, v in vars(m).items() if k.isupper() and isinstance(v, str)}
    return [c for c in df.columns if c not in NOT_AVERAGED and pd.api.types.is_numeric_dtype(df[c])
            and not pd.api.types.is_bool_dtype(df[c])
            and (c in vocabulary or c.startswith(("synth_acc@", "compl_acc@")))]


def setting_columns(df: pd.DataFrame, include: Iterable[str] = ()) -> list[str]:
    """Config columns that vary across trials, minus the seed (PER_TRIAL): what defines one cell.

    Constant settings (batch size, epochs) would only clutter tables; the seed is what we
    average over. Columns named in `include` are kept even when constant.
    """
    keep = set(include)
    out = []
    for c in config_columns(df):
        if c in PER_TRIAL and c not in keep:
            continue
        try:
            varies = df[c].nunique(dropna=False) > 1
        except TypeError:  # unhashable values (lists) cannot define a grid cell
            continue
        if varies or c in keep:
            out.append(c)
    return out


def default_per(df: pd.DataFrame) -> str:
    """The column whose values are compared: `model` (IMDB), else `dataset` (grammars), else the
    first setting that varies."""
    for name in ("model", "dataset"):
        if name in df.columns:
            return name
    settings = setting_columns(df)
    if not settings:
        raise ResultsError("no config column varies across trials, so there is nothing to compare; "
                           f"config columns: {', '.join(config_columns(df)) or 'none'}")
    return settings[0]


def default_metric(df: pd.DataFrame) -> str:
    """Validation accuracy for a sweep, test accuracy for a confirmation stage, else loss."""
    for name in (m.VAL_ACC, m.TEST_ACC, m.LOSS_PER_TOKEN, m.VAL_LOSS, m.TRAIN_LOSS):
        if name in df.columns and df[name].notna().any():
            return name
    available = metric_columns(df)
    if not available:
        raise ResultsError(f"the results hold no metric; columns: {', '.join(map(str, df.columns))}")
    return available[0]


def require_columns(df: pd.DataFrame, names: Sequence[str], what: str = "column") -> list[str]:
    """Raise one ResultsError naming every missing column and listing the ones that exist."""
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise ResultsError(f"no {what} {', '.join(map(repr, missing))} in the results; "
                           f"available: {', '.join(map(str, df.columns))}")
    return list(names)


def require_metrics(df: pd.DataFrame, names: Sequence[str]) -> list[str]:
    """Like `require_columns`, but lists the metrics (not every column) and rejects non-numbers."""
    available = metric_columns(df)
    bad = [n for n in names if n not in df.columns or not pd.api.types.is_numeric_dtype(df[n])]
    if bad:
        raise ResultsError(f"no metric {', '.join(map(repr, bad))} in the results; "
                           f"available metrics: {', '.join(available) or 'none'}")
    return list(names)
