"""Train one model and print its metrics, one line per epoch.

python -m rnnbench.train imdb --model lstm --lr 0.3 --epochs 2 --subset 2000
python -m rnnbench.train imdb --model lstm --save run.pt ...        # checkpoint every epoch
python -m rnnbench.train imdb --resume run.pt --final true --epochs 7   # continue on train/test
python -m rnnbench.train grammar --dataset ndfa --epochs 2
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from rnnbench.config import OneLineParser, add_config_args, given_config
from rnnbench.errors import ConfigError, DataError
from rnnbench.tasks import TASKS, get_task


def format_metrics(metrics: dict[str, Any]) -> str:
    """One console line: numbers rounded; sampled example texts left out (they are in the dict)."""
    parts = []
    for key, value in metrics.items():
        if "example" in key:
            continue
        parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return "  ".join(parts)


def train(args: argparse.Namespace) -> None:
    from rnnbench.train.common import load_checkpoint  # torch: only when training, not for --help

    task = get_task(args.task)
    config_cls, run_cls = task.load("config"), task.load("run")
    given = given_config(config_cls, args)
    if args.resume:
        if not Path(args.resume).is_file():
            raise ConfigError(f"--resume {args.resume}: no such checkpoint file; pass a file written by --save")
        saved = config_cls(**load_checkpoint(args.resume)["config"])
        run = run_cls.restore(args.resume, dataclasses.replace(saved, **given))
    else:
        run = run_cls(config_cls(**given))
    print(f"# {run.config}  device={run.device}", flush=True)
    for metrics in run.epochs():
        print(format_metrics(metrics), flush=True)
        if args.save:
            run.save(args.save)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="python -m rnnbench.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="task", required=True)
    for task in TASKS.values():
        command = sub.add_parser(task.name, help=task.description)
        add_config_args(command, task.load("config"))
        command.add_argument("--save", help="write a checkpoint here after every epoch")
        command.add_argument("--resume", help="continue from this checkpoint (flags given override its config)")
    args = parser.parse_args(argv)
    try:
        train(args)
    except (ConfigError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
