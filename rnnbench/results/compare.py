"""Is model A better than model B? Welch's t-test, the mean difference with its CI, and the
probability of improvement P(X_a > X_b) (as in rliable) with a conservative score interval, in one
sentence that names the setting and epoch each side is read at.

A firm winner is only stated where the t test holds up (`Comparison.untestable` says why not):
3 or more seeds a side, and no side whose seeds all tie. Tied seeds have sd 0, so Welch takes
that side's mean as known exactly, and a side that sits at 1.0 90% of the time shows 5 seeds
all at 1.0 in 59% of draws: under a null of equal means with such a side (the other spread
evenly) Welch's p < 0.05 in 23-65% of draws at 3-10 seeds, the rule's printed claim in
<= 0.6% (simulated in tests/test_results_stats.py). With ties short of that (some seeds at
1.0, the rest spread) Welch stayed at or below its nominal 5% in the same simulations.

Comparisons run only within one dataset: models are compared on the same data, never one
grammar against another (`comparisons` splits a frame by its `dataset` column first)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtri, stdtr, stdtrit  # normal and t quantiles, t's CDF, without scipy.stats' 1 s import

from rnnbench import metrics as m
from rnnbench.errors import ResultsError
from rnnbench.results.columns import (
    bounds,
    default_how,
    default_metric,
    default_per,
    epoch_rule,
    higher_is_better,
    setting_columns,
)
from rnnbench.results.report import number, wrap
from rnnbench.results.stats import diverged_rows
from rnnbench.results.table import best

MIN_SEEDS_TEST = 3  # below this many seeds a side no winner is stated (see the module docstring)
MIN_SEEDS_PROBABILITY = 4  # below this, no P(A > B) interval covers (`probability_interval`)
HEADLINE_WIDTH = 100  # columns of the report's headline, so it reads at a glance
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

    @property
    def untestable(self) -> str:
        """Why no winner may be stated from Welch's test (see the module docstring), or ""."""
        if min(self.n_a, self.n_b) < MIN_SEEDS_TEST:
            return f"too few seeds for a test (n = {self.n_a} and {self.n_b}; {MIN_SEEDS_TEST} or more a side needed)"
        tied = [f"{name}: {tied_values(values)}" for name, values in ((self.a, self.values_a), (self.b, self.values_b))]
        tied = [t for t, values in zip(tied, (self.values_a, self.values_b)) if np.ptp(values) == 0]
        return f"{'; '.join(tied)}, the t test does not apply" if tied else ""

    @property
    def firm(self) -> bool:
        """Whether the sentence names a winner: the test applies and p < 1 - ci."""
        return not self.untestable and self.p_value < 1 - self.ci

    def probability(self, a: str, b: str, flip: bool = False) -> str:
        """ "P(a > b) = 0.92, 95% CI 0.71 to 1.00", or why there is no interval."""
        prob, low, high = self.prob_improvement, self.prob_ci_low, self.prob_ci_high
        if flip:
            prob, low, high = 1 - prob, 1 - high, 1 - low
        head = f"P({a} {'>' if higher_is_better(self.metric) else '<'} {b}) = {_num(prob, '.2f')}"
        if min(self.n_a, self.n_b) < MIN_SEEDS_PROBABILITY:
            return f"{head}, interval not reliable below n = {MIN_SEEDS_PROBABILITY} a side"
        return f"{head}, {self.ci:.0%} CI {_outward(low, high)}"

    def sentence(self) -> str:
        """E.g. "lstm (lr 0.3, peak epoch 7) beats elman (lr 0.1, peak epoch 9) on val_acc by 0.012
        (95% CI 0.003 to 0.021; Welch p = 0.02; P(lstm > elman) = 0.81, 95% CI 0.52 to 0.95; n = 5 vs 5)"."""
        flip = self.firm and self.advantage < 0
        a, b = (self.b, self.a) if flip else (self.a, self.b)
        at_a, at_b = (self.setting_b, self.setting_a) if flip else (self.setting_a, self.setting_b)
        n_a, n_b = (self.n_b, self.n_a) if flip else (self.n_a, self.n_b)
        sign = -1 if flip else 1
        diff, low, high = sign * self.advantage, *sorted((sign * self.ci_low, sign * self.ci_high))
        on = self.metric if higher_is_better(self.metric) else f"{self.metric} (lower is better)"
        name_a, name_b = (f"{a} ({at_a})" if at_a else a), (f"{b} ({at_b})" if at_b else b)
        test = self.untestable or f"{self.ci:.0%} CI {_interval(low, high)}; Welch {_p(self.p_value)}"
        details = f"{test}; {self.probability(a, b, flip)}; n = {n_a} vs {n_b}"
        lead = (
            f"{name_a} beats {name_b} on {on} by {_num(diff)}"
            if self.firm
            else f"no firm winner between {name_a} and {name_b} on {on}: "
            f"{a} {'ahead' if diff >= 0 else 'behind'} by {_num(abs(diff))}"
        )
        dropped = self.n_diverged_a + self.n_diverged_b
        note = f"; {self.n_diverged_a} + {self.n_diverged_b} diverged seeds left out" if dropped else ""
        return f"{lead} ({details}{note})"

    def __str__(self) -> str:
        return self.sentence()


