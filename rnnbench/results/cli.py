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

from rnnbench.config import OneLineParser
from rnnbench.errors import ResultsError
from rnnbench.results.columns import default_how, default_metric, default_per, epoch_rule, task_of
from rnnbench.results.compare import comparisons
from rnnbench.results.listing import list_experiments, render_listing
from rnnbench.results.load import load
from rnnbench.results.report import FORMATS, render, wrap, write_frame
from rnnbench.results.table import best, summary_table


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="rnnbench-results",
        description=__doc__.split("\n\n")[0],
        epilog="rnnbench-results list STORAGE: one line per experiment folder under "
        "STORAGE (to report on an experiment folder named 'list', pass ./list)",
    )
    p.add_argument("path", help="experiment folder or storage URI (file://, s3://, ...)")
    p.add_argument(
        "--metric", help="default: the task's objective (imdb val_acc, test_acc in a confirmation stage; grammar synth_acc@t1)"
    )
    p.add_argument("--per", help="column whose values are compared (default: the task's, model or dataset)")
    p.add_argument("--by", nargs="+", help="columns defining a grid cell (default: varying config minus seed)")
    p.add_argument(
        "--how",
        choices=("peak", "final"),
        help="score a cell by the best or the last epoch of its seed-mean curve (default: the task's)",
    )
    p.add_argument("--format", choices=FORMATS, default="text")
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
        description="One line per experiment folder under STORAGE: name, task, state, "
        "trials, epochs reported, last change, size.",
    )
    p.add_argument("storage", help="the folder (or storage URI) the sweeps' --storage pointed at")
    return p


def _title(df: pd.DataFrame) -> str:
    """E.g. "exp (imdb): 8 trials: 6 finished, 1 diverged, 1 errored, in 3 grouped Ray trials"."""
    heads = df.drop_duplicates("trial")
    task = task_of(df)
    name = df["experiment"].iloc[0] if "experiment" in df else df.attrs.get("experiment", "results")
    counts = (
        ": " + ", ".join(f"{n} {status}" for status, n in heads["status"].value_counts().items()) if "status" in heads else ""
    )
    groups = heads["group"].nunique() if "group" in heads else len(heads)
    grouped = f", in {groups} grouped Ray trials" if groups < len(heads) else ""
    return f"{name}{f' ({task.name})' if task else ''}: {len(heads)} trials{counts}{grouped}"


def report(
    df: pd.DataFrame,
    metric: str | None = None,
    per: str | None = None,
    how: str | None = None,
    by: Sequence[str] | None = None,
    ci: float = 0.95,
    fmt: str = "text",
) -> str:
    """The printed report: trial counts, every cell at its chosen epoch, the best setting per
    `per` value, and the pairwise comparisons within each dataset. Metric, per and the epoch
    rule `how` default to the task's; the sweeps pass theirs. Text fits 120 columns."""
    metric = metric or default_metric(df)
    per = per or default_per(df)
    how = how or default_how(df)
    rule = epoch_rule(how, metric)
    sections = [
        _title(df),
        "Per cell:\n" + render(summary_table(df, metric=metric, how=how, by=by, ci=ci, per=per), fmt),
        f"Best setting per {per} (columns as above):\n"
        + render(best(df, metric=metric, per=per, how=how, by=by, ci=ci), fmt, captioned=False),
    ]
    found = comparisons(df, metric=metric, per=per, how=how, ci=ci, by=by)
    if found:
        lines = [wrap(f"{f'{dataset}: ' if dataset else ''}{c.sentence()}", indent="- ") for dataset, c in found]
        sections.append(f"Comparisons (each side at its best setting, {rule} epoch; Welch's t-test):\n" + "\n".join(lines))
    return "\n\n".join(sections)


def run(args: argparse.Namespace) -> tuple[str, list[Path]]:
    """The report and every file written (plots, the TensorBoard folder, exports)."""
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
    if args.plot:
        from rnnbench.results.plots import learning_curves, lr_grid, temperature_columns, temperature_curves

        written += learning_curves(df, args.plot, metric=metric, per=per, how=how, ci=args.ci, seeds=args.seeds)
        if "lr" in df.columns:
            written += lr_grid(df, args.plot, metric=metric, per=per, how=how, ci=args.ci)
        if temperature_columns(df):
            written += temperature_curves(df, args.plot, per=per, ci=args.ci)
    if args.tensorboard:
        from rnnbench.results.tensorboard import export_tensorboard

        export_tensorboard(df, args.tensorboard, by=args.by, ci=args.ci)
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
