"""Is model A better than model B? Welch's t-test, the mean difference with its CI, and the
probability of improvement P(X_a > X_b) with a bootstrap CI (as in rliable), in one sentence."""

from __future__ import annotations

from collections.abc import Sequence

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from rnnbench import metrics as m
from rnnbench.results.columns import default_metric, default_per, higher_is_better
from rnnbench.results.errors import ResultsError
from rnnbench.results.stats import _diverged_rows
from rnnbench.results.table import best


@dataclass(frozen=True)
class Comparison:
    """A vs B on one metric; `advantage` and its CI are signed so that > 0 means A is better
    (for a loss, A lower)."""

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

    @property
    def n_a(self) -> int:
        return len(self.values_a)

    @property
    def n_b(self) -> int:
        return len(self.values_b)

    def sentence(self) -> str:
        """E.g. "lstm beats elman on val_acc by 0.012 (95% CI 0.003 to 0.021; Welch p = 0.02;
        P(lstm > elman) = 0.81, 95% CI 0.6 to 1; n = 5 vs 5)"."""
        level = f"{self.ci:.0%}"
        significant = self.p_value < 1 - self.ci
        flip = significant and self.advantage < 0
        a, b = (self.b, self.a) if flip else (self.a, self.b)
        n_a, n_b = (self.n_b, self.n_a) if flip else (self.n_a, self.n_b)
        sign = -1 if flip else 1
        diff, low, high = sign * self.advantage, *sorted((sign * self.ci_low, sign * self.ci_high))
        prob, p_low, p_high = ((1 - self.prob_improvement, 1 - self.prob_ci_high, 1 - self.prob_ci_low)
                               if flip else (self.prob_improvement, self.prob_ci_low, self.prob_ci_high))
        better = ">" if higher_is_better(self.metric) else "<"
        on = self.metric if better == ">" else f"{self.metric} (lower is better)"
        details = (f"{level} CI {_interval(low, high)}; Welch p = {_p(self.p_value)}; "
                   f"P({a} {better} {b}) = {_num(prob, '.2f')}, {level} CI {_interval(p_low, p_high, '.2f')}; "
                   f"n = {n_a} vs {n_b}")
        lead = (f"{a} beats {b} on {on} by {_num(diff)}" if significant else
                f"no clear difference between {a} and {b} on {on}: "
                f"{a} {'ahead' if diff >= 0 else 'behind'} by {_num(abs(diff))}")
        dropped = self.n_diverged_a + self.n_diverged_b
        note = (f"; {self.n_diverged_a} + {self.n_diverged_b} diverged seeds left out" if dropped else "")
        if min(self.n_a, self.n_b) < 2:
            note += "; too few seeds for a test"
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
    return "undefined" if not np.isfinite(p) else ("< 0.001" if p < 0.001 else f"{p:.2g}")


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) for one draw from each sample, ties counted half (rliable's definition)."""
    x, y = np.asarray(x, float)[:, None], np.asarray(y, float)[None, :]
    return float(((x > y) + 0.5 * (x == y)).mean())


def _bootstrap_probability(x: np.ndarray, y: np.ndarray, ci: float, n_boot: int,
                           seed: int) -> tuple[float, float]:
    """Percentile CI of P(X > Y), resampling the seeds of each side independently."""
    if min(len(x), len(y)) < 2:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    xs = x[rng.integers(0, len(x), size=(n_boot, len(x)))][:, :, None]
    ys = y[rng.integers(0, len(y), size=(n_boot, len(y)))][:, None, :]
    probs = ((xs > ys) + 0.5 * (xs == ys)).mean(axis=(1, 2))
    low, high = np.quantile(probs, [(1 - ci) / 2, (1 + ci) / 2])
    return float(low), float(high)


def compare_values(a: str, b: str, metric: str, values_a: np.ndarray, values_b: np.ndarray,
                   ci: float = 0.95, n_boot: int = 2000, seed: int = 0) -> Comparison:
    """The comparison of two samples of per-seed values (the statistics without the lookup)."""
    xa, xb = np.asarray(values_a, float), np.asarray(values_b, float)
    sign = 1 if higher_is_better(metric) else -1
    advantage = sign * (xa.mean() - xb.mean()) if len(xa) and len(xb) else np.nan
    low = high = p = np.nan
    if min(len(xa), len(xb)) >= 2:
        test = sps.ttest_ind(xa, xb, equal_var=False)
        p = float(test.pvalue)
        bounds = test.confidence_interval(confidence_level=ci)
        low, high = sorted((sign * bounds.low, sign * bounds.high))
    prob_x, prob_y = (xa, xb) if sign > 0 else (-xa, -xb)
    prob = probability_of_improvement(prob_x, prob_y) if len(xa) and len(xb) else np.nan
    p_low, p_high = _bootstrap_probability(prob_x, prob_y, ci, n_boot, seed)
    return Comparison(a, b, metric, tuple(xa), tuple(xb), float(advantage), float(low), float(high),
                      p, prob, p_low, p_high, ci)


def compare(df: pd.DataFrame, a: str, b: str, metric: str | None = None, per: str | None = None,
            how: str | None = None, ci: float = 0.95, n_boot: int = 2000, seed: int = 0,
            by: Sequence[str] | None = None) -> Comparison:
    """Compare `per` values a and b (models), each at its own best setting and epoch as chosen
    by `best(df, metric, per, how, by)`: one value per seed, diverged seeds left out and counted.

    Welch's test does not assume equal variances, which matters when one model is far less
    stable across seeds than the other; the probability of improvement says how often a
    seed of A beats a seed of B, which a p-value does not.
    """
    metric = metric or default_metric(df)
    per = per or default_per(df)
    table = best(df, metric=metric, per=per, how=how, ci=ci, by=by)
    names = table[per].astype(str).tolist()
    for name in (a, b):
        if name not in names:
            raise ResultsError(f"no {per} {name!r} with results for {metric}; available: {', '.join(names)}")
    samples, dropped = [], []
    for name in (a, b):
        row = table[table[per].astype(str) == name].iloc[0]
        cells = table.attrs["cells"]
        mask = np.logical_and.reduce([df[c].astype(str) == str(row[c]) for c in cells])
        cell = df[mask]
        diverged = _diverged_rows(cell)
        at_epoch = cell[~diverged & cell[m.EPOCH].eq(row[m.EPOCH])]
        samples.append(at_epoch[metric].dropna().to_numpy())
        dropped.append(int(cell.loc[diverged, "trial"].nunique()))
    result = compare_values(a, b, metric, samples[0], samples[1], ci=ci, n_boot=n_boot, seed=seed)
    return dataclasses.replace(result, n_diverged_a=dropped[0], n_diverged_b=dropped[1])
