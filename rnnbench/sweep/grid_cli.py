"""The command line the sweep scripts share: axes, config flags, run flags, presets, resume,
one-line errors. `sweeps/imdb_grid.py` and `sweeps/grammar_grid.py` only say which Task and grid."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, NoReturn, Sequence

from rnnbench.config import add_config_args, given_config
from rnnbench.errors import ConfigError, DataError
from rnnbench.results import ResultsError
from rnnbench.sweep.grid import Task, run_grid
from rnnbench.sweep.runtime import check_storage, experiment_exists, experiment_path, normalize_storage, read_spec, start_ray, write_spec


class SweepParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line naming the problem and where to look, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def build_parser(task: Task, grid: dict[str, tuple], presets: dict[str, dict[str, Any]], doc: str) -> SweepParser:
    parser = SweepParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    axes = parser.add_argument_group("the grid (every combination runs)")
    for flag, (field, kind) in task.axes.items():
        axes.add_argument(f"--{flag}", nargs="+", type=kind, default=None, help=f"default: {' '.join(map(str, grid[flag]))}")
    add_config_args(parser.add_argument_group("every trial's settings"), task.config_cls, skip=tuple(f for f, _ in task.axes.values()))
    run = parser.add_argument_group("where and how it runs")
    run.add_argument("--preset", choices=sorted(presets), help="; ".join(f"{k}: {v}" for k, v in presets.items()))
    add_run_args(run, f"{task.name}_grid, plus _<preset>")
    return parser


def add_run_args(run: argparse._ArgumentGroup, default_name: str) -> None:
    """Where and how trials run: the flags every sweep script (grid or search) shares."""
    run.add_argument("--storage", default="./results", help="results folder, NFS path or URI such as s3://bucket/x (default: ./results)")
    run.add_argument("--name", default=None, help=f"experiment name inside --storage (default: {default_name})")
    run.add_argument("--address", default=None, help="Ray cluster host:port (default: $RAY_ADDRESS, else a local Ray on this machine's cores)")
    run.add_argument("--cpus-per-trial", type=float, default=1, help="default: 1")
    run.add_argument("--gpus-per-trial", type=float, default=0, help="fractions pack several trials on one GPU, e.g. 0.25 (default: 0)")
    run.add_argument("--max-concurrent", type=int, default=None, help="cap on trials running at once (default: what resources allow)")
    run.add_argument("--resume", action="store_true", help="continue the interrupted experiment --name: finished trials are kept, unfinished ones go on from their last epoch")


def main(task: Task, grid: dict[str, tuple], presets: dict[str, dict[str, Any]], doc: str, argv: Sequence[str] | None = None) -> int:
    parser = build_parser(task, grid, presets, doc)
    if task.confirm is not None:
        parser.add_argument("--confirm", action="store_true", help=task.confirm.__doc__)
    args = parser.parse_args(argv)
    preset = presets.get(args.preset or "", {})
    name = args.name or f"{task.name}_grid" + (f"_{args.preset}" if args.preset else "")
    try:
        storage = normalize_storage(args.storage)
        path = experiment_path(storage, name)
        if getattr(args, "confirm", False):
            check_storage(storage)
            task.confirm(path, args)
            return 0
        if args.resume:
            if not experiment_exists(path):
                raise ConfigError(f"no experiment to resume at {path}; check --storage and --name")
            spec = read_spec(path)
            base, axes = task.config_cls(**spec["base"]), spec["axes"]
        else:
            axes = {flag: list(getattr(args, flag) or preset.get(flag) or grid[flag]) for flag in task.axes}
            fields = {k: v for k, v in preset.items() if k not in task.axes}
            base = task.config_cls(**{**fields, **given_config(task.config_cls, args)})
            check_grid(task, base, axes)
            check_storage(storage)
            if experiment_exists(path):
                raise ConfigError(f"experiment {path} already exists; pass --resume to continue it or another --name")
        start_ray(args.address, args.cpus_per_trial, args.gpus_per_trial)
        data = task.load_data(base, axes)
        if not args.resume:
            write_spec(path, {"task": task.name, "base": dataclasses.asdict(base), "axes": axes})
        param_space = {**dataclasses.asdict(base), **{field: {"grid_search": axes[flag]} for flag, (field, _) in task.axes.items()}}
        run_grid(
            task.trainable, param_space, name=name, storage=storage, namer=task.namer, metric=task.metric,
            epochs=base.epochs, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
            max_concurrent=args.max_concurrent, resume=args.resume, data=data,
        )
        task.summarize(path)
    except (ConfigError, DataError, ResultsError) as error:
        fail(str(error))
    return 0


def check_grid(task: Task, base: Any, axes: dict[str, list]) -> None:
    """Build every combination's config once, so a bad value fails before Ray starts."""
    for flag, (field, _) in task.axes.items():
        if not axes[flag]:
            raise ConfigError(f"--{flag} is empty; give at least one value")
        for value in axes[flag]:
            dataclasses.replace(base, **{field: value})
