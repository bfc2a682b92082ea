"""The closing report of a search: what the study tried, its best configuration with mean ± CI
over its seeds, and the grid's best beside it when a grid experiment is given.

Numbers come from rnnbench.results (the same load/best as a grid summary) for the trials of
completed configurations, so a search and a grid are scored by one rule in one table."""

from __future__ import annotations

from collections import Counter
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from rnnbench import results
from rnnbench.results.columns import default_per
from rnnbench.sweep.search import OPTUNA_TRIAL
from rnnbench.sweep.seed_study import storage_url

BEST_COLUMNS = ("source", "experiment", "trials", "setting", "epoch", "mean", "std", "ci_low", "ci_high", "n")


def best_of_search(df: pd.DataFrame, spec: dict[str, Any], number: int) -> dict[str, Any]:
    """results.best over the seeds of one configuration: its epoch, mean, std, CI and n."""
    params = [k for k in spec["params"] if k in df.columns]
    mine = df[df[OPTUNA_TRIAL] == number]
    row = results.best(mine, metric=spec["metric"], per=default_per(df), how=spec["how"], by=[OPTUNA_TRIAL, *params]).iloc[0]
    setting = ", ".join([f"{OPTUNA_TRIAL} {number}"] + [f"{k} {row[k]:g}" for k in params])
    return {"source": "search", "experiment": df["experiment"].iloc[0], "trials": df["trial"].nunique(),
            "setting": setting, **{k: row[k] for k in BEST_COLUMNS[4:]}}


def best_of_grid(grid: pd.DataFrame, spec: dict[str, Any], per_value: Any) -> dict[str, Any]:
    """The grid's best cell for the same model or grammar, by the same metric and rule."""
    per = default_per(grid)
    if per in spec["base"]:
        grid = grid[grid[per] == per_value]
    table = results.best(grid, metric=spec["metric"], per=per, how=spec["how"])
    row, cells = table.iloc[0], [c for c in table.attrs["cells"] if c != per]
    setting = ", ".join(f"{c} {row[c]:g}" if isinstance(row[c], float) else f"{c} {row[c]}" for c in cells)
    return {"source": "grid", "experiment": grid["experiment"].iloc[0], "trials": grid["trial"].nunique(),
            "setting": setting or "(one cell)", **{k: row[k] for k in BEST_COLUMNS[4:]}}


def search_report(path: str, name: str, spec: dict[str, Any], grid: pd.DataFrame | None = None) -> str:
    """Counts by outcome, the top configurations, and the best one (and the grid's) with CI."""
    study = optuna.load_study(study_name=name, storage=storage_url(path))
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name.lower() for t in trials)
    df = results.load(path)
    head = (f"{name}: {len(trials)} configurations ({dict(states)}), {df['trial'].nunique()} trials "
            f"({spec['num_seeds']} seeds each); objective: {spec['how']} epoch of the seed-mean {spec['metric']}")
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if not done:
        return head + "\nno configuration has completed all its seeds yet; run again with --resume"
    sign = -1 if spec["direction"] == "maximize" else 1
    top = pd.DataFrame([{"optuna_trial": t.number, **t.params, "mean": t.value, "std": t.user_attrs.get("std"),
                         "epoch": t.user_attrs.get("epoch")} for t in sorted(done, key=lambda t: sign * t.value)[:10]])
    top.attrs["metric"] = spec["metric"]  # names the mean ± sd column
    per = default_per(df)
    rows = [best_of_search(df, spec, study.best_trial.number)]
    if grid is not None:
        rows.append(best_of_grid(grid, spec, df[per].iloc[0]))
    best = pd.DataFrame(rows, columns=BEST_COLUMNS)
    best.attrs["metric"] = spec["metric"]
    first = best.iloc[0]
    sentence = (f"best configuration: {first['setting']}: {spec['metric']} {first['mean']:.4f} ± {first['std']:.4f} (std over "
                f"{first['n']} seeds), 95% CI [{first['ci_low']:.4f}, {first['ci_high']:.4f}], epoch {first['epoch']}")
    return "\n\n".join([head, "Top configurations (Optuna's values = seed-means):\n" + results.render(top, "text"),
                        sentence, "Best setting, mean over seeds with 95% CI:\n" + results.render(best, "text")])
