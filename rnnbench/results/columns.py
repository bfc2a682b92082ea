"""Which columns of a loaded frame are ids, config or metrics, which way is "better", and the
task-aware defaults (metric, compared column, epoch rule).

`load` records the roles in `df.attrs`; frames built by hand (tests, notebooks) fall back to
inference, so every function accepts both.

Defaults come from the task registry (`rnnbench.tasks`, torch-free), by one rule: the frame's task
is the one its sweep recorded in the experiment's spec.json (`df.attrs["task"]`), else the first
registered task whose objective metric the frame holds. The default metric is that objective's
metric, or for a confirmation stage (test_acc, no val_acc) its `test_` counterpart; the compared
column is the task's `per`; the epoch rule its `how`. A frame of no known task falls back to its
first metric, its first varying setting and "peak".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from rnnbench import metrics as m
from rnnbench.errors import ResultsError
from rnnbench.tasks import RESTORE_FROM, TASKS, Task

# `trial` is one trained model (a member of the experiment); `group` the trial that trained it
# (several members share one when trained together).
ID_COLUMNS = ("experiment", "trial", "group", "status", "error")

# Columns that count or flag rather than measure; never averaged unless asked for by name.
NOT_AVERAGED = (m.EPOCH, m.DIVERGED)

# Smaller is better for these; everything else (accuracies, throughput) is larger-is-better.
_LOWER_IS_BETTER = (m.EPOCH_S, m.GRAD_NORM)

SEED = "seed"
# Config values that tell the repetitions of one setting apart, so they never define a cell:
# the seed, and the first-stage checkpoint a confirmation trial continues.
PER_TRIAL = (SEED, RESTORE_FROM)

STATUS_DIVERGED = "diverged"
STATUS_ERRORED = "errored"


def higher_is_better(metric: str) -> bool:
    """Direction of a metric, so `best` and `compare` know whether a peak is a max or a min: the
    registry's mode for a task's objective metric (and its test_ counterpart), else by name
    (losses, seconds and gradient norms are lower-is-better)."""
    for task in TASKS.values():
        if metric in _objective_candidates(task):
            return task.objective.mode == "max"
    return "loss" not in metric and metric not in _LOWER_IS_BETTER


def unit(metric: str) -> str:
    """The unit a metric's numbers are in, for table headers and axis labels."""
    if metric.startswith(("synth_acc", "compl_acc")):
        return "fraction valid"
    if metric.startswith("synth_distinct"):
        return "fraction distinct and valid"
    if "acc" in metric:
        return "fraction correct"
    if "loss" in metric:
        return "nats" if metric != "train_loss_sum" else "nats, summed over batches"
    return {"epoch_s": "s", "tokens_per_s": "tokens/s", "grad_norm": "L2 norm"}.get(metric, "")


def bounds(metric: str) -> tuple[float, float]:
    """The range a metric's values (and so its mean) cannot leave: [0, 1] for accuracies and
    other shares, [0, inf) for losses, norms, times and rates; unbounded otherwise."""
    if "acc" in metric or metric.startswith("synth_distinct"):
        return 0.0, 1.0
    if "loss" in metric or metric in (m.GRAD_NORM, m.EPOCH_S, m.TOKENS_PER_S):
        return 0.0, float("inf")
    return float("-inf"), float("inf")


def epoch_rule(how: str, metric: str) -> str:
    """How the chosen epoch is named in headers and sentences: "peak" (best of an accuracy),
    "lowest" (best of a loss) or "final"."""
    if how == "final":
        return "final"
    return "peak" if higher_is_better(metric) else "lowest"


def config_columns(df: pd.DataFrame) -> list[str]:
    """The member's config values, one column each."""
    if "config_columns" in df.attrs:
        return [c for c in df.attrs["config_columns"] if c in df.columns]
    return [c for c in df.columns if c not in ID_COLUMNS and c not in metric_columns(df) and c not in NOT_AVERAGED]


def metric_columns(df: pd.DataFrame) -> list[str]:
    """Numeric reported values worth averaging (not the epoch counter or the diverged flag)."""
    if "metric_columns" in df.attrs:
        return [c for c in df.attrs["metric_columns"] if c in df.columns]
    vocabulary = {v for k, v in vars(m).items() if k.isupper() and isinstance(v, str)}
    return [
        c
        for c in df.columns
        if c not in NOT_AVERAGED
        and pd.api.types.is_numeric_dtype(df[c])
        and not pd.api.types.is_bool_dtype(df[c])
        and (c in vocabulary or c.startswith(("synth_acc@", "compl_acc@", "synth_distinct@")))
    ]


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


def _objective_candidates(task: Task) -> list[str]:
    """The task's objective metric, then the confirmation stage's name for it (val_ -> test_)."""
    metric = task.objective.metric
    return [metric] + (["test_" + metric[len("val_") :]] if metric.startswith("val_") else [])


def _reported(df: pd.DataFrame, name: str) -> bool:
    return name in df.columns and bool(df[name].notna().any())


def task_of(df: pd.DataFrame) -> Task | None:
    """The frame's task: the one its sweep recorded, else the first registered task whose
    objective metric (or test_ counterpart) the frame holds; None if none does."""
    recorded = df.attrs.get("task")
    if recorded in TASKS:
        return TASKS[recorded]
    return next((t for t in TASKS.values() if any(_reported(df, c) for c in _objective_candidates(t))), None)


def default_per(df: pd.DataFrame) -> str:
    """The column whose values are compared: the task's `per` (model for IMDB, dataset for the
    grammars), else the first setting that varies."""
    task = task_of(df)
    if task is not None and task.per in df.columns:
        return task.per
    settings = setting_columns(df)
    if not settings:
        raise ResultsError(
            "no config column varies across trials, so there is nothing to compare; "
            f"config columns: {', '.join(config_columns(df)) or 'none'}"
        )
    return settings[0]


def default_metric(df: pd.DataFrame) -> str:
    """The task's objective metric (val_acc for IMDB, test_acc for its confirmation stage,
    synth_acc@t1 for the grammars), else the frame's first metric. An objective column with no
    value yet (every member diverged at once) still wins: the report then says it has none."""
    task = task_of(df)
    if task is not None:
        candidates = _objective_candidates(task)
        found = next((c for c in candidates if _reported(df, c)), None) or next((c for c in candidates if c in df), None)
        if found:
            return found
    available = metric_columns(df)
    if not available:
        raise ResultsError(f"the results hold no metric; columns: {', '.join(map(str, df.columns))}")
    return available[0]


def default_how(df: pd.DataFrame) -> str:
    """The task's epoch rule (peak or final) for scoring a seed-mean curve; peak if no task."""
    task = task_of(df)
    return task.objective.how if task is not None else "peak"


def require_columns(df: pd.DataFrame, names: Sequence[str], what: str = "column") -> list[str]:
    """Raise one ResultsError naming every missing column and listing the ones that exist."""
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise ResultsError(
            f"no {what} {', '.join(map(repr, missing))} in the results; available: {', '.join(map(str, df.columns))}"
        )
    return list(names)


def require_metrics(df: pd.DataFrame, names: Sequence[str]) -> list[str]:
    """Like `require_columns`, but lists the metrics (not every column) and rejects non-numbers."""
    available = metric_columns(df)
    bad = [n for n in names if n not in df.columns or not pd.api.types.is_numeric_dtype(df[n])]
    if bad:
        raise ResultsError(
            f"no metric {', '.join(map(repr, bad))} in the results; available metrics: {', '.join(available) or 'none'}"
        )
    return list(names)
