"""Tables for people, as text, Markdown or CSV, and frames written to CSV / Parquet / Markdown.

Printed tables fit a 120-column terminal: short column headers (`mean ± sd`, `95% CI`, `div`),
numbers rounded to what seeds can resolve, and what the numbers are (metric, unit, epoch rule, CI
method, what n counts) said once in a caption above the table. CSV and Parquet exports keep the
full column names and every digit. Markdown is formatted here because pandas needs `tabulate`
for `to_markdown`, which is not a dependency."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from rnnbench.errors import ResultsError
from rnnbench.results.columns import bounds, epoch_rule, unit

FORMATS = ("text", "markdown", "csv")
WIDTH = 120  # columns of the terminal the printed report must fit

# Count columns, as headed in printed tables and explained in the caption.
_COUNTS = {
    "n": ("n", "seeds with a value there"),
    "n_trials": ("trials", "all seeds"),
    "n_chance": ("chance", "seeds at chance (acc <= chance_acc+0.01)"),
    "n_diverged": ("div", "diverged (left out)"),
    "n_errored": ("err", "errored"),
}
_HIDDEN = ("metric", "q25", "q75", "var", "sem")  # said in the caption, or implied by a shown column


def wrap(text: str, indent: str = "", width: int = WIDTH) -> str:
    """`text` wrapped to `width` columns, continuation lines indented by `indent`'s width; a
    level and its "CI" stay on one line ("95% CI" is what readers and scripts look for)."""
    text = text.replace("% CI", "%\u00a0CI")  # textwrap breaks only at ASCII whitespace
    return textwrap.fill(
        text, width=width, initial_indent=indent, subsequent_indent=" " * len(indent), break_on_hyphens=False
    ).replace("\u00a0", " ")


def _is_fraction(metric: str) -> bool:
    return bounds(metric) == (0.0, 1.0)


def number(x: object, fraction: bool = False) -> str:
    """3 decimals for fractions (seeds rarely agree closer than that), else 4 significant digits."""
    if x is None or x is pd.NA:
        return ""
    if isinstance(x, (float, np.floating)):
        if np.isnan(x):
            return "undefined"
        return f"{x:.3f}" if fraction else f"{x:.4g}"
    return str(x)


def caption(table: pd.DataFrame) -> str:
    """What the table's numbers are, in one sentence: metric and unit, the epoch rule, the
    statistics over seeds, the CI level and method, and what each count column counts."""
    metric = table.attrs.get("metric", "")
    what = ""
    if metric:
        what = f"{metric} ({unit(metric)})" if unit(metric) else metric
        how = table.attrs.get("how")
        if how:
            what += f" at each cell's {epoch_rule(how, metric)} epoch (of its seed-mean curve)"
    stats = [s for s, col in (("mean ± sd", "std"), ("median", "median"), ("IQR", "iqr")) if col in table.columns]
    if "ci_low" in table.columns:
        method = table.attrs.get("ci_method", "t")
        if isinstance(method, dict):  # aggregate: one method per metric
            method = next(iter(set(method.values()))) if len(set(method.values())) == 1 else "t, cut to each metric's range"
        stats.append(f"{table.attrs.get('ci', 0.95):.0%} CI ({method})")
    if stats:
        listed = ", ".join(stats[:-1]) + " and " + stats[-1] if len(stats) > 1 else stats[0]
        what = f"{what}, {listed} over seeds" if what else f"{listed} over seeds"
    counts = [f"{short} = {meaning}" for col, (short, meaning) in _COUNTS.items() if col in table.columns]
    if _all_tied(table).any():
        counts.append("all n seeds at v = every seed scored exactly v: no spread seen, so no ± (its CI is widened at ties)")
    return "; ".join([p for p in (what, *counts) if p]) + "." if what or counts else ""


def _all_tied(table: pd.DataFrame, prefix: str = "") -> pd.Series:
    """Rows whose 2 or more seeds all scored one value (sd 0): shown as such, never as "v ± 0"."""
    if f"{prefix}std" not in table or "n" not in table:
        return pd.Series(False, index=table.index)
    return table[f"{prefix}std"].eq(0) & table["n"].ge(2)


def display(table: pd.DataFrame) -> pd.DataFrame:
    """Strings for people: `mean ± sd` and `[low, high]` per statistic family (``mean``,
    ``final_mean`` ...), median and IQR, short count headers; the caption says what they are.

    A CI over fewer than two seeds reads "undefined (n<2)", never a zero-width interval; seeds
    that all tie read "all 5 seeds at 1.000" instead of "1.000 ± 0.000", which looks like certainty.
    """
    metric = table.attrs.get("metric", "")
    fraction = _is_fraction(metric)
    level = f"{table.attrs.get('ci', 0.95):.0%}"
    out = pd.DataFrame(index=table.index)
    skip: set[str] = set(_HIDDEN)
    if "metric" in table.columns and table["metric"].nunique() > 1:
        skip.discard("metric")
    for col in table.columns:
        if col in skip:
            continue
        prefix = col[: -len("mean")] if col.endswith("mean") else None
        if prefix is not None and f"{prefix}std" in table:
            label = prefix.replace("_", " ")
            mean, std = table[col], table[f"{prefix}std"]
            n = table["n"] if "n" in table else pd.Series(2, index=table.index)
            out[f"{label}mean ± sd"] = [
                "undefined"
                if not np.isfinite(a)
                else f"all {k} seeds at {number(a, fraction)}"
                if tied
                else f"{number(a, fraction)} ± {number(b, fraction) if np.isfinite(b) else 'n/a'}"
                for a, b, k, tied in zip(mean, std, n, _all_tied(table, prefix))
            ]
            skip.add(f"{prefix}std")
            if f"{prefix}ci_low" in table:
                low, high = table[f"{prefix}ci_low"], table[f"{prefix}ci_high"]
                out[f"{label}{level} CI"] = [
                    f"[{number(a, fraction)}, {number(b, fraction)}]"
                    if np.isfinite(a) and np.isfinite(b)
                    else ("undefined (n<2)" if k < 2 else "undefined")
                    for a, b, k in zip(low, high, n)
                ]
                skip.update({f"{prefix}ci_low", f"{prefix}ci_high"})
        elif col in ("median", "iqr", "min", "max"):
            out["IQR" if col == "iqr" else col] = table[col].map(lambda x: number(x, fraction))
        elif col in _COUNTS:
            out[_COUNTS[col][0]] = table[col].map(number)
        elif col.startswith("final_"):
            name = col[len("final_") :]
            out[f"final {name}"] = table[col].map(lambda x, name=name: number(x, _is_fraction(name)))
        else:
            out[col] = table[col].map(number)
    return out


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of the frame's values as they print."""
    cells = frame.astype(object).map(lambda x: number(x).replace("|", "\\|"))
    header = [str(c).replace("|", "\\|") for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines)


def render(table: pd.DataFrame, fmt: str = "text", captioned: bool = True) -> str:
    """A summary, best or aggregate table as text (aligned, under its caption unless
    `captioned=False`), Markdown (likewise) or CSV (raw numbers, full column names)."""
    if fmt not in FORMATS:
        raise ResultsError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "csv":
        return table.to_csv(index=False)
    shown = display(table)
    body = markdown(shown) if fmt == "markdown" else shown.to_string(index=False)
    text = caption(table) if captioned else ""
    return f"{wrap(text)}\n{body}" if text else body


def write_frame(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a frame to .csv, .parquet or .md, chosen by the file's suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif suffix == ".md":
        path.write_text(markdown(frame) + "\n")
    else:
        raise ResultsError(f"cannot export to {path.name}: use a .csv, .parquet or .md file")
    return path
