"""Figures that answer the study's questions at a glance, each saved as PNG and SVG.

- `learning_curves`: per metric, the whole learning-rate grid as small multiples (one panel per
  model, one line per lr: the seed mean with its CI band, optionally every seed as a thin line),
  and the training loss next to the metric for each model's best setting.
- `lr_grid`: the metric at the chosen epoch against learning rate, one line per model.
- `temperature_curves`: grammar sampling accuracy against temperature, one panel per grammar and
  kind (samples, completions), one line per lr.

Learning rates are ordered, so they get a sequential colormap (viridis without its palest end,
which vanishes on white); models get the qualitative tab10. The y axis is fitted to the seed
means, not to the CI bands: with two or three seeds a band can span most of [0, 1] and would
flatten every curve. Where a band runs past the axis it is cut there and marked with a small
triangle on the edge (▲ above, ▼ below), which the legend explains. Points that share an x
(several models at one lr, several lrs at one temperature) are shifted apart a little so their
error bars do not hide each other. Matplotlib runs on the Agg backend (headless).
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from rnnbench import metrics as m  # noqa: E402
from rnnbench.errors import ResultsError  # noqa: E402
from rnnbench.results.aggregates import (  # noqa: E402
    TASK,
    across_tasks,
    leaders,
    run_scores,
    setting_label,
    stratified_bootstrap,
    task_runs,
)
from rnnbench.results.columns import (  # noqa: E402
    bounds,
    default_how,
    default_metric,
    default_per,
    epoch_rule,
    higher_is_better,
    require_columns,
    require_metrics,
    unit,
)
from rnnbench.results.compare import MIN_SEEDS_PROBABILITY, probability_of_improvement, wilson_interval  # noqa: E402
from rnnbench.results.stats import CHANCE, aggregate, ci_method  # noqa: E402
from rnnbench.results.table import best, cell_columns, cells_at_epoch, default_loss  # noqa: E402

_TEMPERATURE = re.compile(r"^(synth|compl)_acc@t(.+)$")
_KINDS = {"synth": "valid samples from .start", "compl": "valid completions of held-out halves"}


def _save(fig: plt.Figure, out_dir: str | os.PathLike, name: str) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def _axis_label(metric: str) -> str:
    return f"{metric} ({unit(metric)})" if unit(metric) else metric


def _sequential(count: int) -> list[tuple]:
    """`count` colours from viridis' dark-to-green range (its yellow end is unreadable on white)."""
    return [plt.get_cmap("viridis")(x) for x in np.linspace(0.0, 0.82, max(count, 2))][:count]


def _value(x: object) -> str:
    return f"{x:g}" if isinstance(x, (float, np.floating)) else str(x)


def _line_label(key: tuple, columns: list[str]) -> str:
    """ "0.1" under a legend titled "lr"; "lr 0.1, batch_size 32" when several settings vary."""
    if len(columns) == 1:
        return _value(key[0])
    return ", ".join(f"{c} {_value(v)}" for c, v in zip(columns, key)) or "all trials"


def _legend(fig: plt.Figure, handles: list, title: str | None) -> None:
    """One legend for the whole figure, in a row below the panels (beside them it collides with
    the figure title)."""
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 7), title=title, fontsize=9, title_fontsize=9)


def _panel_title(df: pd.DataFrame, inner: list[str]) -> str:
    """E.g. "5 seeds per lr, 2 diverged" (or "30 trials" if the lines hold different numbers)."""
    trials = df.drop_duplicates("trial")
    per_line = trials.groupby(inner).size() if inner else pd.Series([len(trials)])
    what = (
        f"{per_line.iloc[0]} seeds" + (f" per {', '.join(inner)}" if inner else "")
        if per_line.nunique() == 1
        else f"{len(trials)} trials"
    )
    diverged = int(trials["status"].eq("diverged").sum()) if "status" in trials else 0
    return what + (f", {diverged} diverged" if diverged else "")


def _n_label(counts: pd.Series) -> str:
    low, high = int(counts.min()), int(counts.max())
    return f"n={low}" if low == high else f"n={low}-{high}"


