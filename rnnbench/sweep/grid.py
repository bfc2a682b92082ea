"""A grid experiment on Ray Tune: a quiet progress line over the members, and the Tuner that runs
or resumes it (the members and their grouping into trials are in rnnbench.sweep.members)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from ray import tune

from rnnbench.sweep.members import MEMBERS, trial_name
from rnnbench.sweep.runtime import experiment_path
from rnnbench.sweep.storage import StorageGuard


class Progress(tune.Callback):
    """One status line at most every `every_s` seconds: trials and members done / running /
    pending, the best member so far and an ETA from the member-epochs still to run."""

    def __init__(self, metric: str, mode: str, epochs: int, every_s: float = 20.0):
        self.metric, self.sign, self.epochs, self.every_s = metric, (1 if mode == "max" else -1), epochs, every_s
        self.start = time.monotonic()
        self.last = 0.0
        self.first_done: int | None = None

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            print(self.line(trials, now), file=sys.stderr, flush=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        print(self.line(trials, time.monotonic()), file=sys.stderr, flush=True)

    def line(self, trials: list, now: float) -> str:
        status = [trial.status for trial in trials]
        members = sum(len(trial.config.get(MEMBERS, [None])) for trial in trials)
        reports = {}  # member -> its latest metrics; a search's members ("seed0") are named within their trial
        for trial in trials:
            for name, report in ((trial.last_result or {}).get(MEMBERS) or {}).items():
                reports[name if name not in reports else f"{trial}/{name}"] = report
        epochs_done = sum(int(r.get("epoch", 0)) for r in reports.values())
        if self.first_done is None:
            self.first_done = epochs_done  # after a resume, only new epochs count toward the rate
        total = self.epochs * members
        text = (
            f"[{time.strftime('%H:%M:%S')}] trials: {sum(s in ('TERMINATED', 'ERROR') for s in status)}/{len(trials)} done, "
            f"{status.count('RUNNING')} running, {status.count('PENDING')} pending; member-epochs {epochs_done}/{total}"
        )
        scored = {
            n: r[self.metric]
            for n, r in reports.items()
            if isinstance(r.get(self.metric), (int, float)) and r[self.metric] == r[self.metric]
        }
        if scored:
            best = max(scored, key=lambda n: self.sign * scored[n])
            text += f" | best {self.metric} {scored[best]:.4f} ({best})"
        ran = epochs_done - self.first_done
        if 0 < ran and epochs_done < total:
            text += f" | ETA {(now - self.start) / ran * (total - epochs_done) / 60:.0f} min"
        return text


def run_grid(
    trainable: Callable,
    param_space: dict[str, Any],
    *,
    name: str,
    storage: str,
    metric: str,
    mode: str,
    epochs: int,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    max_concurrent: int | None = None,
    resume: bool = False,
    search_alg: Any = None,
    scheduler: Any = None,
    num_samples: int = 1,
    namer: Callable[[Any], str] = trial_name,
) -> tune.ResultGrid:
    """Run (or resume) one experiment at `storage/name` and wait for it to finish. A search passes
    its own search algorithm, scheduler and number of samples."""
    wrapped = tune.with_resources(trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    path = experiment_path(storage, name)
    if resume:
        tuner = tune.Tuner.restore(path, wrapped, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            wrapped,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                max_concurrent_trials=max_concurrent,
                trial_name_creator=namer,
                trial_dirname_creator=namer,
                reuse_actors=True,
                search_alg=search_alg,
                scheduler=scheduler,
                num_samples=num_samples,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=storage,
                verbose=0,
                callbacks=[Progress(metric, mode, epochs), StorageGuard()],
                # two kept: Ray deletes the older one as soon as it registers a newer one, before the
                # experiment state that names the newer one is written; a kill in between must still
                # find the checkpoint the state names
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                failure_config=tune.FailureConfig(max_failures=2),
            ),
        )
    return tuner.fit()
