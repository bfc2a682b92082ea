"""Is model A better than model B? Welch's t-test, the mean difference with its CI, and the
probability of improvement P(X_a > X_b) with a bootstrap CI (as in rliable), in one sentence
that names the setting and epoch each side is read at.

Comparisons run only within one dataset: models are compared on the same data, never one
grammar against another (`comparisons` splits a frame by its `dataset` column first)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import stdtr, stdtrit  # Student t's CDF and its inverse, without scipy.stats' 1 s import

from rnnbench import metrics as m
from rnnbench.errors import ResultsError
from rnnbench.results.columns import default_how, default_metric, default_per, epoch_rule, higher_is_better
from rnnbench.results.stats import diverged_rows
from rnnbench.results.table import best

MIN_SEEDS_PROBABILITY = 3  # below this many seeds a side, P(A > B) takes 1 to 3 values: no interval
STRATA = ("dataset",)  # never compared across: each value is different data
MODEL_COLUMNS = ("model", "cell")  # what is compared within one dataset when `per` is the dataset


@dataclass(frozen=True)
class Comparison:
    """A vs B on one metric; `advantage` and its CI are signed so that > 0 means A is better
    (for a loss, A lower). `setting_a`/`setting_b` say where each side was read, e.g.
    "lr 0.3, peak epoch 7"."""

    a: str
    b: str
    metric: str
    values_a: tuple[float, ...]
    values_b: tuple[float, ...]
    advantage: float
    ci_low: float
    ci_high: float
    p_value: float
    prob_improvement: float
    prob_ci_low: float
    prob_ci_high: float
    ci: float
    n_diverged_a: int = 0
    n_diverged_b: int = 0
    setting_a: str = ""
    setting_b: str = ""

    @property
    def n_a(self) -> int:
        return len(self.values_a)

    @property
    def n_b(self) -> int:
        return len(self.values_b)

    def sentence(self) -> str:
        """E.g. "lstm (lr 0.3, peak epoch 7) beats elman (lr 0.1, peak epoch 9) on val_acc by 0.012
        (95% CI 0.003 to 0.021; Welch p = 0.02; P(lstm > elman) = 0.81, 95% CI 0.6 to 1; n = 5 vs 5)"."""
        level = f"{self.ci:.0%}"
        significant = self.p_value < 1 - self.ci
        flip = significant and self.advantage < 0
        a, b = (self.b, self.a) if flip else (self.a, self.b)
        at_a, at_b = (self.setting_b, self.setting_a) if flip else (self.setting_a, self.setting_b)
        n_a, n_b = (self.n_b, self.n_a) if flip else (self.n_a, self.n_b)
        sign = -1 if flip else 1
        diff, low, high = sign * self.advantage, *sorted((sign * self.ci_low, sign * self.ci_high))
        prob, p_low, p_high = (
            (1 - self.prob_improvement, 1 - self.prob_ci_high, 1 - self.prob_ci_low)
            if flip
            else (self.prob_improvement, self.prob_ci_low, self.prob_ci_high)
        )
        better = ">" if higher_is_better(self.metric) else "<"
        on = self.metric if better == ">" else f"{self.metric} (lower is better)"
        name_a, name_b = (f"{a} ({at_a})" if at_a else a), (f"{b} ({at_b})" if at_b else b)
        if min(n_a, n_b) < MIN_SEEDS_PROBABILITY:
            probability = f"P({a} {better} {b}): n too small (needs {MIN_SEEDS_PROBABILITY} seeds a side)"
        else:
            probability = f"P({a} {better} {b}) = {_num(prob, '.2f')}, {level} CI {_interval(p_low, p_high, '.2f')}"
        if min(n_a, n_b) < 2:
            test = "too few seeds for a test"
        elif not np.isfinite(self.p_value):
            test = "no test: every seed of both sides has the same value"
        else:
            test = f"{level} CI {_interval(low, high)}; Welch {_p(self.p_value)}"
        details = f"{test}; {probability}; n = {n_a} vs {n_b}"
        lead = (
            f"{name_a} beats {name_b} on {on} by {_num(diff)}"
            if significant
            else f"no clear difference between {name_a} and {name_b} on {on}: "
            f"{a} {'ahead' if diff >= 0 else 'behind'} by {_num(abs(diff))}"
        )
        dropped = self.n_diverged_a + self.n_diverged_b
        note = f"; {self.n_diverged_a} + {self.n_diverged_b} diverged seeds left out" if dropped else ""
        return f"{lead} ({details}{note})"

    def __str__(self) -> str:
        return self.sentence()


