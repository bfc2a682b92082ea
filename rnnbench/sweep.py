"""Ray Tune glue: trainables that adapt the plain loops, the grid, where Ray runs, and resume.

The loops know nothing of Ray; this module only turns a config dict into a loop, reports one
result (with a checkpoint) per epoch, and restores from `tune.get_checkpoint()` after a crash.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Sequence

import pyarrow.fs
import ray
import torch
from ray import tune

from rnnbench import metrics as M
from rnnbench.errors import ConfigError
from rnnbench.train.classifier import ClassifierConfig, ClassifierRun
from rnnbench.train.common import load_checkpoint

STATE_FILE = "state.pt"
SPEC_FILE = "rnnbench_sweep.json"  # the grid and base config, so --resume needs only --name


class SweepError(ConfigError):
    """A sweep cannot start (bad grid, unreachable cluster, unusable storage, nothing to resume)."""


# --- trainables --------------------------------------------------------------------------------


def config_of(cls: type, config: dict[str, Any]) -> Any:
    """The loop's dataclass from a trial's config dict (Ray may add keys of its own)."""
    names = {field.name for field in dataclasses.fields(cls)}
    return cls(**{key: value for key, value in config.items() if key in names})


def use_trial_resources() -> None:
    """One torch thread per CPU the trial was given, or trials packed on a node oversubscribe it."""
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))


def run_and_report(run: Any) -> None:
    """Resume from Tune's checkpoint if there is one, then train and report every epoch with a
    checkpoint holding everything the next epoch needs (model, optimizer, RNG, epoch)."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            run.load_state_dict(load_checkpoint(Path(folder) / STATE_FILE))
    for metrics in run.epochs():
        with tempfile.TemporaryDirectory() as folder:
            run.save(Path(folder) / STATE_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def train_classifier(config: dict[str, Any], data: Any = None) -> None:
    """Tune trainable for one IMDB classifier trial; `data` arrives through the object store.

    With `restore_from` in the config (the confirmation stage), training continues from that
    checkpoint of an earlier experiment, with this config's split, lr and epoch count."""
    use_trial_resources()
    classifier_config = config_of(ClassifierConfig, config)
    if config.get("restore_from") and tune.get_checkpoint() is None:
        with tune.Checkpoint(config["restore_from"]).as_directory() as folder:
            run = ClassifierRun.restore(Path(folder) / STATE_FILE, classifier_config, data)
    else:
        run = ClassifierRun(classifier_config, data)
    run_and_report(run)


# --- where Ray runs ----------------------------------------------------------------------------


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, with the fix, rather than after Ray's long connection retries."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as error:
        raise SweepError(
            f"cannot reach a Ray cluster at {address} ({error}); start one with `ray start --head` "
            "or fix --address / RAY_ADDRESS"
        ) from None


def start_ray(address: str | None) -> None:
    """Connect to `address` (or RAY_ADDRESS), else start a Ray on this machine's cores bound to
    127.0.0.1 only (the variable below keeps it off external interfaces and refuses extra nodes)."""
    # every epoch checkpoints and only the newest is kept, which Tune warns about; it is intended
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        check_reachable(address)
        ray.init(address=address, log_to_driver=False)
    else:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray.init(address="local", include_dashboard=False, log_to_driver=False)


# --- storage -----------------------------------------------------------------------------------


def experiment_path(storage: str, name: str) -> str:
    return storage.rstrip("/") + "/" + name


def local_storage(storage: str) -> Path | None:
    """The local folder behind `storage`, or None for a remote URI such as s3://."""
    if "://" not in storage:
        return Path(storage).expanduser().resolve()
    return Path(storage[len("file://") :]) if storage.startswith("file://") else None


def normalize_storage(storage: str) -> str:
    """Ray wants absolute local paths; URIs pass unchanged."""
    folder = local_storage(storage)
    return str(folder) if folder is not None and "://" not in storage else storage


def check_storage(storage: str) -> None:
    """Make sure results can be written there before any trial starts."""
    folder = local_storage(storage)
    if folder is None:
        try:
            pyarrow.fs.FileSystem.from_uri(storage)
        except Exception as error:  # noqa: BLE001 - pyarrow raises several kinds here
            raise SweepError(f"storage {storage} is not usable ({error}); pass another --storage") from None
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".rnnbench-write-test-{uuid.uuid4().hex}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise SweepError(f"storage {folder} is not writable ({error.strerror}); pass a writable --storage") from None


def experiment_exists(path: str) -> bool:
    return tune.Tuner.can_restore(path)


def write_spec(path: str, spec: dict[str, Any]) -> None:
    filesystem, folder = pyarrow.fs.FileSystem.from_uri(path) if "://" in path else (pyarrow.fs.LocalFileSystem(), path)
    filesystem.create_dir(folder, recursive=True)
    with filesystem.open_output_stream(f"{folder}/{SPEC_FILE}") as out:
        out.write(json.dumps(spec, indent=1).encode())


def read_spec(path: str) -> dict[str, Any]:
    filesystem, folder = pyarrow.fs.FileSystem.from_uri(path) if "://" in path else (pyarrow.fs.LocalFileSystem(), path)
    try:
        with filesystem.open_input_stream(f"{folder}/{SPEC_FILE}") as stream:
            return json.loads(stream.read())
    except (FileNotFoundError, OSError):
        raise SweepError(f"{path} was not made by an rnnbench sweep (no {SPEC_FILE}); resume it with Ray Tune directly") from None


@dataclasses.dataclass(frozen=True)
class Task:
    """What a sweep script varies and runs: the loop's config class, its trainable, the grid axes
    (flag → (config field, type)), how to load data once for all trials, and the closing summary."""

    name: str
    config_cls: type
    trainable: Callable
    axes: dict[str, tuple[str, type]]
    name_keys: tuple[str, ...]
    metric: str
    load_data: Callable[[Any, dict[str, list]], Any]
    summarize: Callable[[str], None]
    confirm: Callable[[str, Any], None] | None = None


# --- the grid ----------------------------------------------------------------------------------


def trial_namer(keys: Sequence[str]) -> Callable[[Any], str]:
    """Readable, stable trial names such as `lstm_lr0.3_seed4`. A confirmation trial, named by
    `restore_from`, takes the name of the first-stage trial it continues."""

    def name(trial: Any) -> str:
        if keys == ("restore_from",):
            return trial.config["restore_from"].rstrip("/").split("/")[-2]
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
    name_keys: Sequence[str],
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
    (rnnbench.search) passes its own search algorithm, scheduler and num_samples=-1."""
    wrapped = tune.with_resources(tune.with_parameters(trainable, data=data), {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    path = experiment_path(storage, name)
    if resume:
        tuner = tune.Tuner.restore(path, wrapped, resume_unfinished=True, resume_errored=True)
    else:
        namer = trial_namer(name_keys)
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
