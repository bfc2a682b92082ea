"""The command line of the grid sweeps: every script in sweeps/ is `main(<task name>)`.

Axes, presets and defaults come from the task's registry entry, the per-trial flags from its
config dataclass; every check runs before Ray starts, and a problem is one `error:` line, exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from rnnbench.config import OneLineParser, add_config_args, given_config, shown
from rnnbench.errors import ConfigError, DataError, ResultsError, StorageError
from rnnbench.tasks import HOWS, Task, get_task
from rnnbench.train.configs import check_local_device, local_gpus

# Fusing members pays on a GPU, and on CPUs for the tasks whose registry entry says so (measured:
# BENCHMARKS.md, "Trial groups"); elsewhere members run as separate trials side by side.
FUSED_GROUPING = "all"


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def experiment_name(text: str) -> str:
    """An experiment is one folder directly inside --storage: no empty name, no path."""
    if not text or text in (".", "..") or "/" in text or "\\" in text or text.startswith("."):
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder name (no '/', not empty, not starting with '.')")
    return text


def add_run_args(run: argparse._ArgumentGroup, default_name: str) -> None:
    """Where and how trials run: the flags every sweep script (grid or search) shares."""
    run.add_argument(
        "--storage", default="./results", help="results folder, NFS path or URI such as s3://bucket/x (default: ./results)"
    )
    run.add_argument(
        "--name", type=experiment_name, default=None, help=f"experiment folder inside --storage (default: {default_name})"
    )
    run.add_argument(
        "--address",
        default=None,
        help="Ray cluster host:port (default: $RAY_ADDRESS, else a local Ray on this machine's cores, bound to 127.0.0.1)",
    )
    run.add_argument("--cpus-per-trial", type=float, default=1, help="CPUs (and torch threads) per trial (default: 1)")
    run.add_argument(
        "--gpus-per-trial",
        type=float,
        default=None,
        help="fractions pack several trials on one GPU, e.g. 0.25 (default: a whole GPU for a trial of "
        "several members, the GPUs shared among one-member trials, at least 1/8 each; 0 without a GPU)",
    )
    run.add_argument(
        "--max-concurrent", type=int, default=None, help="cap on trials running at once (default: what resources allow)"
    )
    run.add_argument(
        "--group",
        choices=("auto", "none", "seeds", "all"),
        default="auto",
        help="members per trial: none (one each), seeds (a setting's seeds together), all (every lr and seed "
        "of a model together); fused into one computation where the task can (default auto: all where fusing "
        "pays, i.e. on a GPU, and on CPUs for the grammar task; none elsewhere)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted experiment --name: finished trials are kept, unfinished ones go on from their last epoch",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print the trials, members, resources, a time estimate (from a one-epoch probe on a slice of the data) "
        "and the disk it needs, then stop without starting anything",
    )


def keep_private_ray_on_loopback(args: argparse.Namespace) -> None:
    """Without a cluster address, the sweep's own Ray listens on 127.0.0.1 only and refuses other
    nodes. Ray reads the variable when it is imported, so this runs before any `import ray`."""
    if not (args.address or os.environ.get("RAY_ADDRESS")):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def preset_flags(preset: dict[str, Any]) -> str:
    """A preset as the flags it stands for, e.g. `--lrs 0.03 0.3 --seeds 0 1 --epochs 2`."""
    return " ".join(f"--{key.replace('_', '-')} {shown(value)}" for key, value in preset.items())


def build_parser(task: Task, doc: str) -> OneLineParser:
    parser = OneLineParser(description=doc)
    config_cls = task.load("config")
    fields = {field.name: field for field in dataclasses.fields(config_cls)}
    axes = parser.add_argument_group("the grid (every combination runs)")
    for flag, (name, kind) in task.axes.items():
        meaning, choices = fields[name].metadata["help"], fields[name].metadata["choices"]
        listed = f"; any of {', '.join(choices)}" if choices else ""
        axes.add_argument(
            f"--{flag}",
            nargs="+",
            type=kind,
            choices=choices,
            metavar=name.upper(),
            default=None,
            help=f"{meaning}{listed} (default: {shown(task.grid[flag])})",
        )
    add_config_args(parser.add_argument_group("every trial's settings"), config_cls, skip=tuple(f for f, _ in task.axes.values()))
    run = parser.add_argument_group("where and how it runs")
    run.add_argument(
        "--preset",
        choices=sorted(task.presets),
        help="a smaller grid, e.g. to try the setup; " + "; ".join(f"{k} is {preset_flags(v)}" for k, v in task.presets.items()),
    )
    run.add_argument(
        "--how",
        choices=HOWS,
        default=task.objective.how,
        help=f"which epoch scores a setting, for the summary's best setting and --confirm (default: {task.objective.how})",
    )
    add_run_args(run, f"{task.name}_grid, plus _<preset>")
    if task.confirm:
        run.add_argument("--confirm", action="store_true", help=task.confirm_help)
    return parser


def main(task_name: str, doc: str, argv: Sequence[str] | None = None) -> int:
    task = get_task(task_name)
    args = build_parser(task, doc).parse_args(argv)
    return guarded(run, task, args)


def guarded(run: Callable[[Task, argparse.Namespace], int], task: Task, args: argparse.Namespace) -> int:
    """Run a sweep CLI with the exit codes of sweep/summary.py at every moment: a bad input is one
    line and 2; a storage fault mid-run 1; Ctrl-C (130) and SIGTERM, what a batch scheduler sends
    (143), end it as an interrupt with the command that continues, never a traceback. Before Ray
    starts, SIGTERM is passed on as SIGINT; while Ray runs, the runner ends the driver at once
    (rnnbench.sweep.runner.terminate)."""
    from rnnbench.sweep.storage import ERRORED, INTERRUPTED, TERMINATED, resume_command

    keep_private_ray_on_loopback(args)
    terminated = []

    def on_term(signum: int, frame: Any) -> None:
        terminated.append(signum)
        os.kill(os.getpid(), signal.SIGINT)

    signal.signal(signal.SIGTERM, on_term)
    try:
        code = run(task, args)
    except (ConfigError, DataError, ResultsError) as error:
        fail(str(error))
    except StorageError as error:  # mid-run: the run stopped and can be resumed; 1 = errored (sweep/summary.py)
        print(f"error: {error}", file=sys.stderr)
        return ERRORED
    except KeyboardInterrupt:
        print(f"{'terminated' if terminated else 'interrupted'}; continue with: {resume_command()}", file=sys.stderr)
        code = INTERRUPTED
    return TERMINATED if terminated and code in (0, INTERRUPTED) else code


def run(task: Task, args: argparse.Namespace) -> int:
    """Check everything, then run or resume the grid through the one sweep pipeline; the exit code."""
    # Ray and torch are imported here, not at the top, so --help and bad flags answer at once
    from rnnbench.sweep.storage import check_storage, normalize_storage, read_spec, refuse_file

    preset = task.presets.get(args.preset or "", {})
    name = args.name or f"{task.name}_grid" + (f"_{args.preset}" if args.preset else "")
    storage = normalize_storage(args.storage)
    refuse_file(storage)
    path = f"{storage.rstrip('/')}/{name}"
    check_resources(args, getattr(args, "device", "auto"))
    config_cls = task.load("config")
    resources = {
        "cpus_per_trial": args.cpus_per_trial,
        "gpus_per_trial": args.gpus_per_trial or 0,
        "max_concurrent": args.max_concurrent,
    }
    if getattr(args, "confirm", False):
        sweep = task.load("confirm")(task, path, args.how, args.resume)
        from rnnbench.sweep.runner import run_sweep

        return run_sweep(sweep, resources, args.address, resume=args.resume and read_spec(sweep.path) is not None)
    spec = read_spec(path) if args.resume else None
    if spec is not None:
        check_same_grid(task, args, preset, spec, path)
        base, axes, grouping = config_cls(**spec["base"]), spec["axes"], spec["group"]
    else:
        axes = {flag: list(getattr(args, flag) or preset.get(flag) or task.grid[flag]) for flag in task.axes}
        fields = {k: v for k, v in preset.items() if k not in task.axes}
        base = config_cls(**{**fields, **given_config(config_cls, args)})
        check_grid(task, base, axes)
        if read_spec(path) is not None:
            raise ConfigError(f"experiment {path} already exists; pass --resume to continue it or another --name")
        grouping = args.group
    data = task.load("load_data")(base)  # before Ray starts: a data problem fails in seconds
    if spec is None and not args.dry_run:
        check_storage(storage)  # after the data, so a data problem leaves no folder behind
    warn_one_seed(task, axes)
    if args.dry_run:
        return dry_run(task, base, data, axes, grouping, args)
    if spec is None:
        spec = {"task": task.name, "kind": "grid", "base": dataclasses.asdict(base), "axes": axes, "group": grouping}

    def plan(cluster: dict[str, float]) -> tuple[list[list[dict[str, Any]]], float]:
        """The trials and GPUs per trial, once Ray says what the cluster has; a resumed grid keeps
        the trials it was planned with."""
        asked = args.gpus_per_trial
        gpus, slots = cluster.get("GPU", 0) if asked is None else asked, int(cluster.get("CPU", 1) // args.cpus_per_trial)
        spec["group"], groups, gpus = trials(task, axes, spec["group"], gpus, slots, asked is None)
        groups = spec.get("groups", groups)
        print(
            f"{sum(len(g) for g in groups)} members in {len(groups)} trials ({spec['group']} grouped), "
            f"{args.cpus_per_trial:g} CPUs and {gpus:.3g} GPUs per trial -> {path}",
            file=sys.stderr,
            flush=True,
        )
        return groups, gpus

    from rnnbench.sweep.runner import Sweep, run_sweep

    objective = task.objective
    sweep = Sweep(task, path, spec, base, data, objective.metric, objective.mode, args.how, plan=plan)
    return run_sweep(sweep, resources, args.address, resume=args.resume and read_spec(path) is not None)


def trials(
    task: Task, axes: dict[str, list], grouping: str, gpus: float, slots: int, share: bool
) -> tuple[str, list[list[dict[str, Any]]], float]:
    """The grouping (`auto` resolved), the members of each trial, and the GPUs per trial: `gpus` as
    given, or, with `share`, a whole GPU for a trial of several members (fused groups fill one:
    three K=30 groups sharing an H200 each ran at a third of their solo rate, BENCHMARKS.md) and
    the GPUs divided among one-member trials (at least 1/8 each). On CPUs, `auto`'s fused groups
    are cut to give the `slots` trials that run at once two trials each (cpu_group_size)."""
    from rnnbench.sweep.members import cpu_group_size, grid_members, group_members, split_groups

    members = grid_members(task, axes)
    split = grouping == "auto" and gpus == 0
    if grouping == "auto":
        grouping = FUSED_GROUPING if task.fused and (gpus > 0 or task.fuse_on_cpu) else "none"
    groups = group_members(task, members, grouping)
    if split and grouping != "none":
        groups = split_groups(groups, cpu_group_size(len(members), slots))
    if share and gpus > 0:
        alone = grouping != "none" or len(groups) <= gpus
        gpus = 1.0 if alone else max(gpus / len(groups), 1 / 8)
    return grouping, groups, gpus


def dry_run(task: Task, base: Any, data: Any, axes: dict[str, list], grouping: str, args: argparse.Namespace) -> int:
    """The plan, with this machine's GPUs standing in for a cluster's; nothing starts."""
    import torch

    from rnnbench.sweep.dry_run import plan

    gpus = args.gpus_per_trial if args.gpus_per_trial is not None else float(torch.cuda.device_count())
    slots = int((os.cpu_count() or 1) // args.cpus_per_trial)
    grouping, groups, gpus = trials(task, axes, grouping, gpus, slots, args.gpus_per_trial is None)
    print(plan(task, base, data, groups, grouping, args.cpus_per_trial, gpus, args.max_concurrent))
    return 0


def check_resources(args: argparse.Namespace, device: str = "auto") -> None:
    """Resource flags are checked before anything starts (a 0 or negative value would hang or crash
    Ray); without a cluster, also against this machine's cores and GPUs, and the trials' device."""
    if not args.cpus_per_trial > 0:
        raise ConfigError(f"--cpus-per-trial must be > 0, got {args.cpus_per_trial:g}")
    if args.gpus_per_trial is not None and args.gpus_per_trial < 0:
        raise ConfigError(f"--gpus-per-trial must be >= 0, got {args.gpus_per_trial:g}")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    if args.address or os.environ.get("RAY_ADDRESS"):
        return  # a cluster's nodes may differ from this machine
    cpus, gpus = os.cpu_count() or 1, local_gpus()
    if getattr(args, "cuda_graphs", False) and not gpus:
        raise ConfigError("--cuda-graphs true: this machine has no GPU, and CUDA graphs need one; leave the flag out")
    if args.cpus_per_trial > cpus or (args.gpus_per_trial or 0) > gpus:
        raise ConfigError(
            f"no node can hold one trial of {args.cpus_per_trial:g} CPUs and {args.gpus_per_trial or 0:g} GPUs (this machine "
            f"has {cpus} CPUs, {gpus} GPUs); lower --cpus-per-trial / --gpus-per-trial"
        )
    check_local_device(device, gpus)


def check_same_grid(task: Task, args: argparse.Namespace, preset: dict[str, Any], spec: dict[str, Any], path: str) -> None:
    """On --resume the grid and every trial setting come from the stored spec; a flag that asks
    for something else is refused, naming the difference, rather than silently ignored. (Changing
    a grid part-way would mix members trained under different settings in one experiment.)"""
    given = {**preset, **{flag: getattr(args, flag) for flag in task.axes if getattr(args, flag) is not None}}
    given.update(given_config(task.load("config"), args))
    stored = {**spec["base"], **spec["axes"]}
    clashes = [
        f"--{key.replace('_', '-')} {shown(value)} (stored: {shown(stored.get(key))})"
        for key, value in given.items()
        if json.loads(json.dumps(value)) != stored.get(key)
    ]
    if args.group not in ("auto", spec["group"]):
        clashes.append(f"--group {args.group} (stored: {spec['group']})")
    if clashes:
        raise ConfigError(
            f"the experiment at {path} was made with other settings: {'; '.join(clashes)}; drop those flags to "
            "resume it, or pass another --name for a new experiment"
        )


def check_values(base: Any, flag: str, field: str, values: Sequence[Any]) -> None:
    """Each value of a list flag through the config's own checks, so a bad one fails before Ray
    starts; the line names the flag and the value, since the config's message names only the field.
    A value given twice (`--seeds 0 0`, or `--lrs 0.1 0.1000001`, both named lr0.1) would train one
    member and count it twice: refused."""
    names = [f"{v:g}" if isinstance(v, float) else str(v) for v in values]  # as in member names
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"--{flag} repeats {', '.join(repeated)}; give each value once")
    for value, name in zip(values, names):
        try:
            dataclasses.replace(base, **{field: value})
        except ConfigError as error:
            raise ConfigError(f"--{flag} {name}: {error}") from None


def check_grid(task: Task, base: Any, axes: dict[str, list]) -> None:
    """Build every member and every value's config once, so a bad or repeated value fails before Ray starts."""
    from rnnbench.sweep.members import grid_members

    for flag, (field, _) in task.axes.items():
        if not axes[flag]:
            raise ConfigError(f"--{flag} is empty; give at least one value")
        check_values(base, flag, field, axes[flag])
    grid_members(task, axes)


def warn_one_seed(task: Task, axes: dict[str, list]) -> None:
    """One seed gives no spread, so the summary can show no interval and run no test: often a user
    who wrote `--seeds 3` for three seeds. Said once on stderr; the grid runs as asked."""
    seeds = axes.get("seeds", ())
    if len(seeds) == 1:
        count = seeds[0] if 2 <= seeds[0] <= 20 else len(task.grid["seeds"])  # what the user may have meant
        print(
            f"warning: one seed ({seeds[0]}): no interval or test is possible; for seeds "
            f"{', '.join(map(str, range(count)))} write --seeds {shown(list(range(count)))}",
            file=sys.stderr,
        )
