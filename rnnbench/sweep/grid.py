"""A grid experiment on Ray Tune: what a sweep script varies (Task), readable trial names, a
quiet progress line, and the Tuner that runs or resumes it."""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any, Callable, Sequence

from ray import tune

from rnnbench.sweep.runtime import experiment_path


@dataclasses.dataclass(frozen=True)
class Task:
    """What a sweep script varies and runs: the loop's config class, its trainable, the grid axes
    (flag → (config field, type)), how to load data once for all trials, and the closing summary."""

    name: str
    config_cls: type
    trainable: Callable
    axes: dict[str, tuple[str, type]]
    namer: Callable[[Any], str]
    metric: str
    load_data: Callable[[Any, dict[str, list]], Any]
    summarize: Callable[[str], None]
    confirm: Callable[[str, Any], None] | None = None


def trial_namer(keys: Sequence[str]) -> Callable[[Any], str]:
    """Readable, stable trial names such as `lstm_lr0.3_seed4`."""

    def name(trial: Any) -> str:
        parts = []
        for key in keys:
            value = trial.config[key]
            parts.append(f"{value}" if isinstance(value, str) else f"{key}{value:g}")
        return "_".join(parts)

    return name


class Progress(tune.Callback):
    """One status line at most every `every_s` seconds: trials done / running / pending, the best
    metric so far and an ETA from the epochs (reports) still to run."""

    def __init__(self, metric: str, epochs_per_trial: int, every_s: float = 20.0):
        self.metric, self.epochs_per_trial, self.every_s = metric, epochs_per_trial, every_s
        self.start = time.monotonic()
        self.last = 0.0
        self.first_epochs: int | None = None

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            print(self.line(trials, now), file=sys.stderr, flush=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        print(self.line(trials, time.monotonic()), file=sys.stderr, flush=True)

    def line(self, trials: list, now: float) -> str:
        status = [trial.status for trial in trials]
        done = sum(s in ("TERMINATED", "ERROR") for s in status)
        epochs = sum((trial.last_result or {}).get("training_iteration", 0) for trial in trials)
        if self.first_epochs is None:
            self.first_epochs = epochs  # after a resume, only new epochs count toward the rate
        total = self.epochs_per_trial * len(trials)
        best = max(
            (t for t in trials if isinstance((t.last_result or {}).get(self.metric), (int, float))),
            key=lambda t: t.last_result[self.metric],
            default=None,
        )
        text = f"[{time.strftime('%H:%M:%S')}] trials: {done}/{len(trials)} done, {status.count('RUNNING')} running, {status.count('PENDING')} pending"
        if best is not None:
            text += f" | best {self.metric} {best.last_result[self.metric]:.4f} ({best})"
        ran = epochs - self.first_epochs
        if 0 < ran and epochs < total:
            eta = (now - self.start) / ran * (total - epochs)
            text += f" | ETA {eta / 60:.0f} min"
        return text


def run_grid(
    trainable: Callable,
    param_space: dict[str, Any],
    *,
    name: str,
    storage: str,
    namer: Callable[[Any], str],
    metric: str,
    epochs: int,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    max_concurrent: int | None = None,
    resume: bool = False,
    data: Any = None,
    search_alg: Any = None,
    scheduler: Any = None,
    num_samples: int = 1,
) -> tune.ResultGrid:
    """Run (or resume) one grid experiment at `storage/name` and wait for it to finish. A search
    (rnnbench.sweep.search) passes its own search algorithm, scheduler and num_samples=-1."""
    wrapped = tune.with_resources(tune.with_parameters(trainable, data=data), {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    path = experiment_path(storage, name)
    if resume:
        tuner = tune.Tuner.restore(path, wrapped, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            wrapped,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                max_concurrent_trials=max_concurrent, trial_name_creator=namer, trial_dirname_creator=namer,
                reuse_actors=True,
                search_alg=search_alg, scheduler=scheduler, num_samples=num_samples,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=storage,
                verbose=0,
                callbacks=[Progress(metric, epochs)],
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                failure_config=tune.FailureConfig(max_failures=2),
            ),
        )
    return tuner.fit()
