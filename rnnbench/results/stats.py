"""Per-group statistics over seeds: n, mean, spread, median and IQR, a confidence interval that
stays inside the metric's range, and how many trials diverged, errored or sat at chance level.

The confidence interval of a mean over seeds is Student's t interval cut to the metric's range
(`bounds`: [0, 1] for accuracies, [0, inf) for losses). The true mean of a bounded metric lies in
its range, so cutting the t interval there never loses coverage; it only drops values that are
impossible (n = 2 seeds of 0.71 and 0.80 give t = [0.18, 1.33], reported as [0.18, 1]). Where
seeds tie (most grammar seeds sit at exactly 1.0) the t interval shrinks toward zero width and
covers 0.63 to 0.90 of the time at 2 to 10 seeds; `tied_interval` widens it on the side the ties
hide (simulated coverage >= 0.93 from 3 seeds, tests/test_results_stats.py). The
percentile bootstrap also stays in range, but with a handful of seeds it is far too narrow
(simulated 95% intervals, accuracies drawn from beta distributions: coverage 0.49-0.51 at n = 2,
0.72-0.74 at n = 3, 0.82-0.84 at n = 5, against 0.92-0.96 for t), so it is only used when asked
for (`bootstrap=` resamples), and the method is named in every table header.

Diverged trials are never averaged silently. `diverged="exclude"` (the default) leaves their
rows out and reports them in `n_diverged`: a run whose loss became NaN has no accuracy to
average, and mixing its pre-divergence epochs into a curve would make the curve jump where it
drops out. `diverged="include"` keeps their rows; a group that then holds a NaN or infinite
value from a diverged trial gets undefined (NaN) statistics instead of a mean over the finite
rest, so a divergence can never disappear into an average.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import betaincinv, stdtrit  # Beta and Student t quantiles, without scipy.stats' 1 s import

from rnnbench import metrics as m
from rnnbench.errors import ResultsError
from rnnbench.results.columns import STATUS_DIVERGED, STATUS_ERRORED, bounds, metric_columns, require_columns, require_metrics

STAT_COLUMNS = (
    "n",
    "mean",
    "std",
    "var",
    "sem",
    "ci_low",
    "ci_high",
    "median",
    "q25",
    "q75",
    "iqr",
    "min",
    "max",
    "n_trials",
    "n_diverged",
    "n_errored",
)
_LOCATION = ("mean", "std", "var", "sem", "ci_low", "ci_high", "median", "q25", "q75", "iqr", "min", "max")

CHANCE = m.CHANCE_ACC  # per-epoch majority-class share of the eval split, reported by the classifier loop
CHANCE_MARGIN = 0.01  # a trial is "at chance" when its accuracy is <= chance_acc + this


def t_interval(
    mean: np.ndarray | float, std: np.ndarray | float, n: np.ndarray | float, ci: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Student-t interval for a mean: mean ± t_{(1+ci)/2, n-1} · std/√n; NaN where n < 2,
    because one seed says nothing about spread (a zero-width interval would lie)."""
    mean, std, n = (np.asarray(x, dtype=float) for x in (mean, std, n))
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stdtrit(n - 1, (1 + ci) / 2) * std / np.sqrt(n)
    half = np.where(n >= 2, half, np.nan)
    return mean - half, mean + half


