"""Figures that answer the study's questions at a glance, each saved as PNG and SVG.

Lines are labelled at their ends (no legend hunt); titles say what the band is and axis labels
carry units. Matplotlib runs on the Agg backend, so plotting works on a headless machine.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import matplotlib.ticker  # noqa: E402
import matplotlib.transforms  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rnnbench import metrics as m  # noqa: E402
from rnnbench.results.columns import default_metric, default_per, require_columns, unit  # noqa: E402
from rnnbench.results.errors import ResultsError  # noqa: E402
from rnnbench.results.stats import aggregate  # noqa: E402
from rnnbench.results.table import _settings, best  # noqa: E402

_TEMPERATURE = re.compile(r"^(synth|compl)_acc@t(.+)$")


def _save(fig: plt.Figure, out_dir: str | os.PathLike, name: str) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def _label_ends(ax: plt.Axes, ends: list[tuple[float, float, str, str]]) -> None:
    """Name each line where it ends, in its own colour; labels of lines that end close together
    are pushed apart vertically so none hides another. Call after the y-limits are final."""
    low, high = ax.get_ylim()
    gap = 0.055 * (high - low)
    beside = matplotlib.transforms.offset_copy(ax.transData, fig=ax.figure, x=6, units="points")
    ends = sorted(ends, key=lambda end: end[1])
    placed: list[float] = []
    for _, y, _, _ in ends:
        placed.append(max(y, placed[-1] + gap) if placed else y)
    overflow = max(0.0, placed[-1] - high) if placed else 0.0  # keep the top label inside the axes
    for (x, y, text, color), at in zip(ends, placed):
        ax.annotate(text, (x, y), xytext=(x, at - overflow), textcoords=beside, va="center", color=color, fontsize=9)


def _axis_label(metric: str) -> str:
    return f"{metric} ({unit(metric)})" if unit(metric) else metric


def _fraction_axis(ax: plt.Axes, metric: str) -> None:
    """Accuracies live in [0, 1]: show that range even where a t-interval of few seeds runs past
    it (the interval itself is reported unclipped in the tables)."""
    if metric.endswith("acc") or "_acc@" in metric:
        ax.set_ylim(-0.02, 1.02)


def _n_label(counts: pd.Series) -> str:
    low, high = int(counts.min()), int(counts.max())
    return f"n={low}" if low == high else f"n={low}-{high}"


def _cell_label(row: pd.Series, cells: list[str]) -> str:
    return ", ".join(str(row[c]) if i == 0 else f"{c} {row[c]}" for i, c in enumerate(cells))


def _cell_rows(df: pd.DataFrame, row: pd.Series, cells: list[str]) -> pd.DataFrame:
    mask = np.logical_and.reduce([df[c].astype(str) == str(row[c]) for c in cells])
    return df[mask]


def learning_curves(df: pd.DataFrame, out_dir: str | os.PathLike, metric: str | None = None,
                    per: str | None = None, how: str | None = None, ci: float = 0.95, seeds: bool = False) -> list[Path]:
    """Mean `metric` per epoch with a CI band, one line per model at its best setting (peak)."""
    metric = metric or default_metric(df)
    per = per or default_per(df)
    chosen = best(df, metric=metric, per=per, how=how, ci=ci)
    cells = chosen.attrs["cells"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ends = []
    for i, (_, row) in enumerate(chosen.iterrows()):
        agg = aggregate(_cell_rows(df, row, cells), by=[m.EPOCH], metrics=[metric], ci=ci)
        agg = agg[agg["n"] > 0]
        color = f"C{i}"
        epochs = agg[m.EPOCH].astype(float)
        ax.plot(epochs, agg["mean"], color=color, marker="o", markersize=3)
        ax.fill_between(epochs, agg["ci_low"], agg["ci_high"], color=color, alpha=0.2, linewidth=0)
        ends.append((epochs.iloc[-1], agg["mean"].iloc[-1], f"{_cell_label(row, cells)} (n={int(agg['n'].iloc[-1])})", color))
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(_axis_label(metric))
    _fraction_axis(ax, metric)
    ax.set_title(f"{metric} per epoch: mean over seeds, {ci:.0%} CI band (t), best setting per {per}")
    ax.margins(x=0.25)
    ax.grid(alpha=0.3)
    _label_ends(ax, ends)
    return _save(fig, out_dir, f"curves_{metric}")


def lr_grid(df: pd.DataFrame, out_dir: str | os.PathLike, metric: str | None = None,
            per: str | None = None, how: str = "final", lr: str = "lr", ci: float = 0.95) -> list[Path]:
    """`metric` at the final (or peak) epoch against learning rate, one line per model, error
    bars = CI over seeds; lr on a log axis because the grid is geometric."""
    metric = metric or default_metric(df)
    per = per or default_per(df)
    require_columns(df, [lr], "column")
    cells = _settings(df, per, None)
    cells = [per, lr] + [c for c in cells if c not in (per, lr)]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ends = []
    for i, (name, part) in enumerate(df.groupby(per, sort=True)):
        points = best(part, metric=metric, per=lr, how=how, by=cells, ci=ci).sort_values(lr)
        if points.empty:
            continue
        color = f"C{i}"
        err = np.vstack([points["mean"] - points["ci_low"], points["ci_high"] - points["mean"]])
        ax.errorbar(points[lr], points["mean"], yerr=np.nan_to_num(err), color=color, marker="o",
                    capsize=3)
        ends.append((points[lr].iloc[-1], points["mean"].iloc[-1], f"{name} ({_n_label(points['n'])})", color))
    ax.set_xscale("log")
    grid_lrs = np.sort(df[lr].dropna().unique())
    ax.set_xticks(grid_lrs, [f"{v:g}" for v in grid_lrs])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    _fraction_axis(ax, metric)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel(_axis_label(metric))
    ax.set_title(f"{how} {metric} by learning rate: mean over seeds, {ci:.0%} CI error bars")
    ax.margins(x=0.3)
    ax.grid(alpha=0.3, which="both")
    _label_ends(ax, ends)
    return _save(fig, out_dir, f"lr_grid_{metric}_{how}")


def temperature_columns(df: pd.DataFrame) -> dict[str, list[tuple[float, str]]]:
    """{"synth": [(0.5, "synth_acc@t0.5"), ...], "compl": [...]}, sorted by temperature."""
    found: dict[str, list[tuple[float, str]]] = {}
    for col in df.columns:
        match = _TEMPERATURE.match(str(col))
        if match:
            found.setdefault(match.group(1), []).append((float(match.group(2)), col))
    return {k: sorted(v) for k, v in sorted(found.items())}


def temperature_curves(df: pd.DataFrame, out_dir: str | os.PathLike, per: str | None = None,
                       ci: float = 0.95) -> list[Path]:
    """Grammar study: share of valid samples (synth) and completions (compl) against sampling
    temperature at the final epoch, one line per grid cell, CI error bars over seeds."""
    kinds = temperature_columns(df)
    if not kinds:
        raise ResultsError("no synth_acc@t*/compl_acc@t* columns to plot; available: "
                           + ", ".join(map(str, df.columns)))
    per = per or default_per(df)
    cells = _settings(df, per, None)
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4.5), squeeze=False)
    titles = {"synth": "valid samples from .start", "compl": "valid completions of held-out halves"}
    for ax, (kind, columns) in zip(axes[0], kinds.items()):
        agg = aggregate(df, by=[*cells, m.EPOCH], metrics=[c for _, c in columns], ci=ci)
        agg = agg[agg["n"] > 0].sort_values(m.EPOCH)
        table = agg.groupby([*cells, "metric"], sort=False).tail(1)  # each cell's final epoch
        table = table.assign(temperature=table["metric"].map({c: t for t, c in columns}))
        table = table.sort_values("temperature")
        ends = []
        for i, (key, line) in enumerate(table.groupby(cells, sort=True)):
            color = f"C{i}"
            err = np.vstack([line["mean"] - line["ci_low"], line["ci_high"] - line["mean"]])
            ax.errorbar(line["temperature"], line["mean"], yerr=np.nan_to_num(err), color=color,
                        marker="o", capsize=3)
            ends.append((line["temperature"].iloc[-1], line["mean"].iloc[-1],
                         f"{_cell_label(line.iloc[0], cells)} ({_n_label(line['n'])})", color))
        ax.set_xlabel("sampling temperature")
        ax.set_ylabel(f"{kind}_acc (fraction valid)")
        ax.set_title(f"{titles.get(kind, kind)}, final epoch\nmean over seeds, {ci:.0%} CI")
        ax.set_ylim(-0.05, 1.05)
        ax.margins(x=0.3)
        ax.grid(alpha=0.3)
        _label_ends(ax, ends)
    return _save(fig, out_dir, "temperature_accuracy")
