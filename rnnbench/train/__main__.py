"""Train one model and print its metrics, one line per epoch.

    python -m rnnbench.train classifier --model lstm --lr 0.3 --epochs 2 --subset 2000
    python -m rnnbench.train classifier --model lstm --save run.pt ...   # checkpoint every epoch
    python -m rnnbench.train classifier --resume run.pt --epochs 15 --final true  # continue
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from rnnbench.config import add_config_args, config_from_args, given_config
from rnnbench.errors import ConfigError, DataError
from rnnbench.train.classifier import ClassifierConfig, ClassifierRun
from rnnbench.train.common import load_checkpoint


def format_metrics(metrics: dict[str, Any]) -> str:
    """One readable console line: numbers rounded, examples and flags left as they are."""
    parts = []
    for key, value in metrics.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        parts.append(f"{key}={value}")
    return "  ".join(parts)


def train_classifier(args: argparse.Namespace) -> None:
    if args.resume:
        saved = ClassifierConfig(**load_checkpoint(args.resume)["config"])
        run = ClassifierRun.restore(args.resume, dataclasses.replace(saved, **given_config(ClassifierConfig, args)))
    else:
        run = ClassifierRun(config_from_args(ClassifierConfig, args))
    print(f"# {run.config}  device={run.device}  train={len(run.data.train)}  {run.data.eval_name}={len(run.data.eval)}  vocab={len(run.data.vocab)}", flush=True)
    for metrics in run.epochs():
        print(format_metrics(metrics), flush=True)
        if args.save:
            run.save(args.save)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnbench.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="task", required=True)
    classifier = sub.add_parser("classifier", help="IMDB sentiment classifier")
    add_config_args(classifier, ClassifierConfig)
    classifier.add_argument("--save", help="write a checkpoint here after every epoch")
    classifier.add_argument("--resume", help="continue from this checkpoint (flags given override its config)")
    args = parser.parse_args(argv)
    try:
        train_classifier(args)
    except (ConfigError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
