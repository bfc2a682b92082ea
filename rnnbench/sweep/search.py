"""A seed-aware search on stock Ray Tune pieces: Optuna (through Tune's OptunaSearch) suggests a
configuration, one trial trains all its seeds as a group and reports their mean every epoch; a
stock scheduler stops configurations whose seed-mean falls behind, and Optuna is told the
seed-mean's best (or last) epoch. Tune checkpoints the searcher with the experiment, so a killed
search resumes by construction: a configuration is one trial, never seeds to stitch together.

The search's definition is stored in the experiment's spec file, so --resume needs only --task,
--storage and --name; a flag given on --resume must repeat the stored value.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

from rnnbench.config import OneLineParser, add_config_args, given_config, shown
from rnnbench.errors import ConfigError, ResultsError
from rnnbench.sweep.cli import add_run_args, check_resources, check_values, guarded
from rnnbench.tasks import HOWS, TASKS, Task, get_task

# The search's definition: stored in the spec file; on --resume a flag may only repeat it.
DEFAULTS = {
    "lr_range": [1e-3, 3.0],
    "batch_sizes": None,
    "hidden_dims": None,
    "num_seeds": 3,
    "metric": None,
    "how": None,
    "sampler": "tpe",
    "sampler_seed": 0,
    "startup_trials": 5,
    "pruner": "median",
    "budget": 20,
}


def build_parser(task: Task, doc: str) -> OneLineParser:
    parser = OneLineParser(description=doc)
    parser.add_argument(
        "--task",
        choices=sorted(TASKS),
        required=True,
        help="what a trial trains: " + "; ".join(f"{t.name}: {t.description}" for t in TASKS.values()),
    )
    space = parser.add_argument_group("the search (stored with the experiment; --resume keeps it)")
    space.add_argument(
        "--lr-range",
        nargs=2,
        type=float,
        metavar=("LOW", "HIGH"),
        help=f"draw the lr log-uniformly from LOW to HIGH (default: {shown(DEFAULTS['lr_range'])})",
    )
    space.add_argument(
        "--batch-sizes", nargs="+", type=int, metavar="B", help="also choose the batch size from these (default: --batch-size)"
    )
    space.add_argument(
        "--hidden-dims", nargs="+", type=int, metavar="H", help="also choose the hidden size from these (default: --hidden-dim)"
    )
    space.add_argument(
        "--num-seeds",
        type=int,
        metavar="S",
        help=f"seeds 0..S-1 per configuration, trained together in one trial (default: {DEFAULTS['num_seeds']})",
    )
    space.add_argument("--metric", help=f"objective (default: the task's, here {task.objective.metric})")
    space.add_argument(
        "--how", choices=HOWS, help=f"score = best or last epoch of the seed-mean curve (default: {task.objective.how})"
    )
    space.add_argument(
        "--sampler",
        choices=("tpe", "random"),
        help=f"how Optuna picks the next configuration: TPE, learning from the finished ones, or at random "
        f"(default: {DEFAULTS['sampler']})",
    )
    space.add_argument(
        "--sampler-seed", type=int, help=f"seeds the sampler, so a search can be repeated (default: {DEFAULTS['sampler_seed']})"
    )
    space.add_argument(
        "--startup-trials",
        type=int,
        help=f"random configurations before TPE, and completed ones before pruning (default: {DEFAULTS['startup_trials']})",
    )
    space.add_argument(
        "--pruner",
        choices=("median", "asha", "none"),
        help="stop configurations whose seed-mean falls behind: Tune's median stopping rule or ASHA "
        f"(default: {DEFAULTS['pruner']})",
    )
    space.add_argument("--budget", type=int, help=f"configurations to try (default: {DEFAULTS['budget']})")
    space.add_argument(
        "--time-budget", type=float, metavar="SECONDS", help="stop the search after this long (default: when --budget is tried)"
    )
    add_config_args(parser.add_argument_group(f"every trial's settings ({task.name})"), task.load("config"), skip=("lr", "seed"))
    run = parser.add_argument_group("where and how it runs")
    add_run_args(run, f"{task.name}_search")
    run.add_argument(
        "--compare-grid", metavar="PATH", help="a grid experiment whose best setting the report shows beside the search's"
    )
    return parser


def main(doc: str, argv: Sequence[str] | None = None) -> int:
    pre = OneLineParser(add_help=False)  # the task decides which config flags exist
    pre.add_argument("--task", choices=sorted(TASKS))
    known, _ = pre.parse_known_args(argv)
    task = get_task(known.task or next(iter(TASKS)))  # --help without --task shows the first task's settings, titled so
    args = build_parser(task, doc).parse_args(argv)
    return guarded(run, task, args)


def definition(task: Task, args: argparse.Namespace, stored: dict[str, Any] | None) -> dict[str, Any]:
    """The search's stored description: flags given, else the stored values (on --resume), else DEFAULTS."""
    config_cls = task.load("config")
    defaults = stored or {**DEFAULTS, "metric": task.objective.metric, "how": task.objective.how}
    spec = {k: getattr(args, k) if getattr(args, k) is not None else defaults[k] for k in DEFAULTS}
    base = config_cls(**{**(stored or {}).get("base", {}), **given_config(config_cls, args)})
    spec = {"kind": "search", "task": task.name, **spec, "base": dataclasses.asdict(base)}
    return json.loads(json.dumps(spec))  # as stored: tuples become lists


