"""The results layer: experiment records (rnnbench.record) -> pandas -> statistics, tables, plots,
TensorBoard. Reads files only (no torch, no Ray), so it works on finished, running, stopped,
copied and remote experiments; every member (one trained model) is one trial, whichever trial of
the sweep trained it. Metric, compared column and epoch rule default to the task's (rnnbench.tasks).

    df = load("~/results/imdb")                          # one row per (member, epoch)
    aggregate(df, by=("model", "lr", "epoch"))           # n, mean, std, CI, median, IQR ...
    best(df)                                             # Table 1: best lr per model, with uncertainty
    print(compare(df, "lstm", "elman").sentence())       # Welch p, CI, P(lstm > elman), settings named
    print(headline(df))                                  # the best setting, and how sure vs the runner-up
    across_tasks(df)                                     # IQM and median over tasks, stratified bootstrap
    print(render(summary_table(df)))                     # every cell at the task's epoch rule
    list_experiments("~/results")                        # what a storage folder holds
"""

import importlib

from rnnbench.errors import ResultsError
from rnnbench.results.aggregates import across_tasks, iqm, leaders, run_scores
from rnnbench.results.compare import (
    Comparison,
    compare,
    compare_values,
    comparisons,
    headline,
    probability_interval,
    probability_of_improvement,
    welch,
)
from rnnbench.results.listing import list_experiments, render_listing
from rnnbench.results.load import STATUSES, load, trial_overview
from rnnbench.results.report import caption, display, markdown, render, write_frame
from rnnbench.results.stats import aggregate, bootstrap_interval, bounded_t_interval, t_interval
from rnnbench.results.table import best, cells_at_epoch, per_trial, summary_table

# matplotlib and tensorboard take about a second to import: their names load on first use, so
# `rnnbench-results --help`, `load` and the tables do not pay for them.
_LAZY = {
    **dict.fromkeys(
        (
            "curves_figure",
            "improvement_figure",
            "learning_curves",
            "lr_figure",
            "lr_grid",
            "pair_figure",
            "profile_figure",
            "robust_figures",
            "temperature_curves",
            "temperature_figure",
        ),
        "rnnbench.results.plots",
    ),
    "export_tensorboard": "rnnbench.results.tensorboard",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Comparison",
    "ResultsError",
    "STATUSES",
    "across_tasks",
    "aggregate",
    "best",
    "bootstrap_interval",
    "bounded_t_interval",
    "caption",
    "cells_at_epoch",
    "compare",
    "compare_values",
    "comparisons",
    "curves_figure",
    "display",
    "export_tensorboard",
    "headline",
    "improvement_figure",
    "iqm",
    "leaders",
    "learning_curves",
    "list_experiments",
    "load",
    "lr_figure",
    "lr_grid",
    "markdown",
    "pair_figure",
    "per_trial",
    "probability_interval",
    "probability_of_improvement",
    "profile_figure",
    "render",
    "render_listing",
    "robust_figures",
    "run_scores",
    "summary_table",
    "t_interval",
    "temperature_curves",
    "temperature_figure",
    "trial_overview",
    "welch",
    "write_frame",
]
