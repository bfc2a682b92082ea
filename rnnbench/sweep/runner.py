"""The one sweep pipeline. The grid, the search and the confirmation stage are three sources of
members; each builds a `Sweep`, and `run_sweep` does the rest: the spec file, Ray's start, the
Tuner over the members still unfinished in the record, the driver's heartbeat, the summary and
the exit code.

Ray's own experiment folder goes to a temporary folder and is deleted afterwards: the record
(rnnbench.record) is the experiment, and a `--resume` is a new Tuner over its unfinished members.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import ray
from ray import tune

from rnnbench import record
from rnnbench.errors import ConfigError, StorageError
from rnnbench.sweep.members import MEMBERS, trial_name
from rnnbench.sweep.progress import Progress
from rnnbench.sweep.storage import FAULTS, TERMINATED, describe, local_folder, probe, resume_command
from rnnbench.sweep.summary import exit_code, summarize
from rnnbench.sweep.trainable import FAULT, PATH, TASK, train_group
from rnnbench.tasks import Task

SHUTDOWN_S = 10  # what Ray's shutdown gets after a SIGTERM: seconds on a live Ray, forever on a dead GCS


@dataclasses.dataclass
class Sweep:
    """One experiment to run or resume. `groups` are the trials' members for a confirmation
    stage; a grid gives `plan` instead, which groups its members once Ray says what the cluster
    has (cluster resources -> (groups, GPUs per trial)); a search has neither and brings its
    `searcher`."""

    task: Task
    path: str  # the experiment's folder or URI
    spec: dict[str, Any]  # what spec.json holds
    base: Any  # the settings every member shares unless it overrides them
    data: Any
    metric: str
    mode: str
    how: str
    groups: list[list[dict[str, Any]]] | None = None
    plan: Callable[[dict[str, float]], tuple[list[list[dict[str, Any]]], float]] | None = None
    searcher: Any = None
    scheduler: Any = None
    num_samples: int = 1
    time_budget_s: float | None = None
    planned_members: int = 0  # for the status line when `groups` is None
    namer: Callable[[Any], str] = trial_name  # a Tune trial's name, recorded as its members' group


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, with the fix, rather than after Ray's long connection retries."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"cannot reach a Ray cluster at {address} ({error}); start one with `ray start --head` or fix --address / RAY_ADDRESS"
        ) from None


def start_ray(address: str | None, cpus_per_trial: float = 1, gpus_per_trial: float = 0) -> None:
    """Connect to `address` (or RAY_ADDRESS), else start a Ray on this machine's cores; the CLIs
    set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before Ray is imported, which binds it to 127.0.0.1.

    A trial asking for more than any node has would wait forever without a word: on a local Ray
    that is an error, on a cluster (whose autoscaler may still add such a node) a warning."""
    address = address or os.environ.get("RAY_ADDRESS")
    # Ray renices its workers to 15, so on a machine shared with other jobs the trials got a few
    # percent of a core (a 20 s smoke grid took 330 s beside two busy loops; BENCHMARKS.md)
    os.environ.setdefault("RAY_worker_niceness", "0")
    on_term = signal.getsignal(signal.SIGTERM)  # ray.init replaces it: sys.exit while it runs, a stack dump after
    if address:
        check_reachable(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        else:
            ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    except SystemExit:  # a SIGTERM during ray.init, seen by Ray's handler: ours answers it
        if callable(on_term):
            on_term(signal.SIGTERM, None)
        raise
    signal.signal(signal.SIGTERM, on_term)
    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    if not any(r.get("CPU", 0) >= cpus_per_trial and r.get("GPU", 0) >= gpus_per_trial for r in nodes):
        largest = max(nodes, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)))
        message = (
            f"no node can hold one trial of {cpus_per_trial:g} CPUs and {gpus_per_trial:g} GPUs (the largest has "
            f"{largest.get('CPU', 0):g} CPUs, {largest.get('GPU', 0):g} GPUs); lower --cpus-per-trial / --gpus-per-trial"
        )
        if not address:
            ray.shutdown()
            raise ConfigError(message)
        print(f"warning: {message}, or add such a node; trials wait until one joins", file=sys.stderr)


class StorageGuard(tune.Callback):
    """Stops the run with StorageError, one line, when the record's storage fails: a trial ends
    with a FAULT result when its write is refused (full, read-only); a failed trial makes the guard
    probe a local storage. Raised in on_step_end, the one place Tune re-raises as it is."""

    def __init__(self, path: str):
        self.path = path
        self.fault: int | None = None

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if result.get(FAULT) in FAULTS:
            self.fault = result[FAULT]

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.check()

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.check()

    def check(self) -> None:
        folder = local_folder(self.path)
        if self.fault is None and folder is not None:
            error = probe(folder.parent)
            if error is not None and error.errno in FAULTS:
                self.fault = error.errno

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self.fault is not None:
            raise StorageError(describe(self.path.rsplit("/", 1)[0], self.fault))


def unfinished(path: str, groups: list[list[dict[str, Any]]], epochs: int) -> tuple[list[list[dict[str, Any]]], int]:
    """The groups with a member still to train, and the member-epochs the record already holds."""
    fs, root = record.open_fs(path)
    todo, done = [], 0
    for group in groups:
        rows = [record.read_rows(fs, record.member_folder(root, member["name"])) for member in group]
        done += sum(len(r) for r in rows)
        if not all(record.is_done(r, epochs) for r in rows):
            todo.append(group)
    return todo, done


def quiet_tune_console() -> None:
    """Our status line and summary are the sweep's console output. Tune's newer output engine
    prints a config box and a `tensorboard --logdir` hint into Ray's temp folder at the start of
    every experiment even at verbose=0; its legacy engine, chosen by Ray's RAY_AIR_NEW_OUTPUT=0,
    prints nothing at verbose=0. Its lines about Ray's own (temporary) folder, and its hint to
    resume with `Tuner.restore`, which is not how an rnnbench sweep resumes, are dropped: Tune's
    errors still come through. A RAY_AIR_NEW_OUTPUT set by the user wins."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # a trial ended by a storage fault reports no objective; the schedulers and searchers skip it
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    logging.getLogger("ray.tune.tune").setLevel(logging.ERROR)


