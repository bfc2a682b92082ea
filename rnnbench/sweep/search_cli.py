"""The command line of `sweeps/search.py`: a seed-aware Optuna search on Ray Tune for one task.

Every flag is checked, and the study's compatibility on --resume, before Ray starts; a problem
is one `error:` line and exit 2. The search's definition (task, space, seeds, metric, sampler,
pruner, base config) is stored in the study and in the experiment's spec file, so --resume
needs only --task, --storage and --name; --budget may be raised to search further."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from rnnbench import metrics as M
from rnnbench import results
from rnnbench.config import add_config_args, given_config
from rnnbench.errors import ConfigError, DataError
from rnnbench.results.columns import higher_is_better
from rnnbench.sweep.search import run_search
from rnnbench.sweep.search_report import search_report
from rnnbench.sweep.seed_study import (STUDY_FILE, SearchSpace, SeedStudy, create_study, set_limits, storage_url,
                                 stored_budget, stored_spec)
from rnnbench.sweep.grid import Task
from rnnbench.sweep.runtime import check_storage, experiment_exists, experiment_path, local_storage, normalize_storage, start_ray, write_spec
from rnnbench.sweep.grid_cli import SweepParser, add_run_args, fail
from rnnbench.sweep.tasks import GRAMMAR, IMDB

TASKS = {"imdb": IMDB, "grammar": GRAMMAR}
# ndfa samples are only judged fairly at t >= 0.75 (t=0 always emits the likeliest word)
DEFAULT_METRIC = {"imdb": M.VAL_ACC, "grammar": M.synth_acc(1.0)}
# The search's definition: stored with the study; on --resume a flag may only repeat it.
DEFAULTS = {"lr_range": [1e-3, 3.0], "batch_sizes": None, "hidden_dims": None, "num_seeds": 3, "how": "peak",
            "sampler": "tpe", "sampler_seed": 0, "startup_trials": 5, "pruner": "median"}
DEFAULT_BUDGET = 20


def build_parser(task: Task, doc: str) -> SweepParser:
    parser = SweepParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), required=True, help="what a trial trains")
    space = parser.add_argument_group("the search (stored with the study; --resume keeps it)")
    space.add_argument("--lr-range", nargs=2, type=float, metavar=("LOW", "HIGH"), help="log-uniform (default: 0.001 3)")
    space.add_argument("--batch-sizes", nargs="+", type=int, help="also choose the batch size from these (default: fixed)")
    space.add_argument("--hidden-dims", nargs="+", type=int, help="also choose the hidden size from these (default: fixed)")
    space.add_argument("--num-seeds", type=int, help="S: seeds 0..S-1 per configuration, run as parallel trials (default: 3)")
    space.add_argument("--metric", help="objective (default: val_acc for imdb, synth_acc@t1 for grammar)")
    space.add_argument("--how", choices=("peak", "final"), help="score = best or last epoch of the seed-mean curve (default: peak)")
    space.add_argument("--sampler", choices=("tpe", "random"), help="default: tpe")
    space.add_argument("--sampler-seed", type=int, help="default: 0")
    space.add_argument("--startup-trials", type=int, help="random configurations before TPE, and completed ones before pruning (default: 5)")
    space.add_argument("--pruner", choices=("median", "none"), help="median rule on the seed-mean per epoch (default: median)")
    space.add_argument("--no-prune", dest="pruner", action="store_const", const="none", help="same as --pruner none")
    limits = parser.add_argument_group("how long it searches")
    limits.add_argument("--budget", type=int, help=f"configurations in the study in all, earlier sessions included (default: {DEFAULT_BUDGET})")
    limits.add_argument("--time-budget", type=float, metavar="SECONDS", help="start no new configuration after this long; started ones finish")
    add_config_args(parser.add_argument_group("every trial's settings"), task.config_cls, skip=("lr", "seed"))
    run = parser.add_argument_group("where and how it runs")
    add_run_args(run, f"{task.name}_search")
    run.add_argument("--compare-grid", metavar="PATH", help="a grid experiment whose best setting the report shows beside the search's")
    return parser


def main(doc: str, argv: Sequence[str] | None = None) -> int:
    pre = SweepParser(add_help=False)  # the task decides which config flags exist
    pre.add_argument("--task", choices=sorted(TASKS))
    known, _ = pre.parse_known_args(argv)
    task = TASKS[known.task or "grammar"]
    args = build_parser(task, doc).parse_args(argv)
    name = args.name or f"{task.name}_search"
    try:
        storage = normalize_storage(args.storage)
        path = experiment_path(storage, name)
        spec = resumed_spec(task, args, path, name) if args.resume else new_spec(task, args, path)
        grid = load_grid(args.compare_grid, spec["metric"]) if args.compare_grid else None
        budget = check_limits(args, path, name)
        base = task.config_cls(**spec["base"])
        start_ray(args.address, args.cpus_per_trial, args.gpus_per_trial)
        data = task.load_data(base, {})
        url = storage_url(path)
        if not args.resume:
            write_spec(path, {"kind": "search", **spec})
            create_study(url, name, spec["direction"], spec)
        set_limits(url, name, budget, time.time() + args.time_budget if args.time_budget else None)
        sampler = {"kind": spec["sampler"], "seed": spec["sampler_seed"], "startup": spec["startup_trials"]}
        seeds = SeedStudy(url, name, spec["num_seeds"], spec["direction"], spec["how"], sampler, spec["pruner"])
        run_search(
            task.trainable, spec["base"], seeds, SearchSpace.from_dict(spec["space"]), metric=spec["metric"], name=name,
            storage=storage, epochs=base.epochs, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
            max_concurrent=args.max_concurrent, resume=args.resume and experiment_exists(path), data=data,
        )
    except (ConfigError, DataError, results.ResultsError) as error:
        fail(str(error))
    print(search_report(path, name, spec, grid))
    return 0


def search_definition(task: Task, args: argparse.Namespace, base: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """The stored description of a search: the flags given, `defaults` (DEFAULTS for a new
    search, the stored values on --resume) for the rest."""
    values = {k: getattr(args, k) if getattr(args, k) is not None else defaults[k] for k in (*DEFAULTS, "metric")}
    low, high = values.pop("lr_range")
    space = SearchSpace(low, high, *(tuple(v) if v else None for v in (values.pop("batch_sizes"), values.pop("hidden_dims"))))
    return {**values, "space": space.to_dict(), "params": list(space.distributions()),
            "direction": "maximize" if higher_is_better(values["metric"]) else "minimize", "base": dataclasses.asdict(base)}


def as_flags(spec: dict[str, Any]) -> dict[str, Any]:
    """A stored search as flag values, the defaults a resumed search's flags are checked against."""
    space = spec["space"]
    return {**{k: spec[k] for k in (*DEFAULTS, "metric") if k in spec}, "lr_range": [space["lr_low"], space["lr_high"]],
            "batch_sizes": space["batch_sizes"], "hidden_dims": space["hidden_dims"]}


