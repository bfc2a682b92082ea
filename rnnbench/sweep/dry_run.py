"""`--dry-run`: what a grid would run, on what, for how long and how much disk, before anything
starts. The time comes from a probe: one epoch of one member per compared value (model or grammar)
on a slice of the data, on this machine, its training part scaled to the full data."""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from rnnbench import metrics as M
from rnnbench.record import KEPT_STATES
from rnnbench.sweep.members import NAME
from rnnbench.tasks import RESTORE_FROM, Task
from rnnbench.train.common import save_checkpoint


def plan(
    task: Task,
    base: Any,
    data: Any,
    groups: list[list[dict[str, Any]]],
    grouping: str,
    cpus_per_trial: float,
    gpus_per_trial: float,
    max_concurrent: int | None,
) -> str:
    """The dry run's report: trials, members, resources, a time estimate and a disk estimate."""
    members = [member for group in groups for member in group]
    member_epochs = len(members) * base.epochs
    slots = max(1, int((os.cpu_count() or 1) // cpus_per_trial))
    parallel = min(len(groups), slots, max_concurrent or len(groups))
    lines = [
        f"dry run: {task.name}, {len(members)} members in {len(groups)} trials ({grouping} grouped) x "
        f"{base.epochs} epochs = {member_epochs} member-epochs",
        f"resources: {cpus_per_trial:g} CPUs and {gpus_per_trial:.3g} GPUs per trial; {parallel} trials at a "
        f"time on this machine's {os.cpu_count()} CPUs",
    ]
    field, probe_size = task.probe
    seconds, disk = 0.0, 0
    for value in dict.fromkeys(member[task.per] for member in members):
        first = next(m for m in members if m[task.per] == value)
        config = dataclasses.replace(base, **{k: v for k, v in first.items() if k not in (NAME, RESTORE_FROM)})
        full = getattr(config, field) or len(data.train)
        epoch_s = _probe(task, config, data, field, full, probe_size)
        count = sum(m[task.per] == value for m in members)
        seconds += epoch_s * count * base.epochs
        with tempfile.TemporaryDirectory() as folder:  # the full-data model: its vocabulary sets the size
            state = task.load("run")(config, data).state_dict()
            disk += save_checkpoint(state, Path(folder) / "probe.pt").stat().st_size * count
        lines.append(f"probe: {value}: ~{epoch_s:.3g} s per member-epoch with {field} {full}, on this machine")
    lines.append(
        f"estimate: ~{_duration(seconds / parallel)} of wall time unfused on this machine, if it stays as "
        "loaded as during the probe "
        f"({_duration(seconds)} of trial time over {parallel} parallel trials"
        + ("; fused groups on a GPU are several times faster, see BENCHMARKS.md" if task.fused else "")
        + ")"
    )
    lines.append(
        f"disk: ~{disk / len(members) / 2**20:.2f} MB of state per member, {KEPT_STATES} kept: "
        f"~{disk * KEPT_STATES / 2**30:.2f} GB for the experiment"
    )
    lines.append("nothing was started or written; run the same command without --dry-run to start it")
    return "\n".join(lines)


def _probe(task: Task, config: Any, data: Any, field: str, full: int, size: int) -> float:
    """Seconds of one full-size epoch of `config`, from one epoch with `field` cut to `size`: the
    training part scales with the data, the rest (evaluation, sampling) is taken as measured."""
    probe = dataclasses.replace(config, epochs=1, **{field: min(full, size)})
    run = task.load("run")(probe, data if full <= size else None)
    metrics = next(iter(run.epochs()))
    train_s = len(run.data.train.tokens) / metrics[M.TOKENS_PER_S]
    return train_s * full / getattr(probe, field) + max(0.0, metrics[M.EPOCH_S] - train_s)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{math.ceil(seconds)} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