def _fit_y(axes: list[plt.Axes], values: list[np.ndarray], metric: str) -> None:
    """One y range for all `axes`: the span of `values` (seed means, and seeds if drawn) with a
    margin, kept inside the metric's range."""
    finite = np.concatenate([np.asarray(v, float)[np.isfinite(np.asarray(v, float))] for v in values] or [[]])
    if not len(finite):
        return
    low, high = float(finite.min()), float(finite.max())
    pad = max(0.08 * (high - low), 0.01 * max(abs(high), 1e-9))
    lo, hi = bounds(metric)
    for ax in axes:
        ax.set_ylim(max(low - pad, lo), min(high + pad, hi))


def _mark_clipped(ax: plt.Axes, bands: list[tuple[np.ndarray, np.ndarray, np.ndarray, object]]) -> bool:
    """Triangles on the axis edge where a CI band runs past it; True if any was drawn. Call once
    the y limits are final."""
    bottom, top = ax.get_ylim()
    marked = False
    for x, low, high, color in bands:
        for beyond, edge, marker in ((high > top, top, "^"), (low < bottom, bottom, "v")):
            if beyond.any():
                ax.plot(
                    x[beyond],
                    np.full(beyond.sum(), edge),
                    ls="none",
                    marker=marker,
                    ms=5,
                    color=color,
                    clip_on=False,
                    zorder=5,
                    gid="clipped",
                )
                marked = True
    return marked


def _clipped_handle() -> Line2D:
    return Line2D([], [], ls="none", marker="^", color="0.3", ms=5, label="▲▼ CI band runs past the axis")


def _cell_rows(df: pd.DataFrame, row: pd.Series, cells: list[str]) -> pd.DataFrame:
    mask = np.logical_and.reduce([df[c].astype(str) == str(row[c]) for c in cells])
    return df[mask]


def _chance(df: pd.DataFrame, metric: str) -> pd.Series:
    """The eval split's majority-class share per epoch (IMDB's `chance_acc`), for a classifier's
    accuracy axis; empty for any other metric or frame."""
    if CHANCE not in df or not metric.endswith("_acc") or metric == CHANCE:
        return pd.Series(dtype=float)
    return df.groupby(m.EPOCH)[CHANCE].mean().dropna()


def _chance_handle() -> Line2D:
    return Line2D([], [], ls="--", color="0.35", lw=1.2, label="chance (majority class)")


