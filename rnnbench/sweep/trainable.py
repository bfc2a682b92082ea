"""The one Tune trainable: it adapts a group of plain training runs to Ray Tune and nothing more.

A config dict comes in (the task, the settings all members share, and `members`: each member's
name and own values); once per epoch one result goes out holding every member's metrics under
`members`, the seed-mean of the objective at the top level (for schedulers, searchers and the
status line), and one checkpoint folder with a solo-compatible state file per member. After a
crash the trial resumes from `tune.get_checkpoint()`. Within an epoch, the trial posts its batches
done to the driver's BatchBoard (rnnbench.sweep.grid), not as results.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from rnnbench.errors import ConfigError
from rnnbench.sweep.grid import BOARD
from rnnbench.sweep.members import MEMBERS, NAME
from rnnbench.tasks import RESTORE_FROM, Task, get_task
from rnnbench.train.common import load_checkpoint, save_checkpoint
from rnnbench.train.members import Group, SerialGroup

TASK = "task"  # config key: the registry name of the task
PARENT = "parent_experiment"  # config key: the experiment a confirmation stage continues
SCORE = "score"  # result key: the objective so far (the best or the latest seed-mean, by `how`)
SCORE_FILE = "score.json"  # beside the members' states in a checkpoint
POST_EVERY_S = 2.0  # a trial posts its batch progress at most this often (the status line prints every 20 s)


def config_of(cls: type, config: dict[str, Any]) -> Any:
    """The loop's dataclass from a member's config dict; an unknown key is an error, not dropped."""
    names = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(config) - names)
    if unknown:
        raise ConfigError(f"{cls.__name__} has no field {', '.join(unknown)}; check the sweep's config keys")
    return cls(**config)


def member_configs(task: Task, config: dict[str, Any]) -> list[Any]:
    """Each member's loop config: the shared settings overridden by the member's own values."""
    cls = task.load("config")
    shared = {k: v for k, v in config.items() if k not in (TASK, MEMBERS, PARENT)}
    own = [{k: v for k, v in member.items() if k not in (NAME, RESTORE_FROM)} for member in config[MEMBERS]]
    return [config_of(cls, {**shared, **values}) for values in own]


def make_group(task: Task, configs: list[Any], data: Any) -> Group:
    """A fused group when the task has one and there is more than one member, else serial runs."""
    if task.fused and len(configs) > 1:
        return task.load("fused")(configs, data)
    run_cls = task.load("run")
    return SerialGroup([run_cls(config, data) for config in configs])


def use_trial_resources() -> None:
    """One torch thread per CPU the trial was given, or trials packed on a node oversubscribe it."""
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))


def train_group(config: dict[str, Any], data: Any = None, metric: str = "", mode: str = "max", how: str = "peak") -> None:
    """Tune trainable for one group of members; `data` arrives once through the object store.

    A member with `restore_from` (the confirmation stage) starts from its own state in that
    checkpoint folder of an earlier experiment, with this config's split, lr and epoch count."""
    use_trial_resources()
    task = get_task(config[TASK])
    members = config[MEMBERS]
    group = make_group(task, member_configs(task, config), data)
    sign, best, states = (1 if mode == "max" else -1), None, []
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        states = _read_states(checkpoint, members)
        with checkpoint.as_directory() as folder:  # the score so far, so a resumed peak still sees earlier epochs
            best = json.loads((Path(folder) / SCORE_FILE).read_text())[SCORE]
    elif any(RESTORE_FROM in member for member in members):
        states = [_read_states(tune.Checkpoint(m[RESTORE_FROM]), [m])[0] for m in members]
    if states:
        group.load_state_dict({MEMBERS: states})
    poster = BatchPoster.connect(max((int(state["epoch"]) for state in states), default=0))
    group.on_batch = poster
    for reports in group.epochs():
        named = {members[i][NAME]: report for i, report in reports.items()}
        values = [r[metric] for r in named.values() if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
        summary: dict[str, Any] = {"epoch": max(int(r["epoch"]) for r in named.values()), MEMBERS: named}
        if poster is not None:
            poster.epoch = summary["epoch"]
        if values:
            mean = statistics.fmean(values)
            best = mean if best is None or how == "final" or sign * mean > sign * best else best
            summary.update({metric: mean, f"{metric}_std": statistics.stdev(values) if len(values) > 1 else 0.0, SCORE: best})
        with tempfile.TemporaryDirectory() as folder:
            for member, state in zip(members, group.state_dict()[MEMBERS]):
                save_checkpoint(state, Path(folder) / f"{member[NAME]}.pt")
            (Path(folder) / SCORE_FILE).write_text(json.dumps({SCORE: best}))
            tune.report(summary, checkpoint=tune.Checkpoint.from_directory(folder))


class BatchPoster:
    """The group's `on_batch` hook in a trial: posts (epoch in progress, done, total) to the
    driver's BatchBoard at most every POST_EVERY_S, and always the first and last batch of an
    epoch. Posts are fire-and-forget: training never waits for the driver."""

    def __init__(self, board: Any, trial_id: str, epoch: int):
        self.board, self.trial_id = board, trial_id
        self.epoch = epoch  # the last epoch reported; batches belong to the next one
        self.last = -math.inf

    @classmethod
    def connect(cls, epoch: int) -> BatchPoster | None:
        """A poster to the board of the sweep this trial runs in, or None when there is no board
        (a Tuner of one's own, without rnnbench's Progress callback)."""
        try:
            board = ray.get_actor(BOARD)
        except ValueError:
            return None
        return cls(board, tune.get_context().get_trial_id(), epoch)

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done in (1, total) or now - self.last >= POST_EVERY_S:
            self.last = now
            self.board.post.remote(self.trial_id, self.epoch + 1, done, total)


def _read_states(checkpoint: tune.Checkpoint, members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each member's state from a checkpoint folder (fetched first if it is on remote storage)."""
    with checkpoint.as_directory() as folder:
        return [load_checkpoint(Path(folder) / f"{member[NAME]}.pt") for member in members]
