"""A grid experiment on Ray Tune: a quiet progress line over the members, and the Tuner that runs
or resumes it (the members and their grouping into trials are in rnnbench.sweep.members)."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import ray
from ray import tune

from rnnbench.errors import ConfigError
from rnnbench.sweep.members import MEMBERS, trial_name
from rnnbench.sweep.recovery import CheckpointFallback, with_fallback
from rnnbench.sweep.runtime import experiment_path
from rnnbench.sweep.storage import StorageGuard
from rnnbench.sweep.summary import resume_plan

BOARD = "rnnbench-batch-board"  # the named actor; names live in the driver's job namespace, one per sweep
STATUS_EVERY_S = "RNNBENCH_STATUS_EVERY_S"  # environment: seconds between status lines (default 20)
PER_TRIAL = 3  # at most this many running trials get their own progress on the status line, more a mean


@ray.remote(num_cpus=0)
class BatchBoard:
    """Where each running trial is in its current epoch, {trial id: (epoch, batches done, batches)}:
    trials post to it (rnnbench.sweep.trainable) and the status line reads it. A Tune result per
    batch would do the same but add result rows and wake the schedulers; a file would not reach
    the driver from another node."""

    def __init__(self) -> None:
        self.places: dict[str, tuple[int, int, int]] = {}

    def post(self, trial_id: str, epoch: int, done: int, total: int) -> None:
        self.places[trial_id] = (epoch, done, total)

    def read(self) -> dict[str, tuple[int, int, int]]:
        return self.places


def status_every_s() -> float:
    """The status line's interval: $RNNBENCH_STATUS_EVERY_S, else 20 s."""
    value = os.environ.get(STATUS_EVERY_S, "20")
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise ConfigError(f"{STATUS_EVERY_S} must be a number of seconds >= 0, got {value!r}; set it to e.g. 20")
    return seconds


class Progress(tune.Callback):
    """One status line at most every `every_s` seconds: trials and members done / running /
    pending, how far the running trials are into their current epoch, the best member so far and
    an ETA from the member-epochs still to run."""

    def __init__(self, metric: str, mode: str, epochs: int, every_s: float | None = None):
        self.metric, self.sign, self.epochs = metric, (1 if mode == "max" else -1), epochs
        self.every_s = status_every_s() if every_s is None else every_s
        self.start = time.monotonic()
        self.last = 0.0
        self.first_done: int | None = None
        self.board: Any = None  # the BatchBoard's handle, from setup() on (it lives while we hold it)
        self.reading: Any = None  # the board's answer on its way, asked for by the previous line
        self.places: dict[str, tuple[int, int, int]] = {}  # the board's latest answer

    def setup(self, **info: Any) -> None:
        """Called as the experiment (re)starts: the clock for the ETA starts now, and the board the
        trials post their batches to is created before any trial starts."""
        self.start = time.monotonic()
        self.board = BatchBoard.options(name=BOARD, get_if_exists=True).remote()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            print(self.line(trials, now), file=sys.stderr, flush=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        print(self.line(trials, time.monotonic()), file=sys.stderr, flush=True)
        if self.board is not None:
            ray.kill(self.board)
            self.board = None

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
        # within-epoch shares are shown, not used for the ETA: early in a trial they mostly measure its start-up
        within = self.within_epoch([trial for trial in trials if trial.status == "RUNNING"])
        if len(within) > PER_TRIAL:
            text += f", in progress {len(within)} trials: {100 * sum(within.values()) / len(within):.0f}% of their epoch"
        elif within:
            text += ", in progress: " + ", ".join(f"{trial} {100 * share:.0f}%" for trial, share in within.items())
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

    def within_epoch(self, running: list) -> dict[Any, float]:
        """Each running trial's share of its current epoch's batches done, from the board; a trial
        that posted nothing yet, or whose last post is from an epoch it has since reported, is left out.

        The line never waits for the board: it uses the latest answer that has arrived and asks
        for the next one, so a busy machine makes the share one line older, never the step slower."""
        if not running or self.board is None:
            return {}
        try:
            if self.reading is not None and ray.wait([self.reading], timeout=0)[0]:
                self.places = ray.get(self.reading)
                self.reading = None
            if self.reading is None:
                self.reading = self.board.read.remote()
        except ray.exceptions.RayActorError:
            self.board = None  # a lost board costs the lines their within-epoch part, never the sweep
        shares = {}
        for trial in running:
            epoch, done, total = self.places.get(trial.trial_id, (0, 0, 1))
            if epoch > int((trial.last_result or {}).get("epoch", 0)):
                shares[trial] = done / total
        return shares


def quiet_tune_console() -> None:
    """Our status line and summary are the sweep's console output. Tune's newer output engine
    prints a config box and a `tensorboard --logdir` hint into Ray's temp folder at the start of
    every experiment even at verbose=0 (ray/tune/experimental/output.py, Ray 2.60); its legacy
    engine, chosen by Ray's RAY_AIR_NEW_OUTPUT=0, prints nothing at verbose=0. Tune's own
    warnings and errors still come through its loggers; only the INFO line naming the folder we
    already named at the start is dropped. A RAY_AIR_NEW_OUTPUT set by the user wins."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    logging.getLogger("ray.tune.tune").setLevel(logging.WARNING)


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
    quiet_tune_console()
    wrapped = tune.with_resources(trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    path = experiment_path(storage, name)
    if resume:
        print(resume_plan(path), file=sys.stderr, flush=True)
        tuner = with_fallback(tune.Tuner.restore(path, wrapped, resume_unfinished=True, resume_errored=True))
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
                # pickled with the experiment, so Tuner.restore brings them back on --resume
                callbacks=[Progress(metric, mode, epochs), StorageGuard(), CheckpointFallback()],
                # two kept: Ray deletes the older one as soon as it registers a newer one, before the
                # experiment state that names the newer one is written; with two, only a kill after
                # every other registration finds the checkpoint the state names gone, and
                # CheckpointFallback (rnnbench.sweep.recovery) repairs such a trial
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                failure_config=tune.FailureConfig(max_failures=2),
            ),
        )
    return tuner.fit()