def _epoch_axis(ax: plt.Axes) -> None:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def curves_figure(
    df: pd.DataFrame, metric: str | None = None, per: str | None = None, ci: float = 0.95, seeds: bool = False
) -> plt.Figure:
    """`metric` per epoch for the whole grid: one panel per `per` value (model), one line per
    remaining setting (lr) with its seed mean and CI band; `seeds=True` adds every seed as a
    thin line. Diverged seeds are left out and counted in the panel title."""
    metric = metric or default_metric(df)
    per = per or default_per(df)
    require_metrics(df, [metric])
    cells = cell_columns(df, per, None)
    inner = [c for c in cells if c != per]
    panels = sorted(df[per].dropna().unique(), key=str)
    keys = sorted({tuple(k) for k in df[inner].drop_duplicates().itertuples(index=False)}) if inner else [()]
    colors = dict(zip(keys, _sequential(len(keys))))
    agg = aggregate(df, by=[*cells, m.EPOCH], metrics=[metric], ci=ci)
    agg = agg[agg["n"] > 0]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.6 * len(panels) + 1.8, 3.8), sharey=True, squeeze=False, layout="constrained"
    )
    axes = list(axes[0])
    values, bands_per_ax = [], []
    for ax, name in zip(axes, panels):
        bands = []
        part = agg[agg[per] == name]
        for key in keys:
            line = part[np.logical_and.reduce([part[c] == v for c, v in zip(inner, key)])] if inner else part
            line = line.sort_values(m.EPOCH)
            if line.empty:
                continue
            x = line[m.EPOCH].to_numpy(float)
            ax.plot(x, line["mean"], color=colors[key], marker="o", ms=3, lw=1.6, gid="mean", label=_line_label(key, inner))
            ax.fill_between(x, line["ci_low"], line["ci_high"], color=colors[key], alpha=0.15, lw=0)
            bands.append((x, line["ci_low"].to_numpy(float), line["ci_high"].to_numpy(float), colors[key]))
            values.append(line["mean"].to_numpy(float))
            if seeds:
                rows = df[(df[per] == name) & ~df["status"].eq("diverged")] if "status" in df else df[df[per] == name]
                for c, v in zip(inner, key):
                    rows = rows[rows[c] == v]
                for _, trial in rows.groupby("trial"):
                    trial = trial.sort_values(m.EPOCH)
                    ax.plot(trial[m.EPOCH].astype(float), trial[metric], color=colors[key], lw=0.6, alpha=0.45, gid="seed")
                    values.append(trial[metric].to_numpy(float))
        chance = _chance(df[df[per] == name], metric)
        if not chance.empty:
            ax.plot(chance.index.astype(float), chance, ls="--", color="0.35", lw=1.2, gid="chance")
            values.append(chance.to_numpy(float))
        ax.set_title(f"{name}: {_panel_title(df[df[per] == name], inner)}", fontsize=10)
        _epoch_axis(ax)
        bands_per_ax.append(bands)
    axes[0].set_ylabel(_axis_label(metric))
    _fit_y(axes, values, metric)
    marked = [_mark_clipped(ax, bands) for ax, bands in zip(axes, bands_per_ax)]  # every panel, no short cut
    clipped = any(marked)
    handles = [Line2D([], [], color=colors[k], marker="o", ms=3, lw=1.6, label=_line_label(k, inner)) for k in keys]
    if clipped:
        handles.append(_clipped_handle())
    if not _chance(df, metric).empty:
        handles.append(_chance_handle())
    _legend(fig, handles, inner[0] if len(inner) == 1 else None)
    fig.suptitle(
        f"{metric} per epoch: seed mean, {ci:.0%} CI band ({ci_method(metric)})" + (", thin lines = seeds" if seeds else ""),
        fontsize=11,
    )
    return fig