def run_sweep(sweep: Sweep, resources: dict[str, Any], address: str | None, resume: bool, summary: bool = True) -> int:
    """Run (or resume) the experiment and, with `summary`, print the closing report; the exit
    code (rnnbench.sweep.summary)."""
    cpus, gpus = resources["cpus_per_trial"], resources["gpus_per_trial"] or 0
    fs, root = record.open_fs(sweep.path)
    ray_folder = tempfile.mkdtemp(prefix="rnnbench-ray-")  # Ray's own state: disposable
    signal.signal(signal.SIGTERM, lambda signum, frame: terminate(fs, root, ray_folder))
    quiet_tune_console()
    start_ray(address, cpus, gpus)
    if sweep.plan is not None:
        sweep.groups, gpus = sweep.plan(ray.cluster_resources())
        sweep.spec.setdefault("groups", sweep.groups)
    if not resume:
        record.write_json(fs, f"{root}/{record.SPEC}", sweep.spec)
    epochs = sweep.base.epochs
    todo, done = (None, 0) if sweep.groups is None else unfinished(sweep.path, sweep.groups, epochs)
    planned = sweep.planned_members if sweep.groups is None else sum(len(g) for g in sweep.groups)
    if resume and todo is not None:
        print(
            f"resuming: {len(sweep.groups) - len(todo)} of {len(sweep.groups)} trials done (kept), {len(todo)} to train "
            "(each member from its newest state in the record)",
            file=sys.stderr,
            flush=True,
        )
    # every member's values override these (rnnbench.sweep.trainable.member_configs)
    param_space: dict[str, Any] = {TASK: sweep.task.name, PATH: sweep.path, **dataclasses.asdict(sweep.base)}
    if todo is not None:
        param_space[MEMBERS] = tune.grid_search(todo)
    trainable = tune.with_parameters(train_group, data=sweep.data, metric=sweep.metric, mode=sweep.mode, how=sweep.how)
    started = time.time()
    progress = Progress(sweep.metric, sweep.mode, sweep.how, planned * epochs, done, beat=lambda: heartbeat(fs, root, started))
    heartbeat(fs, root, started)
    try:
        if todo != []:
            tune.Tuner(
                tune.with_resources(trainable, {"cpu": cpus, "gpu": gpus}),
                param_space=param_space,
                tune_config=tune.TuneConfig(
                    max_concurrent_trials=resources.get("max_concurrent"),
                    trial_name_creator=sweep.namer,
                    trial_dirname_creator=sweep.namer,
                    reuse_actors=True,
                    search_alg=sweep.searcher,
                    scheduler=sweep.scheduler,
                    num_samples=sweep.num_samples,
                    time_budget_s=sweep.time_budget_s,
                ),
                run_config=tune.RunConfig(
                    name=os.path.basename(sweep.path.rstrip("/")),
                    storage_path=ray_folder,
                    verbose=0,
                    callbacks=[progress, StorageGuard(sweep.path)],
                    failure_config=tune.FailureConfig(max_failures=2),
                ),
            ).fit()
    finally:
        with contextlib.suppress(OSError):
            record.remove_driver(fs, root)
        shutil.rmtree(ray_folder, ignore_errors=True)
    return summarize(sweep.path, sweep.task, sweep.how) if summary else exit_code(sweep.path)


def terminate(fs: Any, root: str, ray_folder: str) -> None:
    """SIGTERM while Ray runs: exit at once with 143 and the command that continues.

    A batch scheduler signals the whole process group, so Ray's own processes die with the driver
    and Tune's orderly stop would wait a minute on a dead GCS before failing. Nothing needs an
    orderly stop: every member's record is complete up to its last row at any moment (states are
    renamed into place, rows appended), and Ray ends a dead driver's trials. So the driver drops
    its heartbeat file and Ray's temporary folder, gives Ray's shutdown (which ends the processes
    of a local Ray that outlived the signal) a few seconds, and leaves without Python's own."""
    with contextlib.suppress(OSError):
        record.remove_driver(fs, root)
    shutil.rmtree(ray_folder, ignore_errors=True)
    shutdown = threading.Thread(target=ray.shutdown, daemon=True)
    shutdown.start()
    shutdown.join(timeout=SHUTDOWN_S)
    print(f"terminated: every finished epoch is in the record; continue with: {resume_command()}", file=sys.stderr, flush=True)
    os._exit(TERMINATED)


def heartbeat(fs: Any, root: str, started: float) -> None:
    """driver.json says this process runs the experiment; a full storage only skips a beat."""
    with contextlib.suppress(OSError):
        record.write_driver(fs, root, started)
