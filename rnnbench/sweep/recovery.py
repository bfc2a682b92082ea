"""Resume from the checkpoints that are really on storage, not only from the ones Ray's saved
experiment state names.

Ray deletes a trial's checkpoints beyond `CheckpointConfig(num_to_keep)` the moment it registers a
newer one, but writes the experiment state naming the newer one only later (it forces a write every
`num_to_keep` checkpoints of a trial, at the controller's next step). A driver killed in between
leaves a state that names a deleted checkpoint, and Ray's resume of that trial fails ("Could not
recover from checkpoint as it does not exist on storage anymore") until the trial errors. No
`num_to_keep` closes that window; `CheckpointFallback` repairs such trials before any of them starts.

This is the one module that touches Ray's private checkpoint bookkeeping (`Trial.run_metadata.
checkpoint_manager`, `StorageContext.current_checkpoint_index`, `_TrainingResult`, the Tuner's
`_local_tuner`): the project pins ray < 2.61, and these names were read in Ray 2.60.
"""

from __future__ import annotations

import json
import posixpath
import re
import sys
from typing import Any

import pyarrow.fs
from ray import tune
from ray.train._internal.session import _TrainingResult
from ray.train._internal.storage import _exists_at_fs_path
from ray.tune.experiment import Trial

from rnnbench.sweep.members import MEMBERS, NAME

CHECKPOINT_FOLDER = re.compile(r"checkpoint_(\d+)")  # Ray's StorageContext names them checkpoint_%06d
RESULT_FILE = "result.json"  # Ray's per-trial log of reported results, one JSON object a line


class CheckpointFallback(tune.Callback):
    """Before a resumed experiment starts any trial, `repair` each one it will run: forget its
    deleted checkpoints and, if the one it would resume from is gone, fall back (see `repair`).

    It acts once, on the controller's first step, which runs before any trial actor starts; a
    fresh experiment has nothing to repair then."""

    def __init__(self) -> None:
        self.done = False

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        if self.done:
            return
        self.done = True
        for trial in trials:
            if trial.status in (Trial.PENDING, Trial.PAUSED):  # the ones this run will (re)start
                repair(trial)


def repair(trial: Trial) -> None:
    """Make the trial's checkpoint bookkeeping agree with its folder on storage.

    Deleted checkpoints are dropped from the kept list: Ray's next deletion of one would raise
    ("Error handling checkpoint"), skipping its own index update, after which it writes a newer
    checkpoint under an existing name and later deletes it as the worst. When the latest one is
    gone, the trial resumes from the newest complete checkpoint whose result is in the trial's
    result.json on storage, else starts over. A newer checkpoint without its row is an epoch the
    driver never logged there (the driver syncs result.json to storage with the experiment state,
    while trials write checkpoints straight to storage); resuming past it would lose that row. The
    next checkpoint then gets a folder name not used yet."""
    manager = trial.run_metadata.checkpoint_manager
    fs = trial.storage.storage_filesystem
    kept = [r for r in manager._checkpoint_results if _exists_at_fs_path(r.checkpoint.filesystem, r.checkpoint.path)]
    latest = manager._latest_checkpoint_result
    if latest is None or _exists_at_fs_path(latest.checkpoint.filesystem, latest.checkpoint.path):
        if len(kept) != len(manager._checkpoint_results):
            manager._checkpoint_results = kept
            _changed(trial)
        return
    folder = trial.storage.trial_fs_path
    present = checkpoint_folders(fs, folder)
    rows = result_rows(fs, posixpath.join(folder, RESULT_FILE))
    members = [member[NAME] for member in trial.config.get(MEMBERS, [])]
    usable = [name for name in present if name in rows and is_complete(fs, posixpath.join(folder, name), members)]
    if usable:  # all of them kept, so that Ray deletes the older ones in turn, as it would have
        results = [_TrainingResult(tune.Checkpoint(posixpath.join(folder, n), fs), rows[n]) for n in usable]
        manager._latest_checkpoint_result = results[-1]
        manager._checkpoint_results = results
        note = f"resumes from {usable[-1]}"
    else:
        manager._latest_checkpoint_result = None
        manager._checkpoint_results = []
        note = "starts over (no complete checkpoint with a logged result is left)"
    if present:  # the index of the last checkpoint written; the trial writes the next one at +1
        trial.storage.current_checkpoint_index = checkpoint_index(present[-1])
    _changed(trial)
    print(f"note: {trial} {note} (the checkpoint the experiment state names is missing)", file=sys.stderr, flush=True)


def checkpoint_folders(fs: pyarrow.fs.FileSystem, folder: str) -> list[str]:
    """The trial's checkpoint folder names, oldest first."""
    found = fs.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True))
    names = [info.base_name for info in found if info.type == pyarrow.fs.FileType.Directory]
    return sorted((n for n in names if CHECKPOINT_FOLDER.fullmatch(n)), key=checkpoint_index)


def checkpoint_index(name: str) -> int:
    return int(CHECKPOINT_FOLDER.fullmatch(name)[1])


def is_complete(fs: pyarrow.fs.FileSystem, folder: str, members: list[str]) -> bool:
    """Whether the folder holds everything the trainable reads back: the score and each member's state."""
    from rnnbench.sweep.trainable import SCORE_FILE  # here: trainable imports grid, which imports this module

    files = [SCORE_FILE, *(f"{name}.pt" for name in members)]
    return all(info.type == pyarrow.fs.FileType.File for info in fs.get_file_info([posixpath.join(folder, f) for f in files]))


def result_rows(fs: pyarrow.fs.FileSystem, path: str) -> dict[str, dict[str, Any]]:
    """The logged result of each checkpoint, by its folder name (a torn last line is skipped)."""
    try:
        with fs.open_input_stream(path) as stream:
            text = stream.read().decode()
    except (FileNotFoundError, OSError):
        return {}
    rows = {}
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and row.get("checkpoint_dir_name"):
            rows[row["checkpoint_dir_name"]] = row
    return rows


def with_fallback(tuner: tune.Tuner) -> tune.Tuner:
    """The restored Tuner, sure to run a CheckpointFallback.

    `Tuner.restore` takes no callbacks: it unpickles the RunConfig, callbacks included, that the
    experiment was created with, so a run created by `run_grid` brings its own. An experiment
    created before that (or by other code) gets one added here. Under Ray Client the Tuner lives
    remotely; it then keeps the callbacks it was created with."""
    local = tuner._local_tuner
    if local is not None:
        run_config = local.get_run_config()
        callbacks = list(run_config.callbacks or [])
        if not any(isinstance(c, CheckpointFallback) for c in callbacks):
            run_config.callbacks = [*callbacks, CheckpointFallback()]
    return tuner


def _changed(trial: Trial) -> None:
    """Make Ray write the repaired bookkeeping with the next experiment state."""
    trial.invalidate_json_state()
    trial.run_metadata.invalidate_cache()
