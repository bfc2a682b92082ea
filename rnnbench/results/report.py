"""Tables as text, Markdown or CSV with units and n in the headers, and frames written to
CSV / Parquet / Markdown files. Markdown is formatted here because pandas needs `tabulate` for
`to_markdown`, which is not a dependency."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from rnnbench.results.columns import unit
from rnnbench.results.errors import ResultsError

FORMATS = ("text", "markdown", "csv")


def _with_unit(name: str) -> str:
    u = unit(name)
    return f"{name} ({u})" if u else name


def _value(x: object) -> str:
    if isinstance(x, (float, np.floating)):
        return "undefined" if np.isnan(x) else f"{x:.4g}"
    return "" if x is None or x is pd.NA else str(x)


def display(table: pd.DataFrame) -> pd.DataFrame:
    """Strings for people: `mean ± sd` and `[low, high]` per statistic family (``mean``,
    ``best_mean``, ``final_mean`` ...), with the metric's unit and the CI level in the header.

    A CI over fewer than two seeds reads "undefined (n < 2)", never a zero-width interval.
    """
    metric = table.attrs.get("metric", "")
    level = f"{table.attrs.get('ci', 0.95):.0%}"
    out = pd.DataFrame(index=table.index)
    skip: set[str] = set()
    for col in table.columns:
        if col in skip:
            continue
        prefix = col[: -len("mean")] if col.endswith("mean") else None
        if prefix is not None and f"{prefix}std" in table:
            what = f"{prefix.rstrip('_') or table.attrs.get('how', '')} {metric}".strip()
            mean, std = table[col], table[f"{prefix}std"]
            out[f"{_with_unit(what)}, mean ± sd"] = [
                f"{a:.4f} ± {b:.4f}" if np.isfinite(b) else (f"{a:.4f} ± undefined" if np.isfinite(a) else "undefined")
                for a, b in zip(mean, std)]
            skip.update({f"{prefix}std"})
            if f"{prefix}ci_low" in table:
                low, high = table[f"{prefix}ci_low"], table[f"{prefix}ci_high"]
                out[f"{what} {level} CI"] = [
                    f"[{a:.4f}, {b:.4f}]" if np.isfinite(a) and np.isfinite(b) else "undefined (n < 2)"
                    for a, b in zip(low, high)]
                skip.update({f"{prefix}ci_low", f"{prefix}ci_high"})
        elif col == "metric":
            continue
        elif col.startswith("final_") and unit(col[len("final_"):]):
            out[_with_unit(col)] = table[col].map(_value)
        else:
            out[col] = table[col].map(_value)
    return out


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of the frame's values as they print."""
    cells = frame.astype(object).map(lambda x: _value(x).replace("|", "\\|"))
    header = [str(c).replace("|", "\\|") for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines)


def render(table: pd.DataFrame, fmt: str = "text") -> str:
    """A summary, best or aggregate table as text (aligned), Markdown or CSV (raw numbers)."""
    if fmt not in FORMATS:
        raise ResultsError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "csv":
        return table.to_csv(index=False)
    shown = display(table)
    return markdown(shown) if fmt == "markdown" else shown.to_string(index=False)


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
