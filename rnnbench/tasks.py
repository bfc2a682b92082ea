"""The task registry: one entry per experiment kind, owning everything about it.

This module imports neither torch nor Ray, so the results layer, `--help` and the CLIs can read it
cheaply; the heavy parts of a task (config class, run class, data loading, trainable) are named by
import path and loaded only when a run needs them. Nothing outside this file branches on a task's name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from rnnbench import metrics as M
from rnnbench.errors import ConfigError

HOWS = ("peak", "final")  # score a seed-mean curve by its best epoch or by its last
# A member's key naming the checkpoint of an earlier experiment it continues (a confirmation
# stage): it tells repetitions apart and never defines a grid cell, like the seed.
RESTORE_FROM = "restore_from"


@dataclass(frozen=True)
class Objective:
    """What "best" means for a task: which metric, which way, and which epoch of the seed-mean curve."""

    metric: str
    mode: str  # "max" or "min"
    how: str = "peak"

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ConfigError(f"objective mode must be max or min, got {self.mode!r}")
        if self.how not in HOWS:
            raise ConfigError(f"--how must be peak or final, got {self.how!r}")


@dataclass(frozen=True)
class Task:
    """Everything one experiment kind owns.

    `per` is the config column whose values a report compares (models, or grammars); `axes` maps
    a sweep flag to (config field, element type) and `grid` gives each axis its default values;
    `presets` are named smaller grids; `config`, `run`, `load_data` and `trainable` are
    "module:attribute" paths, imported on first use so that reading the registry stays cheap.
    The metrics a task reports are its config's `reported_metrics()`."""

    name: str
    description: str
    per: str
    objective: Objective
    axes: dict[str, tuple[str, type]]
    grid: dict[str, tuple]
    presets: dict[str, dict[str, Any]]
    config: str
    run: str
    load_data: str
    fused: str | None = None  # a run class training several members as one computation, if the task has one
    fuse_on_cpu: bool = False  # fusing pays on CPUs too (measured: BENCHMARKS.md), so --group auto fuses there
    confirm: str | None = None  # a second stage continuing the best settings, if the task has one
    confirm_help: str = ""  # what that stage does, for --help without importing it
    probe: tuple[str, int] = ("subset", 300)  # --dry-run times an epoch with this config field cut to this size

    def load(self, attribute: str) -> Any:
        """One of the lazily named parts (`config`, `run`, `load_data`, `fused`, `confirm`), imported now."""
        module, _, name = getattr(self, attribute).partition(":")
        return getattr(importlib.import_module(module), name)


IMDB = Task(
    name="imdb",
    description="IMDB sentiment classifiers (MLP, Elman, LSTM, GRU), SGD over learning rates and seeds",
    per="model",
    objective=Objective(M.VAL_ACC, "max", "peak"),
    axes={"models": ("model", str), "lrs": ("lr", float), "seeds": ("seed", int)},
    grid={"models": ("mlp", "elman", "lstm"), "lrs": (0.001, 0.003, 0.01, 0.03, 0.1, 0.3), "seeds": (0, 1, 2, 3, 4)},
    presets={"smoke": {"models": ("mlp", "elman", "lstm"), "lrs": (0.03, 0.3), "seeds": (0, 1), "epochs": 2, "subset": 1000}},
    config="rnnbench.train.configs:ClassifierConfig",
    run="rnnbench.train.classifier:ClassifierRun",
    load_data="rnnbench.train.classifier:load_data",
    fused="rnnbench.train.group:GroupRun",
    confirm="rnnbench.sweep.confirm:confirm",
    confirm_help="the study's confirmation: each model's best lr (by --how), every seed continued 5 epochs on the "
    "official train/test split, as experiment <name>-confirm",
)

GRAMMAR = Task(
    name="grammar",
    description="next-token LSTM/GRU language models on generated grammars, scored by sampling",
    per="dataset",
    # ndfa samples are only judged fairly at t >= 0.75 (t = 0 always emits the likeliest word)
    objective=Objective(M.synth_acc(1.0), "max", "peak"),
    axes={"datasets": ("dataset", str), "lrs": ("lr", float), "seeds": ("seed", int)},
    grid={"datasets": ("brackets", "ndfa"), "lrs": (0.01, 0.03, 0.1, 0.3, 1.0, 3.0), "seeds": tuple(range(10))},
    presets={"smoke": {"datasets": ("brackets", "ndfa"), "lrs": (0.3, 1.0), "seeds": (0, 1), "epochs": 2, "n": 20_000}},
    config="rnnbench.train.configs:GrammarConfig",
    run="rnnbench.train.autoregressor:GrammarRun",
    load_data="rnnbench.train.autoregressor:load_data",
    fused="rnnbench.train.autoregressor:GrammarGroup",
    fuse_on_cpu=True,  # BENCHMARKS.md, "Grammar groups on 2 CPU cores"
    # a small n overstates a step: its few buckets put brackets' long words in wider steps (padded
    # slots per word at K = 30: 524 at n 8,000, 371 at 20,000, 320 at 150,000; ndfa 492 to 455)
    probe=("n", 8000),
)

TASKS: dict[str, Task] = {task.name: task for task in (IMDB, GRAMMAR)}


def get_task(name: str) -> Task:
    """The registry entry, or a one-line error listing the tasks there are."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None