def check(task: Task, spec: dict[str, Any]) -> None:
    """Every setting of a search, before Ray starts."""
    low, high = spec["lr_range"]
    if not low > 0:
        raise ConfigError(f"--lr-range must be > 0, got {low:g} {high:g}")
    if low > high:
        raise ConfigError(f"--lr-range is inverted ({low:g} > {high:g}); give LOW HIGH")
    if low == high:
        raise ConfigError(f"--lr-range is empty ({low:g} {high:g}); give two different values")
    for name in ("num_seeds", "budget"):
        if spec[name] < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {spec[name]}")
    if spec["startup_trials"] < 0:
        raise ConfigError(f"--startup-trials must be >= 0, got {spec['startup_trials']}")
    base = task.load("config")(**spec["base"])
    check_values(base, "lr-range", "lr", [low, high])  # a bad value fails here, not in a trial
    check_values(base, "batch-sizes", "batch_size", spec["batch_sizes"] or [])
    check_values(base, "hidden-dims", "hidden_dim", spec["hidden_dims"] or [])
    reported = base.reported_metrics()
    if spec["metric"] not in reported:
        raise ConfigError(f"--metric {spec['metric']} is not reported by {task.name} trials; use one of {', '.join(reported)}")


def run(task: Task, args: argparse.Namespace) -> int:
    """Check everything, then run or resume the search through the one sweep pipeline; the exit code."""
    from rnnbench.sweep.storage import check_storage, local_folder, normalize_storage, read_spec, refuse_file

    check_resources(args, getattr(args, "device", "auto"))
    if args.time_budget is not None and not args.time_budget > 0:
        raise ConfigError(f"--time-budget must be > 0 seconds, got {args.time_budget:g}; or leave it out")
    storage = normalize_storage(args.storage)
    if local_folder(storage) is None:
        raise ConfigError(f"a search keeps its Optuna study in a journal file: pass a local or mounted --storage, not {storage}")
    refuse_file(storage)
    name = args.name or f"{task.name}_search"
    path = f"{storage.rstrip('/')}/{name}"
    stored = read_spec(path) if args.resume else None
    if stored is not None:
        if stored.get("kind") != "search":
            raise ConfigError(f"{path} is a {stored.get('kind', 'grid')}, not a search; resume it with its own script")
        if stored["task"] != task.name:
            raise ConfigError(f"the search at {path} is a {stored['task']} search, not {task.name}; pass --task {stored['task']}")
        spec = definition(task, args, stored)
        clashes = [k for k in spec if spec[k] != stored.get(k)]
        if clashes:
            raise ConfigError(
                f"the search at {path} was made with other settings "
                f"({'; '.join(f'{k}: {stored.get(k)}' for k in clashes)}); drop those flags to resume it, "
                "or pass another --name"
            )
    else:
        spec = definition(task, args, None)
        check(task, spec)
        if read_spec(path) is not None:
            raise ConfigError(f"a search already exists at {path}; pass --resume to continue it or another --name")
    grid = load_grid(args.compare_grid, spec["metric"]) if args.compare_grid else None
    base = task.load("config")(**spec["base"])
    data = task.load("load_data")(base)
    if stored is None:
        check_storage(storage)  # after the data, so a data problem leaves no folder behind
    from rnnbench.results.columns import higher_is_better  # pandas: after the checks, like Ray below

    mode = "max" if higher_is_better(spec["metric"]) else "min"
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule  # after the checks: Ray is slow to import

    from rnnbench.sweep.runner import Sweep, run_sweep
    from rnnbench.sweep.study import StudySearcher, configuration
    from rnnbench.sweep.summary import exit_code

    pruner = {
        "median": lambda: MedianStoppingRule(
            time_attr="training_iteration",
            metric=spec["metric"],
            mode=mode,
            grace_period=1,
            min_samples_required=max(1, spec["startup_trials"]),
        ),
        "asha": lambda: ASHAScheduler(
            time_attr="training_iteration", metric=spec["metric"], mode=mode, max_t=base.epochs, grace_period=1
        ),
        "none": FIFOScheduler,
    }[spec["pruner"]]()
    sweep = Sweep(
        task,
        path,
        spec,
        base,
        data,
        spec["metric"],
        mode,
        spec["how"],
        searcher=StudySearcher(path, spec, mode),
        scheduler=pruner,
        num_samples=spec["budget"],
        time_budget_s=args.time_budget,
        planned_members=spec["budget"] * spec["num_seeds"],
        namer=configuration,
    )
    print(f"searching {spec['budget']} configurations x {spec['num_seeds']} seeds -> {path}", file=sys.stderr, flush=True)
    resources = {
        "cpus_per_trial": args.cpus_per_trial,
        "gpus_per_trial": args.gpus_per_trial or 0,
        "max_concurrent": args.max_concurrent,
    }
    run_sweep(sweep, resources, args.address, resume=stored is not None, summary=False)
    print(report(path, task, spec, grid))
    return exit_code(path)


