"""The study's confirmation stage for a classification grid: each model's best lr, every seed
continued from its last checkpoint for more epochs on the official train/test split."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from ray import tune

from rnnbench import metrics as M
from rnnbench import results
from rnnbench.sweep.grid import run_grid
from rnnbench.sweep.members import MEMBERS, NAME, group_members
from rnnbench.sweep.recovery import checkpoint_folders
from rnnbench.sweep.runtime import SweepError, experiment_exists, filesystem, read_spec, start_ray, stored_run, write_spec
from rnnbench.sweep.trainable import PARENT, RESTORE_FROM, TASK, config_of, train_group
from rnnbench.tasks import Task
from rnnbench.train.common import load_checkpoint

CONFIRM_EPOCHS = 5


def confirm(task: Task, path: str, how: str, address: str | None, run: dict[str, Any], resume: bool) -> str:
    """Continue, for CONFIRM_EPOCHS more epochs on the official train/test split, every seed of each
    model's best lr (the same `how` rule as the summary's best setting), as experiment <name>-confirm.
    Returns the confirmation experiment's path. Ray (at `address`, else local) starts only after
    every check; `run` holds the trial resources."""
    spec = read_spec(path)
    df = results.load(path)
    unfinished = df.loc[~df["status"].isin(["finished", "diverged"]), "trial"].unique()
    if len(unfinished):
        raise SweepError(
            f"the first stage at {path} is not finished ({len(unfinished)} members are not, e.g. "
            f"{unfinished[0]}); complete it with --resume first"
        )
    objective = task.objective
    table = results.best(df, metric=objective.metric, per=task.per, how=how, by=[task.per, "lr"])  # lr even if the grid had one
    chosen = df[df.set_index([task.per, "lr"]).index.isin(list(zip(table[task.per], table["lr"])))]
    members = [
        {
            NAME: row.trial,
            task.per: getattr(row, task.per),
            "lr": float(row.lr),
            "seed": int(row.seed),
            RESTORE_FROM: _last_checkpoint(path, row.group),
        }
        for row in chosen.drop_duplicates("trial").itertuples()
        if row.status != "diverged"
    ]  # cannot go on
    base = config_of(task.load("config"), spec["base"])
    confirm_base = dataclasses.replace(base, final=True, epochs=base.epochs + CONFIRM_EPOCHS)
    with tune.Checkpoint(members[0][RESTORE_FROM]).as_directory() as folder:  # fetched if on remote storage
        vocab = tuple(load_checkpoint(os.path.join(folder, f"{members[0][NAME]}.pt"))["vocab"])
    data = task.load("load_data")(confirm_base, vocab=vocab)
    name = os.path.basename(path.rstrip("/")) + "-confirm"
    storage = path.rstrip("/").rsplit("/", 1)[0]
    confirm_path = f"{storage}/{name}"
    if resume:
        try:
            _, resume = stored_run(confirm_path)  # repairs first what a full storage left cut
        except SweepError:
            if experiment_exists(confirm_path):
                raise
            resume = False  # nothing of the confirmation was written yet: it starts
    if experiment_exists(confirm_path) and not resume:
        raise SweepError(f"confirmation experiment {confirm_path} already exists; pass --resume to continue it")
    if not resume:
        write_spec(
            confirm_path,
            {"task": task.name, "base": dataclasses.asdict(confirm_base), "axes": {}, "group": spec["group"], "parent": path},
        )
    shared = {k: v for k, v in dataclasses.asdict(confirm_base).items() if k not in (task.per, "lr", "seed")}
    param_space = {
        TASK: task.name,
        **shared,
        PARENT: path,
        MEMBERS: tune.grid_search(group_members(task, members, spec["group"])),
    }
    print(
        f"confirming {len(members)} members ({', '.join(f'{getattr(r, task.per)} lr {r.lr:g}' for r in table.itertuples())})"
        f" in {confirm_path}"
    )
    metric = M.TEST_ACC
    start_ray(address, run["cpus_per_trial"], run["gpus_per_trial"])
    trainable = tune.with_parameters(train_group, data=data, metric=metric, mode=objective.mode, how=how)
    run_grid(
        trainable,
        param_space,
        name=name,
        storage=storage,
        metric=metric,
        mode=objective.mode,
        epochs=confirm_base.epochs,
        resume=resume,
        **run,
    )
    return confirm_path


def _last_checkpoint(path: str, trial: str) -> str:
    """The newest checkpoint folder of a trial, as a path or URI."""
    fs, folder = filesystem(f"{path}/{trial}")
    found = checkpoint_folders(fs, folder)
    if not found:
        raise SweepError(f"trial {trial} of {path} has no checkpoint to continue; rerun the first stage with --resume")
    return f"{path}/{trial}/{found[-1]}"
