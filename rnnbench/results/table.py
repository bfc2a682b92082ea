"""The study's tables: the best learning rate per model (Table 1, with uncertainty) and the
per-cell summary a sweep prints, plus a renderer to text, Markdown or CSV."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from rnnbench import metrics as m
from rnnbench.results.columns import (ID_COLUMNS, config_columns, default_how, default_metric, default_per,
                                      higher_is_better, require_columns, require_metrics,
                                      setting_columns)
from rnnbench.results.errors import ResultsError
from rnnbench.results.stats import _check_options, _diverged_rows, aggregate


def _settings(df: pd.DataFrame, per: str | None, by: Sequence[str] | None) -> list[str]:
    """Columns that define one grid cell: `by` if given, else the varying config minus seed;
    `per` always first."""
    cells = list(by) if by is not None else setting_columns(df, include=[per] if per else [])
    require_columns(df, cells, "grouping column")
    if per is not None:
        require_columns(df, [per], "column")
        cells = [per] + [c for c in cells if c != per]
    return cells


def _default_loss(df: pd.DataFrame) -> str | None:
    for name in (m.TRAIN_LOSS, m.LOSS_PER_TOKEN, m.VAL_LOSS, m.TEST_LOSS):
        if name in df.columns and df[name].notna().any():
            return name
    return None


def best(df: pd.DataFrame, metric: str | None = None, per: str | None = None, how: str | None = None,
         by: Sequence[str] | None = None, ci: float = 0.95, diverged: str = "exclude",
         loss: str | None = None) -> pd.DataFrame:
    """Per `per` value (model), the setting (lr) with the best mean `metric` across seeds.

    The seed-mean curve of each cell is taken per epoch; `how="peak"` scores a cell by its best
    epoch, `how="final"` by its last. The row holds that epoch's mean, std, CI and n, the
    cell's trial counts, and the mean final `loss` (train_loss by default) at the last epoch.
    A cell in which any seed diverged is only chosen if every cell of that model diverged:
    a learning rate that blows up for some seeds is not a setting to recommend, however good
    its survivors look. `n_diverged` shows it either way. Metric, per and how default to the
    task's (see columns.py).
    """
    how = how or default_how(df)
    if how not in ("peak", "final"):
        raise ResultsError(f"how must be 'peak' or 'final', not {how!r}")
    metric = metric or default_metric(df)
    per = per or default_per(df)
    loss = loss if loss is not None else _default_loss(df)
    cells = _settings(df, per, by)
    require_metrics(df, [metric] + ([loss] if loss else []))
    agg = aggregate(df, by=[*cells, m.EPOCH], metrics=[metric] + ([loss] if loss and loss != metric else []),
                    diverged=diverged, ci=ci)
    trial_counts = _trial_counts(df, cells)
    curves = agg[(agg["metric"] == metric) & agg["n"].gt(0) & agg["mean"].notna()]
    if curves.empty:
        raise ResultsError(f"no trial has a finite {metric} to rank")
    sign = 1 if higher_is_better(metric) else -1
    rows = []
    for key, curve in curves.groupby(cells, sort=True):
        curve = curve.sort_values(m.EPOCH)
        pick = curve.loc[(sign * curve["mean"]).idxmax()] if how == "peak" else curve.iloc[-1]
        row = pick[[*cells, m.EPOCH, "mean", "std", "ci_low", "ci_high", "n"]].to_dict()
        row.update(trial_counts.loc[key if len(cells) > 1 else key[0]].to_dict())
        if loss:
            last = agg[(agg["metric"] == loss) & agg["n"].gt(0)]
            last = last.merge(curve[cells].head(1), on=cells)
            row[f"final_{loss}"] = last.sort_values(m.EPOCH)["mean"].iloc[-1] if len(last) else np.nan
        row["score"] = sign * row["mean"]
        rows.append(row)
    table = pd.DataFrame(rows)
    table["eligible"] = table["n_diverged"].eq(0)
    table["eligible"] |= ~table.groupby(per)["eligible"].transform("any")
    chosen = (table[table["eligible"]].sort_values("score", ascending=False)
              .drop_duplicates(per).sort_values(per))
    out = chosen.drop(columns=["score", "eligible"]).reset_index(drop=True)
    out.insert(len(cells), "metric", metric)
    out.attrs = {"ci": ci, "how": how, "metric": metric, "per": per, "cells": cells}
    return out


def _trial_counts(df: pd.DataFrame, cells: list[str]) -> pd.DataFrame:
    """Trials per cell by outcome, counted once per trial whatever its number of epochs."""
    trials = df.assign(_diverged=_diverged_rows(df),
                       _errored=df["status"].eq("errored") if "status" in df else False)
    trials = trials.drop_duplicates("trial")
    return trials.groupby(cells, dropna=True).agg(
        n_trials=("trial", "size"), n_diverged=("_diverged", "sum"), n_errored=("_errored", "sum"))


def per_trial(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Each trial's best epoch value (`best`) and last reported value (`final`) of `metric`,
    with its config and status: the numbers a seed contributes to a summary."""
    require_metrics(df, [metric])
    values = df.groupby("trial", sort=False)[metric]
    head = df.drop_duplicates("trial").set_index("trial")
    head = head[[c for c in (*ID_COLUMNS, *config_columns(df)) if c in head.columns]]
    out = head.assign(best=values.max() if higher_is_better(metric) else values.min(),
                      final=values.last())
    return out.reset_index()


def summary_table(df: pd.DataFrame, metric: str | None = None, by: Sequence[str] | None = None,
                  ci: float = 0.95) -> pd.DataFrame:
    """The table a sweep prints: per grid cell (model × lr), over seeds, the mean ± std and CI of
    each seed's best-epoch and final `metric`, n, and how many seeds diverged or errored.

    Diverged seeds are left out of the numbers and counted in `n_diverged` (see stats.py).
    Render with `render(summary_table(df))`.
    """
    _check_options("exclude", ci)
    metric = metric or default_metric(df)
    cells = _settings(df, next((c for c in ("model", "dataset") if c in df.columns), None), by)
    if not cells:
        raise ResultsError("no config column varies across trials; pass by=[...] to group")
    trials = per_trial(df, metric)
    agg = aggregate(trials, by=cells, metrics=["best", "final"], ci=ci)
    wide = agg.pivot_table(index=cells, columns="metric",
                           values=["mean", "std", "ci_low", "ci_high", "n"], dropna=False)
    out = pd.DataFrame(index=wide.index)
    first = agg.drop_duplicates(cells).set_index(cells)
    out["n"] = wide[("n", "final")].astype(int)
    for kind in ("best", "final"):
        for stat in ("mean", "std", "ci_low", "ci_high"):
            out[f"{kind}_{stat}"] = wide[(stat, kind)]
    out[["n_diverged", "n_errored"]] = first[["n_diverged", "n_errored"]]
    out = out.reset_index()
    out.insert(len(cells), "metric", metric)
    out.attrs = {"ci": ci, "metric": metric}
    return out
