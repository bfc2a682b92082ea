"""Grid members and their grouping into trials; no Ray here, so the CLIs can use it before Ray starts.

A *member* is one configuration of the grid (model, lr, seed, ...) and the unit of statistics: the
results layer gives it one row per epoch. A *trial* trains a group of members that share
architecture and data (rnnbench.sweep.trainable); with `--group none` every trial has one member.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from rnnbench.errors import ConfigError
from rnnbench.tasks import RESTORE_FROM, Task

MEMBERS = "members"  # config key: the list of members a trial trains
NAME = "name"  # a member's key: its readable name, e.g. lstm_lr0.3_seed4
SCORE = "score"  # a trial's result key: the objective so far (the best or the latest seed-mean, by `how`)
# none: one member per trial; seeds: a trial per setting with all its seeds; all: a trial per model
# (or grammar) with every lr and seed of it
GROUPINGS = ("none", "seeds", "all")
# Fused groups on CPUs train at least this many members per trial: a member's step costs about the
# same at K = 30 and 60 but 22% more at K = 10 (BENCHMARKS.md, issue 18).
MIN_CPU_GROUP = 10


def member_name(member: dict[str, Any], keys: list[str]) -> str:
    """Readable, stable names such as `lstm_lr0.3_seed4`."""
    return "_".join(f"{member[k]}" if isinstance(member[k], str) else f"{k}{member[k]:g}" for k in keys)


def setting_name(member: dict[str, Any]) -> str:
    """The member's setting, i.e. its name without the seed (`lstm_lr0.3`): what seeds repeat."""
    return member_name(member, [k for k in member if k not in (NAME, RESTORE_FROM, "seed")])


def grid_members(task: Task, axes: dict[str, list]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, in grid order, each with its name (a value given
    twice, which would give two members one name, is refused before: rnnbench.sweep.cli.check_values)."""
    fields = [field for field, _ in task.axes.values()]
    members = []
    for values in itertools.product(*(axes[flag] for flag in task.axes)):
        member = dict(zip(fields, values))
        members.append({NAME: member_name(member, fields), **member})
    return members


def group_members(task: Task, members: list[dict[str, Any]], grouping: str) -> list[list[dict[str, Any]]]:
    """Partition the members into trials: none, seeds (what differs only by seed) or all (what
    shares the compared column, i.e. one model or one grammar with all its lrs and seeds)."""
    if grouping not in GROUPINGS:
        raise ConfigError(f"unknown --group {grouping!r}; use one of {', '.join(GROUPINGS)}")
    fields = [field for field, _ in task.axes.values()]
    shared = {"none": fields + [NAME], "seeds": [f for f in fields if f != "seed"], "all": [task.per]}[grouping]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for member in members:
        groups.setdefault(tuple(member[k] for k in shared), []).append(member)
    return list(groups.values())


def cpu_group_size(members: int, slots: int) -> int:
    """Members per fused trial on CPUs: small enough for two trials per slot (a trial runs on one),
    so that groups of unequal cost even out over the cores (a grammar grid's ndfa group costs 1.5x
    its brackets group) and no core idles while others train, but at least MIN_CPU_GROUP."""
    return max(MIN_CPU_GROUP, math.ceil(members / (2 * max(1, slots))))


def split_groups(groups: list[list[dict[str, Any]]], size: int) -> list[list[dict[str, Any]]]:
    """Each group cut, in grid order, into the fewest near-equal parts of at most `size` members."""
    out = []
    for group in groups:
        parts = math.ceil(len(group) / size)
        out += [group[i * len(group) // parts : (i + 1) * len(group) // parts] for i in range(parts)]
    return out


def group_name(members: list[dict[str, Any]]) -> str:
    """A trial's name: its member's name, or each field's value (or range, e.g. `seed0-4`)."""
    if len(members) == 1:
        return members[0][NAME]
    parts = []
    for key in members[0]:
        if key in (NAME, RESTORE_FROM):
            continue
        values = sorted({m[key] for m in members})
        if len(values) == 1:
            parts.append(member_name(members[0], [key]))
        else:
            parts.append(f"{key}{values[0]:g}-{values[-1]:g}")
    return "_".join(parts)


def trial_name(trial: Any) -> str:
    """A Tune trial's name: its group's name."""
    return group_name(trial.config[MEMBERS])