def tied_values(values: Sequence[float]) -> str:
    """ "all 5 seeds at 1.0": how a side whose seeds all tie is reported, instead of a mean ± 0."""
    return f"all {len(values)} seeds at {np.format_float_positional(values[0], precision=4, trim='0')}"


def _num(x: float, spec: str = ".3g") -> str:
    return "undefined" if not np.isfinite(x) else format(x, spec)


def _interval(low: float, high: float, spec: str = ".3g") -> str:
    if not (np.isfinite(low) and np.isfinite(high)):
        return "undefined"
    return f"{format(low, spec)} to {format(high, spec)}"


def _outward(low: float, high: float) -> str:
    """A probability interval at 2 decimals, rounded outward so that rounding never narrows it
    (0.996 to 1 reads "0.99 to 1.00", never "1.00 to 1.00")."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "undefined"
    return f"{np.floor(low * 100) / 100:.2f} to {np.ceil(high * 100) / 100:.2f}"


def _p(p: float) -> str:
    """ "p = 0.02", "p < 0.001" or "p undefined"."""
    return "p undefined" if not np.isfinite(p) else ("p < 0.001" if p < 0.001 else f"p = {p:.2g}")


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) for one draw from each sample, ties counted half (rliable's definition)."""
    x, y = np.asarray(x, float)[:, None], np.asarray(y, float)[None, :]
    return float(((x > y) + 0.5 * (x == y)).mean())