def load_grid(path: str, metric: str) -> Any:
    """The grid to compare with (a DataFrame), read before Ray starts so a wrong path fails at once."""
    from rnnbench import results

    try:
        grid = results.load(path)
    except ResultsError as error:
        raise ConfigError(f"--compare-grid: {error}") from None
    if metric not in grid.columns:
        raise ConfigError(f"--compare-grid {path} has no {metric} column to compare on")
    return grid


def report(path: str, task: Task, spec: dict[str, Any], grid: Any) -> str:
    """The top configurations by the seed-mean objective, with CIs, and the grid's best beside them."""
    from rnnbench import results
    from rnnbench.results.columns import higher_is_better

    df = results.load(path)
    params = [k for k in ("lr", "batch_size", "hidden_dim") if k in df.columns and df[k].nunique() > 1]
    table = results.best(df, metric=spec["metric"], per="group", how=spec["how"], by=["group", *params])
    ascending = not higher_is_better(spec["metric"])
    table = table.sort_values("mean", ascending=ascending).head(10)
    lines = [
        f"{path}: {df['group'].nunique()} configurations x {spec['num_seeds']} seeds; objective: the "
        f"{spec['how']} epoch of the seed-mean {spec['metric']}",
        "Top configurations:",
        results.render(table, "text"),
    ]
    if grid is not None:
        per = task.per
        mine = df[per].iloc[0] if per in df.columns else None
        cells = grid[grid[per] == mine] if mine is not None and per in grid.columns else grid
        lines += [
            "Grid's best setting, by the same rule:",
            results.render(results.best(cells, metric=spec["metric"], per=per, how=spec["how"]), "text"),
        ]
    return "\n".join(lines)