def _num(x: float, spec: str = ".3g") -> str:
    return "undefined" if not np.isfinite(x) else format(x, spec)


def _interval(low: float, high: float, spec: str = ".3g") -> str:
    if not (np.isfinite(low) and np.isfinite(high)):
        return "undefined"
    return f"{format(low, spec)} to {format(high, spec)}"


def _p(p: float) -> str:
    """ "p = 0.02", "p < 0.001" or "p undefined"."""
    return "p undefined" if not np.isfinite(p) else ("p < 0.001" if p < 0.001 else f"p = {p:.2g}")


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) for one draw from each sample, ties counted half (rliable's definition)."""
    x, y = np.asarray(x, float)[:, None], np.asarray(y, float)[None, :]
    return float(((x > y) + 0.5 * (x == y)).mean())


def _bootstrap_probability(x: np.ndarray, y: np.ndarray, ci: float, n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile CI of P(X > Y), resampling the seeds of each side independently; NaN below
    MIN_SEEDS_PROBABILITY seeds a side, where resamples of 1 or 2 values can only say 0, 0.5 or 1."""
    if min(len(x), len(y)) < MIN_SEEDS_PROBABILITY:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    xs = x[rng.integers(0, len(x), size=(n_boot, len(x)))][:, :, None]
    ys = y[rng.integers(0, len(y), size=(n_boot, len(y)))][:, None, :]
    probs = ((xs > ys) + 0.5 * (xs == ys)).mean(axis=(1, 2))
    low, high = np.quantile(probs, [(1 - ci) / 2, (1 + ci) / 2])
    return float(low), float(high)


def welch(x: np.ndarray, y: np.ndarray, ci: float = 0.95) -> tuple[float, float, float]:
    """Welch's t-test of mean(x) - mean(y): (two-sided p, CI low, CI high), as scipy's
    `ttest_ind(equal_var=False)` computes them. A side whose values are all equal has variance
    exactly 0 here (scipy computes a tiny rounding residue and warns of "catastrophic
    cancellation"); if both sides are constant there is no spread to test against, and every
    number is NaN."""
    var_x = 0.0 if np.ptp(x) == 0 else float(np.var(x, ddof=1))
    var_y = 0.0 if np.ptp(y) == 0 else float(np.var(y, ddof=1))
    diff = float(np.mean(x) - np.mean(y))
    a, b = var_x / len(x), var_y / len(y)
    if a + b == 0:
        return np.nan, np.nan, np.nan
    se = np.sqrt(a + b)
    dof = (a + b) ** 2 / (a**2 / (len(x) - 1) + b**2 / (len(y) - 1))
    p = float(2 * stdtr(dof, -abs(diff) / se))
    half = float(stdtrit(dof, (1 + ci) / 2) * se)
    return p, diff - half, diff + half


def compare_values(
    a: str, b: str, metric: str, values_a: np.ndarray, values_b: np.ndarray, ci: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> Comparison:
    """The comparison of two samples of per-seed values (the statistics without the lookup)."""
    xa, xb = np.asarray(values_a, float), np.asarray(values_b, float)
    sign = 1 if higher_is_better(metric) else -1
    advantage = sign * (xa.mean() - xb.mean()) if len(xa) and len(xb) else np.nan
    low = high = p = np.nan
    if min(len(xa), len(xb)) >= 2:
        p, raw_low, raw_high = welch(xa, xb, ci)
        low, high = sorted((sign * raw_low, sign * raw_high))
    prob_x, prob_y = (xa, xb) if sign > 0 else (-xa, -xb)
    prob = probability_of_improvement(prob_x, prob_y) if len(xa) and len(xb) else np.nan
    p_low, p_high = _bootstrap_probability(prob_x, prob_y, ci, n_boot, seed)
    return Comparison(a, b, metric, tuple(xa), tuple(xb), float(advantage), float(low), float(high), p, prob, p_low, p_high, ci)


def _setting(row: pd.Series, cells: list[str], per: str, how: str, metric: str) -> str:
    """Where one side was read: its other settings and the epoch rule, e.g. "lr 0.3, peak epoch 7"."""
    parts = [f"{c} {row[c]:g}" if isinstance(row[c], (float, np.floating)) else f"{c} {row[c]}" for c in cells if c != per]
    return ", ".join([*parts, f"{epoch_rule(how, metric)} epoch {row[m.EPOCH]}"])


def compare(
    df: pd.DataFrame,
    a: str,
    b: str,
    metric: str | None = None,
    per: str | None = None,
    how: str | None = None,
    ci: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    by: Sequence[str] | None = None,
) -> Comparison:
    """Compare `per` values a and b (models), each at its own best setting and epoch as chosen
    by `best(df, metric, per, how, by)`: one value per seed, diverged seeds left out and counted.

    Welch's test does not assume equal variances, which matters when one model is far less
    stable across seeds than the other; the probability of improvement says how often a
    seed of A beats a seed of B, which a p-value does not. Both sides must come from one
    dataset: a frame holding several is refused (filter it, or use `comparisons`).
    """
    metric = metric or default_metric(df)
    per = per or default_per(df)
    how = how or default_how(df)
    for stratum in STRATA:
        values = sorted(map(str, df[stratum].dropna().unique())) if stratum in df.columns else []
        if per == stratum or len(values) > 1:
            raise ResultsError(
                f"cannot compare across {stratum}s ({', '.join(values)}): each is different data; "
                f"compare models within one {stratum} (filter the frame on {stratum!r}), "
                "or call comparisons(df), which does"
            )
    table = best(df, metric=metric, per=per, how=how, ci=ci, by=by)
    names = table[per].astype(str).tolist()
    for name in (a, b):
        if name not in names:
            raise ResultsError(f"no {per} {name!r} with results for {metric}; available: {', '.join(names)}")
    cells = table.attrs["cells"]
    samples, dropped, settings = [], [], []
    for name in (a, b):
        row = table[table[per].astype(str) == name].iloc[0]
        mask = np.logical_and.reduce([df[c].astype(str) == str(row[c]) for c in cells])
        cell = df[mask]
        diverged = diverged_rows(cell)
        at_epoch = cell[~diverged & cell[m.EPOCH].eq(row[m.EPOCH])]
        samples.append(at_epoch[metric].dropna().to_numpy())
        dropped.append(int(cell.loc[diverged, "trial"].nunique()))
        settings.append(_setting(row, cells, per, how, metric))
    result = compare_values(a, b, metric, samples[0], samples[1], ci=ci, n_boot=n_boot, seed=seed)
    return dataclasses.replace(
        result, n_diverged_a=dropped[0], n_diverged_b=dropped[1], setting_a=settings[0], setting_b=settings[1]
    )


def comparisons(
    df: pd.DataFrame,
    metric: str | None = None,
    per: str | None = None,
    how: str | None = None,
    ci: float = 0.95,
    by: Sequence[str] | None = None,
) -> list[tuple[str, Comparison]]:
    """Every pairwise comparison worth making, as (dataset, Comparison) pairs ("" when the frame
    has no dataset column): within each dataset, every pair of `per` values (models) at their
    best settings. When `per` is the dataset itself (the grammars), the models or cells within
    each dataset are compared instead if there are several, else nothing is."""
    metric = metric or default_metric(df)
    per = per or default_per(df)
    how = how or default_how(df)
    stratum = next((s for s in STRATA if s in df.columns), None)
    out = []
    for name, part in df.groupby(stratum, sort=True) if stratum else [("", df)]:
        compared = per
        if per == stratum:
            compared = next((c for c in MODEL_COLUMNS if c in part.columns and part[c].nunique() > 1), None)
            if compared is None:
                continue
        values = sorted(part[compared].dropna().astype(str).unique())
        if len(values) < 2:
            continue
        keep_by = None if by is None else [c for c in by if c != stratum]
        out += [
            (str(name), compare(part, x, y, metric=metric, per=compared, how=how, ci=ci, by=keep_by))
            for x, y in itertools.combinations(values, 2)
        ]
    return out
