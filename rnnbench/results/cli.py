"""`python -m rnnbench.results PATH` (console script `rnnbench-results`): the per-cell summary,
the best setting per model and every pairwise comparison, plus optional plots, TensorBoard
runs and exports. Bad input prints one line and exits 2."""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from rnnbench.results.columns import default_how, default_metric, default_per
from rnnbench.results.compare import compare
from rnnbench.results.errors import ResultsError
from rnnbench.results.load import load
from rnnbench.results.plots import learning_curves, lr_grid, temperature_columns, temperature_curves
from rnnbench.results.report import FORMATS, render, write_frame
from rnnbench.results.table import best, summary_table
from rnnbench.results.tensorboard import export_tensorboard


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rnnbench-results", description=__doc__.split("\n\n")[0])
    p.add_argument("path", help="experiment folder or storage URI (file://, s3://, ...)")
    p.add_argument("--metric", help="default: the task's objective (imdb val_acc, test_acc in a confirmation "
                   "stage; grammar synth_acc@t1)")
    p.add_argument("--per", help="column whose values are compared (default: the task's, model or dataset)")
    p.add_argument("--by", nargs="+", help="columns defining a grid cell (default: varying config minus seed)")
    p.add_argument("--how", choices=("peak", "final"), help="score a cell by the best or the last epoch of its "
                   "seed-mean curve (default: the task's)")
    p.add_argument("--format", choices=FORMATS, default="text")
    p.add_argument("--ci", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--plot", metavar="DIR", help="write PNG and SVG figures here")
    p.add_argument("--tensorboard", metavar="DIR", help="write one TensorBoard run per cell here")
    p.add_argument("--export", metavar="FILE", action="append", default=[],
                   help="FILE.csv / FILE.parquet: every (trial, epoch) row; FILE.md: this report; repeatable")
    return p


def report(df: pd.DataFrame, metric: str, per: str, how: str = "peak",
           by: Sequence[str] | None = None, ci: float = 0.95, fmt: str = "text") -> str:
    """The printed report: trial counts, summary per cell, best per model, pairwise comparisons."""
    statuses = df.drop_duplicates("trial")["status"].value_counts().to_dict()
    chosen = best(df, metric=metric, per=per, how=how, by=by, ci=ci)
    sections = [
        f"{df['experiment'].iloc[0]}: {df['trial'].nunique()} trials ({statuses})",
        f"Per cell, over seeds ({metric}; best = each seed's best epoch, final = its last):\n"
        + render(summary_table(df, metric=metric, by=by, ci=ci), fmt),
        f"Best setting per {per} ({how} epoch of the seed-mean curve):\n" + render(chosen, fmt),
    ]
    names = [str(v) for v in chosen[per]]
    if len(names) > 1:
        lines = [compare(df, a, b, metric=metric, per=per, how=how, ci=ci, by=by).sentence()
                 for a, b in itertools.combinations(names, 2)]
        sections.append("Comparisons:\n" + "\n".join(f"- {line}" for line in lines))
    return "\n\n".join(sections)


def run(args: argparse.Namespace) -> str:
    df = load(args.path)
    metric = args.metric or default_metric(df)
    per = args.per or default_per(df)
    how = args.how or default_how(df)
    text = report(df, metric, per, how, args.by, args.ci, args.format)
    for path in args.export:
        if path.lower().endswith(".md"):
            Path(path).write_text(report(df, metric, per, how, args.by, args.ci, "markdown") + "\n")
        else:
            write_frame(df, path)
    if args.plot:
        learning_curves(df, args.plot, metric=metric, per=per, ci=args.ci)
        if "lr" in df.columns:
            lr_grid(df, args.plot, metric=metric, per=per, how="final", ci=args.ci)
        if temperature_columns(df):
            temperature_curves(df, args.plot, per=per, ci=args.ci)
    if args.tensorboard:
        export_tensorboard(df, args.tensorboard, by=args.by, ci=args.ci)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        text = run(args)
    except ResultsError as exc:
        print(f"rnnbench-results: error: {exc}", file=sys.stderr)
        return 2
    print(text)
    return 0
