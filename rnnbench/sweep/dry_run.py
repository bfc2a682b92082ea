"""`--dry-run`: what a grid would run, on what, for how long and how much disk, before anything
starts. The time comes from a probe: one epoch of one trial's members per compared value (model or
grammar), fused as the sweep would fuse them, on a slice of the data, its training part scaled to
the full data; measured in CPU time and turned into wall time by the share of a core the probe got."""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from rnnbench.record import KEPT_STATES
from rnnbench.sweep.members import NAME
from rnnbench.sweep.trainable import make_group
from rnnbench.tasks import RESTORE_FROM, Task
from rnnbench.train.common import save_checkpoint

STARTUP_S = 10  # Ray's start, its workers importing torch, the summary: measured on 2 cores, BENCHMARKS.md


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
    torch.set_num_threads(max(1, int(cpus_per_trial)))  # as a trial's
    cpu_s, disk, shares = 0.0, 0, []
    for value in dict.fromkeys(member[task.per] for member in members):
        group = next(g for g in groups if any(m[task.per] == value for m in g))
        configs = [dataclasses.replace(base, **{k: v for k, v in m.items() if k not in (NAME, RESTORE_FROM)}) for m in group]
        full = getattr(configs[0], field) or len(data.train)
        group_s, share = _probe(task, configs, data, field, full, probe_size)
        member_s, shares = group_s / len(group), [*shares, share]
        count = sum(m[task.per] == value for m in members)
        cpu_s += member_s * count * base.epochs
        with tempfile.TemporaryDirectory() as folder:  # the full-data model: its vocabulary sets the size
            state = task.load("run")(configs[0], data).state_dict()
            disk += save_checkpoint(state, Path(folder) / "probe.pt").stat().st_size * count
        how = f"in a fused group of {len(group)}" if task.fused and len(group) > 1 else "alone"
        lines.append(f"probe: {value}: ~{member_s:.3g} CPU s per member-epoch {how}, with {field} {full}")
    # the probe got `probe_share` of a core beside the machine's other work; that work is `others`
    # busy processes (at most cores - 1 when the probe got a whole core), and each trial will get
    # `share` of a core beside it and the sweep's other trials
    cores, probe_share = os.cpu_count() or 1, min(1.0, sum(shares) / len(shares))
    others = cores / probe_share - 1 if probe_share < 0.95 else 0.0
    share = min(1.0, cores / (parallel + others))
    lines += [
        f"estimate: ~{_duration((STARTUP_S + cpu_s / parallel) / share)} of wall time at this machine's load now (the probe "
        f"got {probe_share:.0%} of a core),",
        f"  ~{_duration(STARTUP_S + cpu_s / parallel)} idle: {_duration(cpu_s)} of CPU time over {parallel} parallel "
        f"trials and ~{STARTUP_S} s to start Ray and its workers and to report",
    ]
    lines.append(
        f"disk: ~{disk / len(members) / 2**20:.2f} MB of state per member, {KEPT_STATES} kept: "
        f"~{disk * KEPT_STATES / 2**30:.2f} GB for the experiment"
    )
    lines.append("nothing was started or written; run the same command without --dry-run to start it")
    return "\n".join(lines)


def _probe(task: Task, configs: list[Any], data: Any, field: str, full: int, size: int) -> tuple[float, float]:
    """CPU seconds of one full-size epoch of the group `configs`, from one epoch with `field` cut
    to `size`: the training part (up to the epoch's last batch) scales with the data, the rest
    (evaluation, sampling) is taken as measured; and the share of a core the probe got. CPU time,
    not wall time, so that the estimate does not swing with what else the machine runs."""
    probes = [dataclasses.replace(config, epochs=1, **{field: min(full, size)}) for config in configs]
    group = make_group(task, probes, data if full <= size else None)
    trained: list[float] = []
    group.on_batch = lambda done, total: trained.append(time.process_time()) if done == total else None
    started, wall = time.process_time(), time.perf_counter()
    next(iter(group.epochs()))
    train_s, rest_s = trained[-1] - started, time.process_time() - trained[-1]
    return train_s * full / getattr(probes[0], field) + rest_s, (train_s + rest_s) / (time.perf_counter() - wall)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{math.ceil(seconds)} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