def bounded_t_interval(
    mean: np.ndarray | float, std: np.ndarray | float, n: np.ndarray | float, ci: float = 0.95, metric: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """`t_interval` cut to the range of `metric` (see the module docstring for why)."""
    low, high = t_interval(mean, std, n, ci)
    lo, hi = bounds(metric)
    return np.clip(low, lo, hi), np.clip(high, lo, hi)


def tied_interval(values: np.ndarray, ci: float = 0.95, metric: str = "") -> tuple[float, float]:
    """The interval of a mean over seeds some of which tie, at a bound of the metric or all at one
    value, where the t interval shrinks toward zero width though the seeds say little.

    The t interval is widened on the side the ties hide: with k of n seeds at the upper bound b,
    the share of seeds at b may be as low as q, the one-sided (1 - ci) / 2 Clopper-Pearson bound
    of k / n, and the other seeds' mean as low as their own t interval's lower end (the metric's
    lower bound when fewer than two of them, or none, vary): the mean is then at least
    q b + (1 - q) that; the same, mirrored, for ties at the lower bound. n seeds that all tie at one
    value inside the range get q v + (1 - q) times each bound. Simulated coverage in tests/."""
    values = values[np.isfinite(values)]
    n, lo, hi = len(values), *bounds(metric)
    if n < 2:
        return np.nan, np.nan
    tail = (1 - ci) / 2
    low, high = (float(x) for x in bounded_t_interval(values.mean(), values.std(ddof=1), n, ci, metric))
    if values.min() == values.max() and lo < values[0] < hi:
        q = tail ** (1 / n)
        return q * values[0] + (1 - q) * lo, q * values[0] + (1 - q) * hi
    for bound, other in ((hi, lo), (lo, hi)):
        tied = int((values == bound).sum())
        if tied and np.isfinite(bound):
            q = float(betaincinv(tied, n - tied + 1, tail))  # the share at the bound, at least
            rest = values[values != bound]
            if len(rest) == 1:  # its spread unknown: taken as wide as its distance from the bound
                other = max(lo, 2 * rest[0] - bound) if bound == hi else min(hi, 2 * rest[0] - bound)
            elif len(rest) >= 2 and rest.min() < rest.max():
                r_low, r_high = bounded_t_interval(rest.mean(), rest.std(ddof=1), len(rest), ci, metric)
                other = float(r_low if bound == hi else r_high)
            reach = q * bound + (1 - q) * other
            low, high = (min(low, reach), high) if bound == hi else (low, max(high, reach))
    return low, high


def ci_method(metric: str, bootstrap: int | None = None) -> str:
    """The interval's method as table headers name it, e.g. "t, cut to [0, 1], widened at ties"."""
    if bootstrap:
        return f"percentile bootstrap, {bootstrap} resamples"
    lo, hi = bounds(metric)
    if np.isinf(lo) and np.isinf(hi):
        return "t"
    return f"t, cut to [{lo:g}, {'inf)' if np.isinf(hi) else f'{hi:g}]'}, widened at ties"


def bootstrap_interval(values: np.ndarray, ci: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, reproducible from `seed`; NaN below 2 values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - ci) / 2, (1 + ci) / 2])
    return float(low), float(high)


def at_chance(df: pd.DataFrame, metric: str) -> pd.Series | None:
    """Per row, whether a classifier's `metric` is at chance level (<= chance_acc + 0.01); None
    when there is no chance_acc column or the metric is not a classifier accuracy."""
    if CHANCE not in df.columns or metric == CHANCE or not metric.endswith("_acc"):
        return None
    return df[metric].le(df[CHANCE] + CHANCE_MARGIN)


def check_options(diverged: str, ci: float) -> None:
    if diverged not in ("exclude", "include"):
        raise ResultsError(f"diverged must be 'exclude' or 'include', not {diverged!r}")
    if not 0 < ci < 1:
        raise ResultsError(f"ci must be between 0 and 1 (e.g. 0.95), not {ci}")


def diverged_rows(df: pd.DataFrame) -> pd.Series:
    """Rows that belong to a diverged trial (status from `load`, else the per-row flag)."""
    if "status" in df:
        return df["status"].eq(STATUS_DIVERGED)
    if "diverged" in df:
        flagged = df.loc[df["diverged"].eq(True), "trial"].unique()
        return df["trial"].isin(flagged)
    return pd.Series(False, index=df.index)