def wilson_interval(prob: np.ndarray | float, n: int, ci: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval of a share `prob` estimated from `n` draws (vectorized)."""
    z = float(ndtri((1 + ci) / 2))
    c = z * z / n
    mid = (prob + c / 2) / (1 + c)
    half = z / (1 + c) * np.sqrt(prob * (1 - prob) / n + c / (4 * n))
    return np.clip(mid - half, 0.0, 1.0), np.clip(mid + half, 0.0, 1.0)


def probability_interval(prob: float, n_x: int, n_y: int, ci: float = 0.95) -> tuple[float, float]:
    """Interval of P(X > Y) from its estimate `prob` over n_x and n_y seeds: the Wilson score
    interval at min(n_x, n_y) draws, because the Mann-Whitney estimate's variance is at most
    P(1 - P) / min(n_x, n_y) whatever the two distributions (Birnbaum and Klose 1957).

    Why not the percentile bootstrap (rliable's): it covered 0.45 / 0.69 / 0.87 of the time at
    3 / 5 / 10 seeds (an outside review's simulation; < 0.9 at 5 in tests/), and says "1.00 to 1.00"
    whenever every seed of one side beats the other.
    Newcombe's score interval with the Hanley-McNeil variance dipped to 0.91-0.93 at 4-10 seeds
    when the sides differ in spread. This one covered >= 0.95 at 4 to 10 seeds a side (0.92 at 3)
    in the simulations of tests/test_results_stats.py, wide rather than wrong; NaN below
    MIN_SEEDS_PROBABILITY seeds a side, where the sentence says the interval is not reliable."""
    if min(n_x, n_y) < MIN_SEEDS_PROBABILITY or not np.isfinite(prob):
        return np.nan, np.nan
    low, high = wilson_interval(prob, min(n_x, n_y), ci)
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


def compare_values(a: str, b: str, metric: str, values_a: np.ndarray, values_b: np.ndarray, ci: float = 0.95) -> Comparison:
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
    p_low, p_high = probability_interval(prob, len(xa), len(xb), ci)
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
    result = compare_values(a, b, metric, samples[0], samples[1], ci=ci)
    return dataclasses.replace(
        result, n_diverged_a=dropped[0], n_diverged_b=dropped[1], setting_a=settings[0], setting_b=settings[1]
    )


def compared_column(part: pd.DataFrame, per: str, stratum: str | None) -> tuple[str, bool] | None:
    """What is compared within one dataset, and whether every pair of its values is (models) or
    only the best two (a setting such as lr, whose every pair would bury the one that matters):
    `per`, unless `per` is the dataset itself (the grammars); then the models or cells if several
    vary, else the first other setting that varies (lr); None if nothing does."""
    if per != stratum:
        return per, True
    model = next((c for c in MODEL_COLUMNS if c in part.columns and part[c].nunique() > 1), None)
    if model:
        return model, True
    setting = next((c for c in setting_columns(part) if c != stratum), None)
    return (setting, False) if setting else None


def strata(
    df: pd.DataFrame, per: str, by: Sequence[str] | None
) -> Iterator[tuple[str, pd.DataFrame, str, bool, list[str] | None]]:
    """Each dataset's part of the frame (the whole frame, named "", without a dataset column) with
    the column compared within it, whether every pair of its values is compared (else the best
    two), and `by` less the dataset column; datasets with nothing to compare are left out."""
    stratum = next((s for s in STRATA if s in df.columns), None)
    for name, part in df.groupby(stratum, sort=True) if stratum else [("", df)]:
        found = compared_column(part, per, stratum)
        if found is not None:
            yield str(name), part, *found, None if by is None else [c for c in by if c != stratum]


def ranked(part: pd.DataFrame, metric: str, column: str, how: str, ci: float, by: Sequence[str] | None) -> list[str]:
    """The values of `column`, best first by the seed mean of each one's best cell."""
    table = best(part, metric=metric, per=column, how=how, ci=ci, by=by)
    order = table["mean"].sort_values(ascending=not higher_is_better(metric)).index
    return table.loc[order, column].astype(str).tolist()


def comparisons(
    df: pd.DataFrame,
    metric: str | None = None,
    per: str | None = None,
    how: str | None = None,
    ci: float = 0.95,
    by: Sequence[str] | None = None,
) -> list[tuple[str, Comparison]]:
    """The pairwise comparisons worth making, as (dataset, Comparison) pairs ("" when the frame
    has no dataset column): within each dataset, every pair of `per` values (models) at their
    best settings. When `per` is the dataset itself (the grammars), the models or cells within
    each dataset are compared instead if several vary, else its best two settings (lrs), labelled
    "lr 0.3" (`compared_column`)."""
    metric = metric or default_metric(df)
    how = how or default_how(df)
    out = []
    for name, part, compared, every_pair, keep_by in strata(df, per or default_per(df), by):
        values = (
            sorted(part[compared].dropna().astype(str).unique())
            if every_pair
            else ranked(part, metric, compared, how, ci, keep_by)[:2]
        )
        for x, y in itertools.combinations(values, 2):
            result = compare(part, x, y, metric=metric, per=compared, how=how, ci=ci, by=keep_by)
            if not every_pair:
                result = dataclasses.replace(result, a=f"{compared} {x}", b=f"{compared} {y}")
            out.append((name, result))
    return out


def headline(
    df: pd.DataFrame,
    metric: str | None = None,
    per: str | None = None,
    how: str | None = None,
    ci: float = 0.95,
    by: Sequence[str] | None = None,
) -> str:
    """The report's first lines, per dataset: the best setting with its score, n and CI, then
    how sure we are that it beats the runner-up (X is the best, Y the runner-up), each line
    wrapped to 100 columns, e.g.

        Best: lstm (lr 0.1, peak epoch 7): val_acc 0.871 ± 0.004, n = 5, 95% CI [0.866, 0.876]
          beats elman (lr 0.03, peak epoch 9) with P(X > Y) = 0.92, 95% CI 0.62 to 1.00; Welch p = 0.003
    """
    metric = metric or default_metric(df)
    how = how or default_how(df)
    lines = []
    for name, part, column, every_pair, keep_by in strata(df, per or default_per(df), by):
        table = best(part, metric=metric, per=column, how=how, ci=ci, by=keep_by)
        order = ranked(part, metric, column, how, ci, keep_by)
        row = table[table[column].astype(str) == order[0]].iloc[0]
        label = order[0] if every_pair else f"{column} {order[0]}"
        where = _setting(row, table.attrs["cells"], column, how, metric)
        fraction = bounds(metric) == (0.0, 1.0)
        n, interval = int(row["n"]), f"{ci:.0%} CI [{number(row['ci_low'], fraction)}, {number(row['ci_high'], fraction)}]"
        score = (
            f"{number(row['mean'], fraction)}, n = 1 (no spread or CI from one seed)"
            if n < 2
            else f"{tied_values([row['mean']] * n)}, {interval}"
            if row["std"] == 0
            else f"{number(row['mean'], fraction)} ± {number(row['std'], fraction)}, n = {n}, {interval}"
        )
        lines.append(wrap(f"{f'{name}: ' if name else ''}Best: {label} ({where}): {metric} {score}", width=HEADLINE_WIDTH))
        if len(order) > 1:
            c = compare(part, order[0], order[1], metric=metric, per=column, how=how, ci=ci, by=keep_by)
            runner_up = f"{order[1]} ({c.setting_b})" if every_pair else f"{column} {order[1]}"
            test = (
                f"Welch {_p(c.p_value)}"
                if not c.untestable
                else "too few seeds for a test"
                if min(c.n_a, c.n_b) < MIN_SEEDS_TEST
                else "no t test on tied seeds"
            )
            verdict = f"beats {runner_up} with" if c.firm else f"no firm lead over {runner_up}:"
            lines.append(wrap(f"{verdict} {c.probability('X', 'Y')}; {test}", indent="  ", width=HEADLINE_WIDTH))
    return "\n".join(lines)
