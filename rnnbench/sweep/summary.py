"""The closing report of a sweep (the same tables as `python -m rnnbench.results PATH`) and its
exit code, by one rule: 0 only when every member finished (a diverged member finished, and is
reported as such); 130 when the run was interrupted; 1 when any member errored."""

from __future__ import annotations

import shlex
import sys

from rnnbench import record, results
from rnnbench.errors import ResultsError
from rnnbench.results.cli import report
from rnnbench.results.columns import default_metric
from rnnbench.results.load import trial_overview
from rnnbench.sweep.storage import ERRORED, INTERRUPTED, resume_command
from rnnbench.tasks import Task


def summarize(path: str, task: Task, how: str) -> int:
    """Print per cell (model, lr) the best and final objective over seeds, the best setting per
    model by the `how` rule and how the models compare; return the exit code."""
    try:
        df = results.load(path)
        metric = task.objective.metric if task.objective.metric in df.columns else default_metric(df)
        print(report(df, metric=metric, per=task.per, how=how), end="\n\n")
        print(
            f"plots, TensorBoard runs and tables: rnnbench-results {shlex.quote(str(path))} "
            "--plot figs --tensorboard tb --export table.csv",
            end="\n\n",
        )
    except ResultsError as error:  # nothing to report yet: the exit code still says what happened
        print(f"no report: {error}", file=sys.stderr)
    return exit_code(path)


def member_counts(path: str) -> tuple[int, int, int]:
    """Members done (finished, diverged or pruned), unfinished and errored, by the record."""
    status = trial_overview(path)["status"]
    finished = int(status.isin(record.DONE).sum())
    errored = int((status == "errored").sum())
    return finished, len(status) - finished - errored, errored


def exit_code(path: str) -> int:
    """0, INTERRUPTED or ERRORED by the members' statuses, with a line saying how to go on."""
    finished, unfinished, errored = member_counts(path)
    total, again = finished + unfinished + errored, resume_command()
    if unfinished:
        print(f"interrupted: {unfinished} of {total} members unfinished; continue with: {again}", file=sys.stderr)
        return INTERRUPTED
    if errored:
        print(
            f"error: {errored} of {total} members errored (see error.txt in their member folders); retry them with: {again}",
            file=sys.stderr,
        )
        return ERRORED
    return 0
