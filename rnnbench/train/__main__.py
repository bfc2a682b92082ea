"""Train one model and print a table row per epoch (or, with --json, every metric as a JSON line).

python -m rnnbench.train imdb --model lstm --lr 0.3 --epochs 2 --subset 2000
python -m rnnbench.train imdb --model lstm --save run.pt ...        # checkpoint every epoch
python -m rnnbench.train imdb --resume run.pt --final true --epochs 7   # continue on train/test
python -m rnnbench.train grammar --dataset ndfa --epochs 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rnnbench import metrics as M
from rnnbench.config import HELP_WIDTH, OneLineParser, add_config_args, given_config
from rnnbench.errors import ConfigError, DataError
from rnnbench.tasks import TASKS, get_task
from rnnbench.train.configs import check_local_device, local_gpus


def table(headline: dict[str, str]) -> tuple[str, Callable[[dict[str, Any]], str]]:
    """The header (with units) of the per-epoch table, and the function that makes a row of it."""
    headers = {M.EPOCH: "epoch", **headline, M.EPOCH_S: "s/epoch"}
    widths = {key: max(len(header), 9) for key, header in headers.items()}

    def row(metrics: dict[str, Any]) -> str:
        cells = [format(metrics.get(key, float("nan")), ".4g").rjust(width) for key, width in widths.items()]
        return "  ".join(cells) + ("  diverged" if metrics.get(M.DIVERGED) else "")

    return "  ".join(header.rjust(widths[key]) for key, header in headers.items()), row


def train(args: argparse.Namespace) -> None:
    from rnnbench.train.common import load_checkpoint  # torch: only when training, not for --help

    task = get_task(args.task)
    config_cls, run_cls = task.load("config"), task.load("run")
    given = given_config(config_cls, args)
    if args.resume:
        if not Path(args.resume).is_file():
            raise ConfigError(f"--resume {args.resume}: no such checkpoint file; pass a file written by --save")
        config = dataclasses.replace(config_cls(**load_checkpoint(args.resume)["config"]), **given)
    else:
        config = config_cls(**given)
    check_local_device(config.device, local_gpus())
    run = run_cls.restore(args.resume, config) if args.resume else run_cls(config)
    header, row = table(config.headline())
    if not args.json:
        print(textwrap.fill(f"{run.config}  device={run.device}", HELP_WIDTH, initial_indent="# ", subsequent_indent="# "))
        print(header, flush=True)
    for metrics in run.epochs():
        print(json.dumps(metrics) if args.json else row(metrics), flush=True)
        if args.save:
            run.save(args.save)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m rnnbench.train", description=__doc__)
    sub = parser.add_subparsers(dest="task", required=True)
    for task in TASKS.values():
        command = sub.add_parser(task.name, help=task.description)
        add_config_args(command, task.load("config"))
        command.add_argument("--save", metavar="FILE", help="write a checkpoint here after every epoch")
        command.add_argument("--resume", metavar="FILE", help="continue from this checkpoint (flags given override its config)")
        command.add_argument("--json", action="store_true", help="print every metric of an epoch as one JSON line, not the table")
    args = parser.parse_args(argv)
    try:
        train(args)
    except (ConfigError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
