"""The one Tune trainable: a group of members trained by the plain loops, each member writing its
own record (rnnbench.record) and Ray told only what its schedulers and searchers need.

A config dict comes in (the task, the experiment's path, the settings all members share, and
`members`: each member's name and own values). Each member resumes from its own newest complete
state file, so a retry by Ray, a `--resume` after any crash and a first start are one code path.
Every epoch, per member: its state file, then its row, then the states beyond the newest two go;
then one Tune result with the seed-mean of the objective (for schedulers and the status line) and
the score so far (for the searcher). Within an epoch, the trial posts its batches done to the
driver's BatchBoard (rnnbench.sweep.progress). Storage that fails (full, read-only) ends the trial
with a result naming the fault instead of an error Ray would retry against the same storage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import statistics
import time
import traceback
from typing import Any

import pyarrow.fs as pafs
import ray
import torch
from ray import tune

from rnnbench import record
from rnnbench.errors import ConfigError
from rnnbench.sweep.members import MEMBERS, NAME, SCORE, setting_name
from rnnbench.sweep.storage import FAULTS
from rnnbench.tasks import RESTORE_FROM, Task, get_task
from rnnbench.train.members import Group, SerialGroup

TASK = "task"  # config key: the registry name of the task
PATH = "experiment"  # config key: the experiment's folder or URI, where members write their record

FAULT = "storage_fault"  # result key: the errno of a storage fault that ended the trial
BOARD = "rnnbench-batch-board"  # the driver's named actor that trials post batch progress to
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
    shared = {k: v for k, v in config.items() if k not in (TASK, PATH, MEMBERS)}
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


def save_state(fs: pafs.FileSystem, folder: str, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    record.write_atomic(fs, record.state_path(folder, int(state["epoch"])), buffer.getvalue())


def load_state(fs: pafs.FileSystem, path: str) -> dict[str, Any]:
    with fs.open_input_stream(path) as stream:
        return torch.load(io.BytesIO(stream.read()), map_location="cpu", weights_only=False)


def starting_states(fs: pafs.FileSystem, folders: list[str], members: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Each member's state to start from, or None to start them all afresh.

    Members that are done (diverged, or at their last epoch) start from their last state; the
    others all from one epoch: the newest every one of them can resume from (a crash between the
    members' writes of one epoch leaves some a state ahead; each keeps the one before). A member
    with `restore_from` and no record of its own starts from that state of an earlier experiment."""
    resumable = [record.resume_epoch(fs, folder) for folder in folders]
    restored = [RESTORE_FROM in member for member in members]
    initial = [load_state(*record.open_fs(member[RESTORE_FROM])) for member in members] if any(restored) else None
    if all(epoch is None for epoch in resumable):
        return initial
    rows = [record.read_rows(fs, folder) for folder in folders]
    diverged = [bool(r) and r[-1].get("diverged") is True for r in rows]
    live = [epoch for epoch, gone in zip(resumable, diverged) if not gone]
    if any(epoch is None for epoch in live):  # one member has nothing to resume from: all start again
        return initial
    common = min(live, default=None)
    return [
        load_state(fs, record.state_path(folder, epoch if gone else common))
        for folder, epoch, gone in zip(folders, resumable, diverged)
    ]


def train_group(config: dict[str, Any], data: Any = None, metric: str = "", mode: str = "max", how: str = "peak") -> None:
    """Tune trainable for one group of members; `data` arrives once through the object store."""
    use_trial_resources()
    task = get_task(config[TASK])
    fs, root = record.open_fs(config[PATH])
    members = config[MEMBERS]
    folders = [record.member_folder(root, member[NAME]) for member in members]
    configs = member_configs(task, config)
    try:
        for member, folder, member_config in zip(members, folders, configs):
            info = {
                "name": member[NAME],
                "group": tune.get_context().get_trial_name(),
                "config": dataclasses.asdict(member_config),
            }
            if RESTORE_FROM in member:
                info[RESTORE_FROM] = member[RESTORE_FROM]
            record.write_json(fs, f"{folder}/{record.MEMBER}", info)
            with contextlib.suppress(FileNotFoundError):
                fs.delete_file(f"{folder}/{record.ERROR}")
        group = make_group(task, configs, data)
        states = starting_states(fs, folders, members)
        if states is not None:
            group.load_state_dict({MEMBERS: states})
        start = max((int(state["epoch"]) for state in states or () if not state["diverged"]), default=0)
        train(group, start, fs, folders, members, metric, mode, how)
    except OSError as error:
        if error.errno not in FAULTS:
            raise
        tune.report({FAULT: error.errno})
    except Exception:
        for folder in folders:  # the members' error, for results and the summary, while unfinished
            record.write_atomic(fs, f"{folder}/{record.ERROR}", traceback.format_exc().encode())
        raise


def train(
    group: Group,
    start: int,
    fs: pafs.FileSystem,
    folders: list[str],
    members: list[dict[str, Any]],
    metric: str,
    mode: str,
    how: str,
) -> None:
    """Run the group's epochs from epoch `start`, writing each member's state and row, and report
    each epoch to Tune. A resumed peak still sees the seed-means of the epochs before `start`."""
    sign = 1 if mode == "max" else -1
    rows = [[row for row in record.read_rows(fs, folder) if row["epoch"] <= start] for folder in folders]
    means = seed_means(rows, metric)
    node_ip = ray.util.get_node_ip_address()  # which node trained it, for cluster runs
    poster = BatchPoster.connect(start)
    group.on_batch = poster
    result: dict[str, Any] = {}
    for reports in group.epochs():
        states = group.state_dict()[MEMBERS]
        for i in reports:
            save_state(fs, folders[i], states[i])
        for i, report in reports.items():
            record.append_row(fs, folders[i], {**report, "time": time.time(), "node_ip": node_ip})
            record.prune_states(fs, folders[i])
        epoch = max(int(report["epoch"]) for report in reports.values())
        values = [r[metric] for r in reports.values() if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
        if values:
            means[epoch] = statistics.fmean(values)
        if poster is not None:
            poster.epoch = epoch
        result = {
            "epoch": epoch,
            MEMBERS: {
                members[i][NAME]: {
                    "setting": setting_name(members[i]),
                    "epoch": r["epoch"],
                    metric: r.get(metric),
                    "diverged": r.get("diverged"),
                }
                for i, r in reports.items()
            },
        }
        if epoch in means:
            result.update({metric: means[epoch], SCORE: score(means, sign, how)})
        tune.report(result)
    if not result and means:  # every member was done already (a resumed search): the recorded score
        last = max(means)
        tune.report({"epoch": last, MEMBERS: {}, metric: means[last], SCORE: score(means, sign, how)})


def score(means: dict[int, float], sign: int, how: str) -> float:
    """The objective of a seed-mean curve: its best epoch (peak) or its last (final)."""
    return max(means.values(), key=lambda v: sign * v) if how == "peak" else means[max(means)]


def seed_means(rows: list[list[dict[str, Any]]], metric: str) -> dict[int, float]:
    """The members' mean of `metric` per epoch, over the members with a finite value there."""
    values: dict[int, list[float]] = {}
    for member in rows:
        for row in member:
            value = row.get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                values.setdefault(row["epoch"], []).append(value)
    return {epoch: statistics.fmean(v) for epoch, v in sorted(values.items())}


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
