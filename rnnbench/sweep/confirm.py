"""The study's confirmation stage for a classification grid: each model's best lr, every seed
continued from its last state for more epochs on the official train/test split."""

from __future__ import annotations

import dataclasses
from typing import Any

from rnnbench import record, results
from rnnbench.errors import ConfigError
from rnnbench.sweep.members import NAME, group_members
from rnnbench.sweep.storage import read_spec
from rnnbench.tasks import RESTORE_FROM, Task

CONFIRM_EPOCHS = 5


def confirm(task: Task, path: str, how: str, resume: bool) -> Any:
    """The sweep that continues, for CONFIRM_EPOCHS more epochs on the official train/test split,
    every seed of each model's best lr (the same `how` rule as the summary's best setting), as
    experiment <name>-confirm. Every check runs here, before Ray starts."""
    spec = read_spec(path)
    if spec is None:
        raise ConfigError(f"no first stage at {path} to confirm; run the grid first (same --storage and --name)")
    confirm_path = path.rstrip("/") + "-confirm"
    stored = read_spec(confirm_path)
    if stored is not None and not resume:
        raise ConfigError(f"confirmation experiment {confirm_path} already exists; pass --resume to continue it")
    df = results.load(path)
    unfinished = df.loc[~df["status"].isin(record.DONE), "trial"].unique()
    if len(unfinished):
        raise ConfigError(
            f"the first stage at {path} is not finished ({len(unfinished)} members are not, e.g. "
            f"{unfinished[0]}); complete it with --resume first"
        )
    objective = task.objective
    table = results.best(df, metric=objective.metric, per=task.per, how=how, by=[task.per, "lr"])  # lr even if the grid had one
    chosen = df[df.set_index([task.per, "lr"]).index.isin(list(zip(table[task.per], table["lr"])))]
    fs, root = record.open_fs(path)
    members = [
        {
            NAME: row.trial,
            task.per: getattr(row, task.per),
            "lr": float(row.lr),
            "seed": int(row.seed),
            RESTORE_FROM: last_state(fs, root, path, row.trial),
        }
        for row in chosen.drop_duplicates("trial").itertuples()
        if row.status != "diverged"  # cannot go on
    ]
    from rnnbench.sweep.runner import Sweep  # after the checks: Ray and torch are slow to import
    from rnnbench.sweep.trainable import config_of, load_state

    base = config_of(task.load("config"), spec["base"])
    confirm_base = dataclasses.replace(base, final=True, epochs=base.epochs + CONFIRM_EPOCHS)
    vocab = tuple(load_state(*record.open_fs(members[0][RESTORE_FROM]))["vocab"])
    data = task.load("load_data")(confirm_base, vocab=vocab)
    groups = group_members(task, members, spec["group"])
    print(
        f"confirming {len(members)} members ({', '.join(f'{getattr(r, task.per)} lr {r.lr:g}' for r in table.itertuples())}) in {confirm_path}"
    )
    new_spec: dict[str, Any] = {
        "task": task.name,
        "kind": "confirm",
        "base": dataclasses.asdict(confirm_base),
        "axes": {},
        "group": spec["group"],
        "groups": groups,
        "parent": path,
    }
    return Sweep(task, confirm_path, stored or new_spec, confirm_base, data, "test_acc", objective.mode, how, groups=groups)


def last_state(fs: Any, root: str, path: str, member: str) -> str:
    """The path (or URI) of a member's newest state in the first stage."""
    epoch = record.resume_epoch(fs, record.member_folder(root, member))
    if epoch is None:
        raise ConfigError(f"member {member} of {path} has no state to continue; rerun the first stage with --resume")
    return f"{path.rstrip('/')}/{record.MEMBERS}/{member}/state-{epoch}.pt"
