"""The study's tables: every grid cell scored by one epoch rule (the summary a sweep prints), the
best setting per model (Table 1, with uncertainty), and each trial's own best and final value.

One rule, `how`, picks the epoch everywhere (here, in `compare`, and in the sweeps' confirmation
stage): "peak" = the best epoch of a cell's seed-mean curve, "final" = its last epoch. All seeds
of a cell are then read at that same epoch; letting each seed pick its own best epoch would
report the luckiest epoch of every seed, a number no single training run delivers.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from rnnbench import metrics as m
from rnnbench.errors import ResultsError
from rnnbench.results.columns import (
    ID_COLUMNS,
    config_columns,
    default_how,
    default_metric,
    default_per,
    higher_is_better,
    require_columns,
    require_metrics,
    setting_columns,
)
from rnnbench.results.stats import aggregate, check_options, diverged_rows

# Statistics of the chosen epoch that a cell row carries (n_chance only with a chance_acc column).
_PICKED = ("mean", "std", "ci_low", "ci_high", "median", "q25", "q75", "iqr", "n", "n_chance")


def cell_columns(df: pd.DataFrame, per: str | None, by: Sequence[str] | None) -> list[str]:
    """Columns that define one grid cell: `by` if given, else the varying config minus seed;
    `per` always first."""
    cells = list(by) if by is not None else setting_columns(df, include=[per] if per else [])
    require_columns(df, cells, "grouping column")
    if per is not None:
        require_columns(df, [per], "column")
        cells = [per] + [c for c in cells if c != per]
    return cells


def default_loss(df: pd.DataFrame) -> str | None:
    for name in (m.TRAIN_LOSS, m.LOSS_PER_TOKEN, m.VAL_LOSS, m.TEST_LOSS):
        if name in df.columns and df[name].notna().any():
            return name
    return None


def _check_how(how: str) -> None:
    if how not in ("peak", "final"):
        raise ResultsError(f"how must be 'peak' or 'final', not {how!r}")


def cells_at_epoch(
    df: pd.DataFrame,
    metric: str,
    cells: list[str],
    how: str,
    ci: float = 0.95,
    diverged: str = "exclude",
    loss: str | None = None,
) -> pd.DataFrame:
    """One row per grid cell: the epoch `how` picks on the cell's seed-mean curve, the seeds'
    statistics at that epoch (mean, std, CI, median, quartiles, IQR, n, n_chance), the cell's
    trial counts, and the mean `loss` at the cell's last epoch as `final_<loss>`."""
    _check_how(how)
    metrics = [metric] + ([loss] if loss and loss != metric else [])
    agg = aggregate(df, by=[*cells, m.EPOCH], metrics=metrics, diverged=diverged, ci=ci)
    curves = agg[(agg["metric"] == metric) & agg["n"].gt(0) & agg["mean"].notna()]
    if curves.empty:
        raise ResultsError(f"no trial has a finite {metric} to rank")
    curves = curves.sort_values([*cells, m.EPOCH])
    if how == "peak":
        sign = 1 if higher_is_better(metric) else -1
        picked = curves.loc[(sign * curves["mean"]).groupby([curves[c] for c in cells]).idxmax()]
    else:
        picked = curves.groupby(cells, sort=True).tail(1)
    out = picked[[*cells, m.EPOCH, *[c for c in _PICKED if c in picked]]].set_index(cells)
    out = out.join(_trial_counts(df, cells))
    if loss:
        losses = agg[(agg["metric"] == loss) & agg["n"].gt(0)].sort_values(m.EPOCH)
        out[f"final_{loss}"] = losses.groupby(cells)["mean"].last()
    out = out.reset_index()
    out.insert(len(cells), "metric", metric)
    out.attrs = {"ci": ci, "ci_method": agg.attrs["ci_method"][metric], "how": how, "metric": metric, "cells": cells}
    return out