def aggregate(
    df: pd.DataFrame,
    by: Sequence[str] = ("model", "lr", "epoch"),
    metrics: Sequence[str] | None = None,
    diverged: str = "exclude",
    ci: float = 0.95,
    bootstrap: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (group, metric) with n, mean, std, var, sem, ci_low/ci_high, median, q25, q75,
    iqr, min, max, the group's n_trials, n_diverged and n_errored, and, when the frame has a
    chance_acc column, n_chance (values at chance level; <NA> for metrics other than a
    classifier's accuracies).

    `n` counts the values that entered the statistics (trials that reported the metric);
    `n_trials` all trials in the group, whatever their status. CIs are t intervals cut to the
    metric's range unless `bootstrap` gives a number of resamples (seeded by `seed`, the same for
    every group); `attrs["ci_method"]` names the method per metric.
    Long format, so a metric is one filter away: `agg[agg.metric == "val_acc"]`.
    """
    check_options(diverged, ci)
    by = require_columns(df, list(by), "grouping column")
    require_columns(df, ["trial"])
    metrics = require_metrics(df, list(metrics) if metrics is not None else metric_columns(df))
    if not metrics:
        raise ResultsError("no metric to aggregate; pass metrics=[...] naming numeric columns")
    bad_rows = diverged_rows(df)
    data = df.loc[~bad_rows] if diverged == "exclude" else df

    trials = (
        df[["trial", *by]]
        .assign(
            _diverged=bad_rows,
            _errored=df["status"].eq(STATUS_ERRORED) if "status" in df else False,
        )
        .drop_duplicates(["trial", *by])
    )
    counts = trials.groupby(by, dropna=True).agg(
        n_trials=("trial", "size"), n_diverged=("_diverged", "sum"), n_errored=("_errored", "sum")
    )

    keys = [data[c] for c in by]
    grouped = data.groupby(keys, dropna=True, sort=True)
    chance_counted = CHANCE in df.columns
    parts = []
    for metric in metrics:
        g = grouped[metric]
        part = pd.DataFrame(
            {
                "n": g.count(),
                "mean": g.mean(),
                "std": g.std(ddof=1),
                "var": g.var(ddof=1),
                "median": g.median(),
                "q25": g.quantile(0.25),
                "q75": g.quantile(0.75),
                "min": g.min(),
                "max": g.max(),
            }
        )
        tied = part["n"].ge(2) & part["min"].eq(part["max"])
        part.loc[tied, ["std", "var"]] = 0.0  # exactly, where rounding in the mean leaves a residue
        part["sem"] = part["std"] / np.sqrt(part["n"])
        part["iqr"] = part["q75"] - part["q25"]
        if bootstrap:
            intervals = [bootstrap_interval(v.dropna().to_numpy(), ci, bootstrap, seed) for _, v in g]
            part["ci_low"] = [b[0] for b in intervals]
            part["ci_high"] = [b[1] for b in intervals]
        else:
            part["ci_low"], part["ci_high"] = bounded_t_interval(part["mean"], part["std"], part["n"], ci, metric)
            at_bound = data[metric].isin(bounds(metric)).groupby(keys).any()
            ties = (at_bound | tied).to_numpy()
            if ties.any():
                widened = [tied_interval(v.to_numpy(dtype=float), ci, metric) for (_, v), tie in zip(g, ties) if tie]
                part.loc[ties, ["ci_low", "ci_high"]] = widened
        if diverged == "include":
            values = data[metric].astype(float)
            nonfinite = bad_rows & ~np.isfinite(values)
            part["n"] += (nonfinite & values.isna()).groupby(keys).sum()  # count() skipped NaN
            part.loc[nonfinite.groupby(keys).sum() > 0, list(_LOCATION)] = np.nan
        if chance_counted:
            chance = at_chance(data, metric)
            part["n_chance"] = (
                chance.groupby(keys).sum().astype("Int64")
                if chance is not None
                else pd.Series(pd.NA, index=part.index, dtype="Int64")
            )
        part = part.reindex(counts.index)  # cells where every trial diverged stay, with n = 0
        part.insert(0, "metric", metric)
        parts.append(part)
    out = pd.concat(parts).join(counts)
    out[["n", "n_trials", "n_diverged", "n_errored"]] = out[["n", "n_trials", "n_diverged", "n_errored"]].fillna(0).astype(int)
    out = out.reset_index()[[*by, "metric", *STAT_COLUMNS, *(["n_chance"] if chance_counted else [])]]
    out.attrs = {"ci": ci, "ci_method": {metric: ci_method(metric, bootstrap) for metric in metrics}, "diverged": diverged}
    return out
