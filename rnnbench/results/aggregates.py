"""Aggregates across tasks in the manner of rliable (Agarwal et al., NeurIPS 2021, "Deep RL at the
edge of the statistical precipice"): the interquartile mean (IQM) and median of every run of a
setting over every task (the grammars, or several experiments concatenated with a column naming
each), with stratified-bootstrap intervals, and the runs behind them for performance profiles.

The IQM is the mean of the middle 50% of runs: unlike the mean it is not dragged by one seed that
failed or diverged, and unlike the median it uses half the runs, not one or two. Scores are not
normalized across tasks; accuracies already share one scale. The stratified bootstrap resamples
seeds within each task independently, so every resample keeps each task's share of runs. Like
any percentile bootstrap it runs narrow with few runs (stats.py: 0.83 coverage for a mean of 5),
so every row says how many runs and tasks it rests on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from rnnbench import metrics as m
from rnnbench.errors import ResultsError
from rnnbench.results.columns import default_how, default_metric, default_per, epoch_rule, higher_is_better, unit
from rnnbench.results.stats import diverged_rows
from rnnbench.results.table import cell_columns, cells_at_epoch

TASK = "dataset"  # the column naming a task, unless told otherwise


def iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean along the last axis: 25% of the runs cut from each end (as
    scipy.stats.trim_mean(x, 0.25), which rliable uses), the rest averaged."""
    n = scores.shape[-1]
    cut = int(0.25 * n)
    return np.sort(scores, axis=-1)[..., cut : n - cut].mean(axis=-1)


def run_scores(
    df: pd.DataFrame,
    metric: str | None = None,
    per: str | None = None,
    how: str | None = None,
    task: str = TASK,
    by: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Every run's score, one row per (setting, task, seed), each (setting, task) cell read at
    the epoch `how` picks on its seed-mean curve (diverged seeds left out); and the setting
    columns (the grid cell's columns but the task)."""
    metric = metric or default_metric(df)
    per = per or default_per(df)
    how = how or default_how(df)
    cells = cell_columns(df, per, by)
    keys = [c for c in cells if c != task]
    if not keys:
        raise ResultsError(f"nothing varies across trials but {task!r}: no settings to aggregate across tasks")
    picked = cells_at_epoch(df, metric, cells, how)[[*cells, m.EPOCH]]
    rows = df[~diverged_rows(df)].merge(picked, on=[*cells, m.EPOCH])
    rows = rows[rows[metric].notna()]
    return rows[[*keys, *([task] if task in rows else []), metric]].reset_index(drop=True), keys


def task_runs(part: pd.DataFrame, metric: str, task: str) -> list[np.ndarray]:
    """One setting's run scores, an array per task (one array when there is no task column)."""
    return [g[metric].to_numpy(float) for _, g in part.groupby(task)] if task in part else [part[metric].to_numpy(float)]


def stratified_bootstrap(tasks: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """`n_boot` resamples of all runs, (n_boot, runs): each task's seeds resampled on their own."""
    return np.concatenate([runs[rng.integers(0, len(runs), (n_boot, len(runs)))] for runs in tasks], axis=1)


def across_tasks(
    df: pd.DataFrame,
    metric: str | None = None,
    per: str | None = None,
    how: str | None = None,
    task: str = TASK,
    ci: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    by: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per setting (e.g. lr for the grammars, model × lr for IMDB), the IQM and median of its
    runs over all tasks with stratified-bootstrap CIs: columns `n_tasks`, `n_runs`, `iqm`,
    `iqm_low`, `iqm_high`, `median`, `median_low`, `median_high`, and `n_diverged` (seeds left
    out); best first. `attrs["caption"]`
    says what the numbers are (metric, unit, epoch rule, method, n)."""
    metric = metric or default_metric(df)
    how = how or default_how(df)
    scores, keys = run_scores(df, metric, per, how, task, by)
    rng = np.random.default_rng(seed)
    tail = (1 - ci) / 2
    rows = []
    for key, part in scores.groupby(keys, sort=True):
        tasks = task_runs(part, metric, task)
        runs = np.concatenate(tasks)
        boot = stratified_bootstrap(tasks, n_boot, rng)
        iqm_low, iqm_high = np.quantile(iqm(boot), [tail, 1 - tail])
        median_low, median_high = np.quantile(np.median(boot, axis=1), [tail, 1 - tail])
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        rows.append(
            {
                **row,
                "n_tasks": len(tasks),
                "n_runs": len(runs),
                "iqm": float(iqm(runs)),
                "iqm_low": iqm_low,
                "iqm_high": iqm_high,
                "median": float(np.median(runs)),
                "median_low": median_low,
                "median_high": median_high,
            }
        )
    trials = df.assign(_diverged=diverged_rows(df)).drop_duplicates("trial")
    out = pd.DataFrame(rows).merge(trials.groupby(keys)["_diverged"].sum().rename("n_diverged").reset_index(), on=keys)
    out = out.sort_values("iqm", ascending=not higher_is_better(metric), ignore_index=True)
    what = f"{metric} ({unit(metric)})" if unit(metric) else metric
    out.attrs = {
        "metric": metric,
        "keys": keys,
        "caption": f"{what} at each cell's {epoch_rule(how, metric)} epoch: interquartile mean (IQM) and median of "
        f"n_runs runs (seeds × n_tasks tasks), {ci:.0%} CI by stratified percentile bootstrap ({n_boot} resamples, "
        "seeds resampled within each task).",
    }
    return out


def leaders(table: pd.DataFrame) -> pd.DataFrame:
    """From `across_tasks`, the best setting (by IQM) of each value of its first setting column:
    each model's best lr for IMDB, each lr for the grammars. As in `best`, a setting in which a
    seed diverged is only chosen if every setting of that value had one."""
    order = table["n_diverged"].gt(0).sort_values(kind="stable").index
    return table.loc[order].drop_duplicates(table.attrs["keys"][0]).sort_index().reset_index(drop=True)


def setting_label(row: pd.Series, keys: list[str]) -> str:
    """ "lr 0.3" for one setting column, "lstm (lr 0.1)" for several."""
    values = [f"{row[c]:g}" if isinstance(row[c], (float, np.floating)) else str(row[c]) for c in keys]
    if len(keys) == 1:
        return f"{keys[0]} {values[0]}"
    return f"{values[0]} ({', '.join(f'{c} {v}' for c, v in zip(keys[1:], values[1:]))})"
