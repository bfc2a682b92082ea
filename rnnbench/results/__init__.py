"""The results layer: Ray Tune experiment folders -> pandas -> statistics, tables, plots,
TensorBoard. Reads files only (no torch, no live Ray), so it works on finished, running,
interrupted, copied and remote experiments.

    df = load("~/ray_results/imdb")                     # one row per (trial, epoch)
    aggregate(df, by=("model", "lr", "epoch"))           # n, mean, std, sem, CI, quartiles ...
    best(df, metric="val_acc", per="model")              # Table 1 with uncertainty
    print(compare(df, "lstm", "elman", "val_acc"))       # Welch p, CI, P(lstm > elman)
    print(render(summary_table(df), "markdown"))
"""

from rnnbench.results.compare import Comparison, compare, compare_values, probability_of_improvement
from rnnbench.results.errors import ResultsError, ResultsWarning
from rnnbench.results.load import STATUSES, load
from rnnbench.results.plots import learning_curves, lr_grid, temperature_curves
from rnnbench.results.report import display, markdown, render, write_frame
from rnnbench.results.stats import aggregate, bootstrap_interval, t_interval
from rnnbench.results.table import best, per_trial, summary_table
from rnnbench.results.tensorboard import export_tensorboard

__all__ = [
    "Comparison", "ResultsError", "ResultsWarning", "STATUSES", "aggregate", "best",
    "bootstrap_interval", "compare", "compare_values", "display", "export_tensorboard",
    "learning_curves", "load", "lr_grid", "markdown", "per_trial", "probability_of_improvement",
    "render", "summary_table", "t_interval", "temperature_curves", "write_frame",
]