def new_spec(task: Task, args: argparse.Namespace, path: str) -> dict[str, Any]:
    """Check every setting of a new search (and that nothing is there yet) before Ray starts."""
    base = task.config_cls(**given_config(task.config_cls, args))
    spec = {"task": task.name, **search_definition(task, args, base, {**DEFAULTS, "metric": DEFAULT_METRIC[task.name]})}
    if spec["num_seeds"] < 1:
        raise ConfigError(f"--num-seeds must be >= 1, got {spec['num_seeds']}")
    if spec["startup_trials"] < 0:
        raise ConfigError(f"--startup-trials must be >= 0, got {spec['startup_trials']}")
    space = SearchSpace.from_dict(spec["space"])
    for values in ({"lr": space.lr_low}, {"lr": space.lr_high}, *({"batch_size": b} for b in space.batch_sizes or ()),
                   *({"hidden_dim": h} for h in space.hidden_dims or ())):
        dataclasses.replace(base, **values)  # a bad value fails here, not in a trial
    check_metric(task, base, spec["metric"])
    check_storage(normalize_storage(args.storage))
    if local_storage(args.storage) is None:
        raise ConfigError("the Optuna study is a SQLite file next to the experiment, so --storage must be a local or NFS folder, not a URI")
    if experiment_exists(path) or (Path(path) / STUDY_FILE).exists():
        raise ConfigError(f"a search already exists at {path}; pass --resume to continue it or another --name")
    return spec


def resumed_spec(task: Task, args: argparse.Namespace, path: str, name: str) -> dict[str, Any]:
    """The stored search, after checking it exists, is this task's, and no flag contradicts it."""
    if not (Path(path) / STUDY_FILE).exists():
        raise ConfigError(f"no search to resume at {path} (no {STUDY_FILE}); check --storage and --name")
    stored = stored_spec(storage_url(path), name)
    if stored.get("task") != task.name:
        raise ConfigError(f"the study at {path} is a {stored['task']} search, not {task.name}; pass --task {stored['task']}")
    base = task.config_cls(**{**stored["base"], **given_config(task.config_cls, args)})
    wanted = json.loads(json.dumps(search_definition(task, args, base, as_flags(stored))))  # tuples as stored: lists
    clashes = [k for k in wanted if wanted[k] != stored.get(k)]
    if clashes:
        raise ConfigError(f"the existing study at {path} was made with other settings "
                          f"({'; '.join(f'{k}: {stored.get(k)}' for k in clashes)}); drop those flags to resume it, or pass another --name")
    return stored


def check_metric(task: Task, base: Any, metric: str) -> None:
    """The objective must be a metric every epoch of this task reports."""
    if task.name == "grammar":
        names = [M.LOSS_PER_TOKEN] + [f(t) for t in base.temperatures for f in (M.synth_acc, M.compl_acc)]
    else:
        names = [M.TRAIN_LOSS, M.TRAIN_ACC] + ([M.TEST_LOSS, M.TEST_ACC] if base.final else [M.VAL_LOSS, M.VAL_ACC])
    if metric not in names:
        raise ConfigError(f"--metric {metric} is not reported by {task.name} trials; use one of {', '.join(names)}")


def check_limits(args: argparse.Namespace, path: str, name: str) -> int:
    """This session's budget: --budget, else the study's stored one, else the default."""
    if args.time_budget is not None and args.time_budget <= 0:
        raise ConfigError(f"--time-budget must be > 0 seconds, got {args.time_budget:g}")
    if args.budget is not None and args.budget < 1:
        raise ConfigError(f"--budget must be >= 1 configuration, got {args.budget}")
    if args.budget is not None:
        return args.budget
    return (stored_budget(storage_url(path), name) if args.resume else None) or DEFAULT_BUDGET


def load_grid(path: str, metric: str) -> pd.DataFrame:
    """The grid to compare with, read before Ray starts so a wrong path fails at once."""
    grid = results.load(path)
    if metric not in grid.columns:
        raise ConfigError(f"--compare-grid {path} has no {metric} column to compare on")
    return grid