def best(
    df: pd.DataFrame,
    metric: str | None = None,
    per: str | None = None,
    how: str | None = None,
    by: Sequence[str] | None = None,
    ci: float = 0.95,
    diverged: str = "exclude",
    loss: str | None = None,
) -> pd.DataFrame:
    """Per `per` value (model), the setting (lr) with the best mean `metric` across seeds.

    Every cell is scored by `cells_at_epoch` (`how="peak"`: the best epoch of its seed-mean
    curve, `how="final"`: its last) and the best-scoring cell of each model is kept, with that
    epoch's mean, std, CI, median, IQR and n, the cell's trial counts, and the mean final `loss`
    (train_loss by default). A cell in which any seed diverged is only chosen if every cell of
    that model diverged: a learning rate that blows up for some seeds is not a setting to
    recommend, however good its survivors look. `n_diverged` shows it either way. Metric, per
    and how default to the task's (see columns.py).
    """
    how = how or default_how(df)
    _check_how(how)
    metric = metric or default_metric(df)
    per = per or default_per(df)
    loss = loss if loss is not None else default_loss(df)
    cells = cell_columns(df, per, by)
    require_metrics(df, [metric] + ([loss] if loss else []))
    table = cells_at_epoch(df, metric, cells, how, ci, diverged, loss)
    score = (1 if higher_is_better(metric) else -1) * table["mean"]
    eligible = table["n_diverged"].eq(0)
    eligible |= ~eligible.groupby(table[per]).transform("any")
    chosen = (
        table[eligible]
        .assign(_score=score[eligible])
        .sort_values("_score", ascending=False)
        .drop_duplicates(per)
        .sort_values(per)
    )
    out = chosen.drop(columns="_score").reset_index(drop=True)
    out.attrs = {**table.attrs, "per": per}
    return out


def _trial_counts(df: pd.DataFrame, cells: list[str]) -> pd.DataFrame:
    """Trials per cell by outcome, counted once per trial whatever its number of epochs."""
    trials = df.assign(_diverged=diverged_rows(df), _errored=df["status"].eq("errored") if "status" in df else False)
    trials = trials.drop_duplicates("trial")
    return trials.groupby(cells, dropna=True).agg(
        n_trials=("trial", "size"), n_diverged=("_diverged", "sum"), n_errored=("_errored", "sum")
    )


def per_trial(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Each trial's best epoch value (`best`) and last reported value (`final`) of `metric`,
    with its config and status: the numbers a seed contributes on its own."""
    require_metrics(df, [metric])
    values = df.groupby("trial", sort=False)[metric]
    head = df.drop_duplicates("trial").set_index("trial")
    head = head[[c for c in (*ID_COLUMNS, *config_columns(df)) if c in head.columns]]
    out = head.assign(best=values.max() if higher_is_better(metric) else values.min(), final=values.last())
    return out.reset_index()


def summary_table(
    df: pd.DataFrame,
    metric: str | None = None,
    how: str | None = None,
    by: Sequence[str] | None = None,
    ci: float = 0.95,
    per: str | None = None,
) -> pd.DataFrame:
    """The table a sweep prints: every grid cell (model × lr) at the epoch `how` picks on its
    seed-mean curve, by the same rule `best` and `compare` use, with the seeds' mean, std, CI,
    median, IQR, n, how many seeds sat at chance level, diverged or errored, and the final
    training loss.

    Diverged seeds are left out of the numbers and counted in `n_diverged` (see stats.py).
    Cells are the `by` columns, else the varying settings with `per` (default: the task's) first.
    Render with `render(summary_table(df))`.
    """
    check_options("exclude", ci)
    metric = metric or default_metric(df)
    how = how or default_how(df)
    if by is None:
        per = per or default_per(df)
    cells = cell_columns(df, per, by)
    if not cells:
        raise ResultsError("no config column varies across trials; pass by=[...] to group")
    require_metrics(df, [metric])
    return cells_at_epoch(df, metric, cells, how, ci, loss=default_loss(df))
