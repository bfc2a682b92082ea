"""`python -m rnnbench.results PATH` (console script `rnnbench-results`): the per-cell summary,
the best setting per model and every pairwise comparison within a dataset, plus optional plots,
TensorBoard runs and exports, each file listed at the end. `rnnbench-results list STORAGE`: one
line per experiment under a storage folder. Bad input prints one line and exits 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from rnnbench import metrics as m
from rnnbench.config import OneLineParser
from rnnbench.errors import ResultsError
from rnnbench.results.columns import (
    default_how,
    default_metric,
    default_per,
    epoch_rule,
    require_columns,
    require_metrics,
    task_of,
)
from rnnbench.results.compare import MIN_SEEDS_PROBABILITY, MIN_SEEDS_TEST, MODEL_COLUMNS, STRATA, comparisons, headline
from rnnbench.results.listing import list_experiments, render_listing
from rnnbench.results.load import load
from rnnbench.results.report import FORMATS, render, wrap, write_frame
from rnnbench.results.stats import diverged_rows
from rnnbench.results.table import best, summary_table

MAX_LISTED = 4  # members named in the report's "no epoch yet" line (the rest are counted), so it stays short


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="rnnbench-results",
        description=__doc__.split("\n\n")[0],
        epilog="rnnbench-results list STORAGE: one line per experiment folder under STORAGE\n"
        "(to report on an experiment folder named 'list', pass ./list)",
    )
    p.add_argument("path", help="experiment folder or storage URI (file://, s3://, ...)")
    p.add_argument(
        "--metric",
        help="the metric compared (default: the task's objective: imdb val_acc, test_acc in a confirmation stage; "
        "grammar synth_acc@t1)",
    )
    p.add_argument("--per", help="column whose values are compared (default: the task's, model or dataset)")
    p.add_argument("--by", nargs="+", help="columns defining a grid cell (default: varying config minus seed)")
    p.add_argument(
        "--how",
        choices=("peak", "final"),
        help="score a cell by the best or the last epoch of its seed-mean curve (default: the task's)",
    )
    p.add_argument("--format", choices=FORMATS, default="text", help="how the report's tables are written (default: text)")
    p.add_argument("--ci", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--plot", metavar="DIR", help="write PNG and SVG figures here")
    p.add_argument("--seeds", action="store_true", help="plots also draw every seed as a thin line")
    p.add_argument("--tensorboard", metavar="DIR", help="write one TensorBoard run per cell here")
    p.add_argument(
        "--export",
        metavar="FILE",
        action="append",
        default=[],
        help="FILE.csv / FILE.parquet: every (trial, epoch) row; FILE.md: this report; repeatable",
    )
    return p


def list_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="rnnbench-results list",
        description="One line per experiment folder under STORAGE: name, task, state,\n"
        "members by outcome, epochs finished, last change, size.",
    )
    p.add_argument("storage", help="the folder (or storage URI) the sweeps' --storage pointed at")
    return p


def _title(df: pd.DataFrame) -> str:
    """E.g. "exp (imdb): 8 members: 6 finished, 1 diverged, 1 errored, trained in 3 trials"."""
    heads = df.drop_duplicates("trial")
    task = task_of(df)
    name = df["experiment"].iloc[0] if "experiment" in df else df.attrs.get("experiment", "results")
    counts = (
        ": " + ", ".join(f"{n} {status}" for status, n in heads["status"].value_counts().items()) if "status" in heads else ""
    )
    groups = heads["group"].nunique() if "group" in heads else len(heads)
    grouped = f", trained in {groups} trials" if groups < len(heads) else ""
    return f"{name}{f' ({task.name})' if task else ''}: {len(heads)} members{counts}{grouped}"


def with_results(df: pd.DataFrame, metric: str, per: str) -> tuple[pd.DataFrame, str | None]:
    """The rows the tables can use, and a line naming what they leave out, or None.

    A running or stopped experiment may hold a model (within a dataset) none of whose members
    has a finite `metric` yet (no epoch, or diverged at once); the tables and comparisons skip it,
    so the report says what exists instead of failing on what does not."""
    keys = [per] + [c for c in (*STRATA, *MODEL_COLUMNS) if c != per and c in df.columns and df[c].nunique() > 1]
    usable = df[metric].notna() & ~diverged_rows(df)
    index = df.set_index(keys).index
    kept = index.isin(index[usable.to_numpy()])
    missing = sorted({"/".join(map(str, k)) if isinstance(k, tuple) else str(k) for k in index[~kept]})
    waiting = df.loc[df[m.EPOCH].isna(), "trial"].tolist()
    parts = [f"no {metric} yet for {'/'.join(keys)} {', '.join(missing)} (left out of the tables)"] if missing else []
    if waiting:
        listed = ", ".join(waiting[:MAX_LISTED]) + (f" and {len(waiting) - MAX_LISTED} more" if len(waiting) > MAX_LISTED else "")
        parts.append(f"{len(waiting)} of {df['trial'].nunique()} members have no epoch yet: {listed}")
    return df[kept], wrap("; ".join(parts) + ".") if parts else None


def report(
    df: pd.DataFrame,
    metric: str | None = None,
    per: str | None = None,
    how: str | None = None,
    by: Sequence[str] | None = None,
    ci: float = 0.95,
    fmt: str = "text",
) -> str:
    """The printed report: a headline (the best setting and how sure we are it beats the
    runner-up), member counts, what has no results yet, every cell at its chosen epoch,
    the best setting per `per` value, and the pairwise comparisons within each dataset, for
    whatever the experiment holds (finished, running or stopped). Metric, per and the epoch rule
    `how` default to the task's; the sweeps pass theirs. Text fits 120 columns."""
    metric = metric or default_metric(df)
    per = per or default_per(df)
    how = how or default_how(df)
    require_columns(df, [per])
    require_metrics(df, [metric])
    rule = epoch_rule(how, metric)
    shown, missing = with_results(df, metric, per)
    sections = [_title(df)] + ([missing] if missing else [])
    if shown.empty:
        return "\n\n".join(sections)
    top = headline(shown, metric=metric, per=per, how=how, ci=ci, by=by)
    sections = (
        ([top] if top else [])
        + sections
        + [
            "Per cell:\n" + render(summary_table(shown, metric=metric, how=how, by=by, ci=ci, per=per), fmt),
            f"Best setting per {per} (columns as above):\n"
            + render(best(shown, metric=metric, per=per, how=how, by=by, ci=ci), fmt, captioned=False),
        ]
    )
    found = comparisons(shown, metric=metric, per=per, how=how, ci=ci, by=by)
    if found:
        lines = [wrap(f"{f'{dataset}: ' if dataset else ''}{c.sentence()}", indent="- ") for dataset, c in found]
        head = (
            f"Comparisons (each side at its best setting, {rule} epoch; Welch's t-test, no winner named below "
            f"{MIN_SEEDS_TEST} seeds a side or where a side's seeds all tie; P(X > Y) with a Wilson score interval "
            f"at the smaller n, not reliable below {MIN_SEEDS_PROBABILITY} seeds a side):"
        )
        sections.append(wrap(head) + "\n" + "\n".join(lines))
    return "\n\n".join(sections)