def pair_figure(
    df: pd.DataFrame,
    metric: str | None = None,
    loss: str | None = None,
    per: str | None = None,
    how: str | None = None,
    ci: float = 0.95,
    seeds: bool = False,
) -> plt.Figure:
    """The training loss next to `metric` per epoch, one line per `per` value (model) at its best
    setting (chosen by `how` on `metric`), seed mean with CI band: does the best model also fit
    its training data best, and where does it start to overfit?"""
    metric = metric or default_metric(df)
    per = per or default_per(df)
    how = how or default_how(df)
    loss = loss or default_loss(df)
    if loss is None:
        raise ResultsError(f"no loss column (train_loss, loss_per_token, val_loss, test_loss) to plot next to {metric}")
    chosen = best(df, metric=metric, per=per, how=how, ci=ci)
    cells = chosen.attrs["cells"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    handles = []
    for ax, name in zip(axes, (loss, metric)):
        bands, values = [], []
        for i, (_, row) in enumerate(chosen.iterrows()):
            rows = _cell_rows(df, row, cells)
            agg = aggregate(rows, by=[m.EPOCH], metrics=[name], ci=ci)
            agg = agg[agg["n"] > 0]
            x = agg[m.EPOCH].to_numpy(float)
            color = f"C{i}"
            setting = ", ".join(f"{c} {_value(row[c])}" for c in cells if c != per)
            ax.plot(x, agg["mean"], color=color, marker="o", ms=3, lw=1.6, gid="mean")
            ax.fill_between(x, agg["ci_low"], agg["ci_high"], color=color, alpha=0.15, lw=0)
            bands.append((x, agg["ci_low"].to_numpy(float), agg["ci_high"].to_numpy(float), color))
            values.append(agg["mean"].to_numpy(float))
            if seeds:
                kept = rows[~rows["status"].eq("diverged")] if "status" in rows else rows
                for _, trial in kept.groupby("trial"):
                    trial = trial.sort_values(m.EPOCH)
                    ax.plot(trial[m.EPOCH].astype(float), trial[name], color=color, lw=0.6, alpha=0.45, gid="seed")
                    values.append(trial[name].to_numpy(float))
            if name == metric:
                handles.append(
                    Line2D(
                        [],
                        [],
                        color=color,
                        marker="o",
                        ms=3,
                        lw=1.6,
                        label=f"{row[per]} ({setting}, {_n_label(agg['n'])})"
                        if setting
                        else f"{row[per]} ({_n_label(agg['n'])})",
                    )
                )
        chance = _chance(df, name)
        if not chance.empty:
            ax.plot(chance.index.astype(float), chance, ls="--", color="0.35", lw=1.2, gid="chance")
            values.append(chance.to_numpy(float))
            handles.append(_chance_handle())
        ax.set_ylabel(_axis_label(name))
        ax.set_title(name, fontsize=10)
        _epoch_axis(ax)
        _fit_y([ax], values, name)
        if _mark_clipped(ax, bands) and not any(h.get_label().startswith("▲") for h in handles):
            handles.append(_clipped_handle())
    _legend(fig, handles, f"{per} (best setting)")
    fig.suptitle(
        f"{loss} and {metric} per epoch, each {per} at its best setting ({epoch_rule(how, metric)} "
        f"epoch of {metric}): seed mean, {ci:.0%} CI band",
        fontsize=11,
    )
    return fig


def learning_curves(
    df: pd.DataFrame,
    out_dir: str | os.PathLike,
    metric: str | None = None,
    per: str | None = None,
    how: str | None = None,
    ci: float = 0.95,
    seeds: bool = False,
) -> list[Path]:
    """Writes curves_<metric> and curves_<loss> (`curves_figure`: the whole grid, one panel per
    model) and <loss>_and_<metric> (`pair_figure`: each model's best setting); returns the files."""
    metric = metric or default_metric(df)
    loss = default_loss(df)
    paths = _save(curves_figure(df, metric, per, ci, seeds), out_dir, f"curves_{metric}")
    if loss and loss != metric:
        paths += _save(curves_figure(df, loss, per, ci, seeds), out_dir, f"curves_{loss}")
        paths += _save(pair_figure(df, metric, loss, per, how, ci, seeds), out_dir, f"{loss}_and_{metric}")
    return paths


def _offsets(count: int, width: float) -> np.ndarray:
    """Symmetric shifts for `count` series sharing x positions, `width` apart."""
    return (np.arange(count) - (count - 1) / 2) * width


def lr_figure(
    df: pd.DataFrame, metric: str | None = None, per: str | None = None, how: str | None = None, lr: str = "lr", ci: float = 0.95
) -> plt.Figure:
    """`metric` at each cell's chosen epoch (`how` on its seed-mean curve) against learning rate,
    one line per `per` value (model), CI error bars over seeds, lr on a log axis (the grid is
    geometric). Models are shifted a little along x so that their error bars stay apart."""
    metric = metric or default_metric(df)
    per = per or default_per(df)
    how = how or default_how(df)
    require_columns(df, [lr], "column")
    cells = cell_columns(df, per, None)
    cells = [per, lr] + [c for c in cells if c not in (per, lr)]
    table = cells_at_epoch(df, metric, cells, how, ci)
    names = sorted(table[per].unique(), key=str)
    shifts = _offsets(len(names), 0.025)  # in decades of lr
    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    bands, values = [], []
    for i, (name, shift) in enumerate(zip(names, shifts)):
        points = table[table[per] == name].sort_values(lr)
        x = points[lr].to_numpy(float) * 10**shift
        mean = points["mean"].to_numpy(float)
        err = np.vstack([mean - points["ci_low"], points["ci_high"] - mean])
        bars = ax.errorbar(
            x,
            mean,
            yerr=np.nan_to_num(err),
            color=f"C{i}",
            marker="o",
            ms=4,
            capsize=3,
            lw=1.6,
            label=f"{name} ({_n_label(points['n'])})",
        )
        bars.lines[0].set_gid("mean")
        bands.append((x, points["ci_low"].to_numpy(float), points["ci_high"].to_numpy(float), f"C{i}"))
        values.append(mean)
    ax.set_xscale("log")
    grid_lrs = np.sort(df[lr].dropna().unique())
    ax.set_xticks(grid_lrs, [f"{v:g}" for v in grid_lrs])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(f"learning rate (log scale; each {per} shifted slightly apart)")
    ax.set_ylabel(_axis_label(metric))
    ax.grid(alpha=0.3, which="both")
    chance = _chance(df, metric)
    if not chance.empty:
        ax.axhline(chance.mean(), ls="--", color="0.35", lw=1.2, gid="chance")
        values.append(chance.to_numpy(float))
    _fit_y([ax], values, metric)
    handles, _ = ax.get_legend_handles_labels()
    if not chance.empty:
        handles.append(_chance_handle())
    if _mark_clipped(ax, bands):
        handles.append(_clipped_handle())
    ax.legend(handles=handles, title=per, fontsize=9, loc="best")
    ax.set_title(f"{metric} at each cell's {epoch_rule(how, metric)} epoch by learning rate: seed mean, {ci:.0%} CI", fontsize=10)
    return fig


def lr_grid(
    df: pd.DataFrame,
    out_dir: str | os.PathLike,
    metric: str | None = None,
    per: str | None = None,
    how: str | None = None,
    lr: str = "lr",
    ci: float = 0.95,
) -> list[Path]:
    """Writes lr_grid_<metric>_<how> (`lr_figure`); returns the files."""
    metric = metric or default_metric(df)
    how = how or default_how(df)
    return _save(lr_figure(df, metric, per, how, lr, ci), out_dir, f"lr_grid_{metric}_{how}")


def temperature_columns(df: pd.DataFrame) -> dict[str, list[tuple[float, str]]]:
    """{"synth": [(0.5, "synth_acc@t0.5"), ...], "compl": [...]}, sorted by temperature."""
    found: dict[str, list[tuple[float, str]]] = {}
    for col in df.columns:
        match = _TEMPERATURE.match(str(col))
        if match:
            found.setdefault(match.group(1), []).append((float(match.group(2)), col))
    return {k: sorted(v) for k, v in sorted(found.items())}


def temperature_figure(df: pd.DataFrame, per: str | None = None, how: str | None = None, ci: float = 0.95) -> plt.Figure:
    """Grammar study: share of valid samples (synth) and completions (compl) against sampling
    temperature, one row of panels per kind and one column per `per` value (grammar), one line
    per remaining setting (lr). Every cell is read at one epoch, the one `how` picks on its
    seed-mean curve of the task's metric; the lrs are shifted slightly apart along x."""
    kinds = temperature_columns(df)
    if not kinds:
        raise ResultsError("no synth_acc@t*/compl_acc@t* columns to plot; available: " + ", ".join(map(str, df.columns)))
    per = per or default_per(df)
    how = how or default_how(df)
    metric = default_metric(df)
    cells = cell_columns(df, per, None)
    inner = [c for c in cells if c != per]
    picked = cells_at_epoch(df, metric, cells, how, ci)[[*cells, m.EPOCH]]
    at_epoch = df.merge(picked, on=[*cells, m.EPOCH])
    panels = sorted(df[per].dropna().unique(), key=str)
    keys = sorted({tuple(k) for k in picked[inner].itertuples(index=False)}) if inner else [()]
    colors = dict(zip(keys, _sequential(len(keys))))
    temperatures = sorted({t for columns in kinds.values() for t, _ in columns})
    step = min(np.diff(temperatures)) if len(temperatures) > 1 else 1.0
    shifts = dict(zip(keys, _offsets(len(keys), 0.5 * step / max(len(keys), 1))))
    fig, axes = plt.subplots(
        len(kinds),
        len(panels),
        figsize=(3.8 * len(panels) + 1.8, 3.2 * len(kinds)),
        sharey=True,
        sharex=True,
        squeeze=False,
        layout="constrained",
    )
    clipped = False
    kinds = {k: kinds[k] for k in _KINDS if k in kinds}  # samples first, then completions
    for row, (kind, columns) in enumerate(kinds.items()):
        for col, name in enumerate(panels):
            ax = axes[row][col]
            part = at_epoch[at_epoch[per] == name]
            agg = aggregate(part, by=cells, metrics=[c for _, c in columns], ci=ci) if len(part) else part
            bands = []
            temperature = {c: t for t, c in columns}
            for key in keys:
                line = agg[np.logical_and.reduce([agg[c] == v for c, v in zip(inner, key)])] if inner else agg
                line = line[line["n"] > 0]
                line = line.assign(temperature=line["metric"].map(temperature))
                if line.empty:
                    continue
                line = line.sort_values("temperature")
                x = line["temperature"].to_numpy(float) + shifts[key]
                mean = line["mean"].to_numpy(float)
                err = np.vstack([mean - line["ci_low"], line["ci_high"] - mean])
                bars = ax.errorbar(x, mean, yerr=np.nan_to_num(err), color=colors[key], marker="o", ms=3.5, capsize=2.5, lw=1.4)
                bars.lines[0].set_gid("mean")
                bands.append((x, line["ci_low"].to_numpy(float), line["ci_high"].to_numpy(float), colors[key]))
            ax.set_ylim(-0.02, 1.02)  # the range, with room for points and bars at 0 and 1
            clipped |= _mark_clipped(ax, bands)
            ax.set_xticks(temperatures, [f"{t:g}" for t in temperatures])
            ax.grid(alpha=0.3)
            ax.set_title(f"{name}: {_KINDS.get(kind, kind)}", fontsize=10)
            if row == len(kinds) - 1:
                ax.set_xlabel("sampling temperature")
            if col == 0:
                ax.set_ylabel(f"{kind}_acc ({unit(columns[0][1])})")
    handles = [Line2D([], [], color=colors[k], marker="o", ms=3.5, lw=1.4, label=_line_label(k, inner)) for k in keys]
    if clipped:
        handles.append(_clipped_handle())
    _legend(fig, handles, inner[0] if len(inner) == 1 else None)
    fig.suptitle(
        f"valid share by sampling temperature at each cell's {epoch_rule(how, metric)} epoch of {metric}: seed mean, {ci:.0%} CI",
        fontsize=11,
    )
    return fig


def temperature_curves(
    df: pd.DataFrame, out_dir: str | os.PathLike, per: str | None = None, how: str | None = None, ci: float = 0.95
) -> list[Path]:
    """Writes temperature_accuracy (`temperature_figure`); returns the files."""
    return _save(temperature_figure(df, per, how, ci), out_dir, "temperature_accuracy")


def _leader_runs(df: pd.DataFrame, metric: str, per: str | None, how: str, task: str) -> tuple[list[str], list[list[np.ndarray]]]:
    """Each leading setting's label and its runs per task (see aggregates.leaders)."""
    scores, keys = run_scores(df, metric, per, how, task)
    chosen = leaders(across_tasks(df, metric, per, how, task, n_boot=200))
    labels, runs = [], []
    for _, row in chosen.iterrows():
        part = scores[np.logical_and.reduce([scores[c] == row[c] for c in keys])]
        labels.append(setting_label(row, keys))
        runs.append(task_runs(part, metric, task))
    return labels, runs


def profile_figure(
    df: pd.DataFrame,
    metric: str | None = None,
    per: str | None = None,
    how: str | None = None,
    task: str = TASK,
    ci: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> plt.Figure:
    """Performance profile (rliable): the share of runs (seeds × tasks) scoring above τ against τ,
    one line per leading setting (each model's best lr, or each lr), with a stratified-bootstrap
    band; a line that stays above another at every τ beats it on every threshold."""
    metric = metric or default_metric(df)
    how = how or default_how(df)
    labels, runs = _leader_runs(df, metric, per, how, task)
    every = np.concatenate([np.concatenate(r) for r in runs])
    taus = np.linspace(every.min(), every.max(), 201)
    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    for i, (label, tasks) in enumerate(zip(labels, runs)):
        pooled = np.concatenate(tasks)
        boot = stratified_bootstrap(tasks, n_boot, rng)
        share = (pooled[:, None] > taus).mean(axis=0)
        low, high = np.quantile((boot[:, :, None] > taus).mean(axis=1), [(1 - ci) / 2, (1 + ci) / 2], axis=0)
        ax.plot(taus, share, color=f"C{i}", lw=1.6, gid="profile", label=f"{label}, n = {len(pooled)} runs")
        ax.fill_between(taus, low, high, color=f"C{i}", alpha=0.15, lw=0)
    ax.set_xlabel(f"τ: {_axis_label(metric)}")
    ax.set_ylabel("share of runs scoring > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="best")
    ax.set_title(
        f"Performance profile of {metric} ({epoch_rule(how, metric)} epoch): {ci:.0%} band by stratified bootstrap",
        fontsize=10,
    )
    return fig


def improvement_figure(
    df: pd.DataFrame,
    metric: str | None = None,
    per: str | None = None,
    how: str | None = None,
    task: str = TASK,
    ci: float = 0.95,
) -> plt.Figure:
    """P(X > Y) for every pair of leading settings (X the one with the higher IQM), averaged over
    tasks, with its Wilson score interval at (tasks × the smaller n) draws, which bounds the
    variance of the average as it does one task's (compare.probability_interval). A pair with
    fewer than MIN_SEEDS_PROBABILITY seeds a side in some task gets its point and "interval not
    reliable" instead of an interval."""
    metric = metric or default_metric(df)
    how = how or default_how(df)
    labels, runs = _leader_runs(df, metric, per, how, task)
    if len(labels) < 2:
        raise ResultsError(f"one setting only ({', '.join(labels)}): no pair to compare")
    sign = 1 if higher_is_better(metric) else -1
    pairs = list(itertools.combinations(range(len(labels)), 2))
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(pairs) + 1.6), layout="constrained")
    for row, (i, j) in enumerate(reversed(pairs)):
        prob = float(np.mean([probability_of_improvement(sign * x, sign * y) for x, y in zip(runs[i], runs[j])]))
        n = min(min(len(x), len(y)) for x, y in zip(runs[i], runs[j]))
        ax.plot(prob, row, "o", color="C0", gid="probability")
        if n >= MIN_SEEDS_PROBABILITY:
            low, high = wilson_interval(prob, n * len(runs[i]), ci)
            ax.plot([low, high], [row, row], color="C0", lw=2.5, solid_capstyle="butt", gid="interval")
        else:
            ax.annotate(
                f"interval not reliable (n = {n} < {MIN_SEEDS_PROBABILITY})",
                (prob, row),
                xytext=(6, 5),
                textcoords="offset points",
                fontsize=8,
            )
    ax.axvline(0.5, color="0.4", ls="--", lw=1)
    ax.set_yticks(range(len(pairs)), [f"{labels[i]} vs {labels[j]}" for i, j in reversed(pairs)], fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, len(pairs) - 0.4)
    ax.set_xlabel(f"P(X > Y): chance that a run of X beats a run of Y on {metric}" + ("" if sign > 0 else " (lower is better)"))
    ax.grid(alpha=0.3, axis="x")
    ax.set_title(f"Probability of improvement, {ci:.0%} Wilson score interval at the smaller n", fontsize=10)
    return fig


def robust_figures(
    df: pd.DataFrame,
    out_dir: str | os.PathLike,
    metric: str | None = None,
    per: str | None = None,
    how: str | None = None,
    task: str = TASK,
    ci: float = 0.95,
) -> list[Path]:
    """Writes profile_<metric> (`profile_figure`) and, with two or more settings,
    improvement_<metric> (`improvement_figure`); returns the files."""
    metric = metric or default_metric(df)
    paths = _save(profile_figure(df, metric, per, how, task, ci), out_dir, f"profile_{metric}")
    if len(_leader_runs(df, metric, per, how or default_how(df), task)[0]) > 1:
        paths += _save(improvement_figure(df, metric, per, how, task, ci), out_dir, f"improvement_{metric}")
    return paths