def run(args: argparse.Namespace) -> tuple[str, list[Path]]:
    """The report and every file written (plots, the TensorBoard folder, exports)."""
    for flag, folder in (("--plot", args.plot), ("--tensorboard", args.tensorboard)):
        if folder and Path(folder).exists() and not Path(folder).is_dir():
            raise ResultsError(f"{flag} {folder} is a file; pass a folder to write into")
    df = load(args.path)
    metric = args.metric or default_metric(df)
    per = args.per or default_per(df)
    how = args.how or default_how(df)
    text = report(df, metric, per, how, args.by, args.ci, args.format)
    written: list[Path] = []
    for path in args.export:
        if path.lower().endswith(".md"):
            Path(path).write_text(report(df, metric, per, how, args.by, args.ci, "markdown") + "\n")
            written.append(Path(path))
        else:
            written.append(write_frame(df, path))
    shown, _ = with_results(df, metric, per)  # figures and runs of what has results; the report named the rest
    if args.plot and not shown.empty:
        from rnnbench.results.plots import learning_curves, lr_grid, robust_figures, temperature_columns, temperature_curves

        written += learning_curves(shown, args.plot, metric=metric, per=per, how=how, ci=args.ci, seeds=args.seeds)
        if "lr" in shown.columns:
            written += lr_grid(shown, args.plot, metric=metric, per=per, how=how, ci=args.ci)
        if temperature_columns(shown):
            written += temperature_curves(shown, args.plot, per=per, ci=args.ci)
        written += robust_figures(shown, args.plot, metric=metric, per=per, how=how, ci=args.ci)
    if args.tensorboard and not shown.empty:
        from rnnbench.results.tensorboard import export_tensorboard

        export_tensorboard(shown, args.tensorboard, by=args.by, ci=args.ci)
        written.append(Path(args.tensorboard))
    return text, written


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["list"]:
            print(render_listing(list_experiments(list_parser().parse_args(argv[1:]).storage)))
            return 0
        text, written = run(parser().parse_args(argv))
    except ResultsError as exc:
        print(f"rnnbench-results: error: {exc}", file=sys.stderr)
        return 2
    print(text)
    if written:
        print("\nWrote:\n" + "\n".join(f"  {path}" for path in written))
    return 0
