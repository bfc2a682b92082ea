"""Trial groups on the CPU: member-epochs per second of K members fused into one GroupRun against
the same K members trained one after another with ClassifierRun, side by side in one process.

    RNNBENCH_IMDB=../shared/data/aclImdb_labelled.tar.gz python -m benchmarks.bench_group --out bench_group.json

Data: a `--subset` of the real IMDB training split (and a quarter as many validation reviews;
the vocabulary is the subset's). Each measurement is one full epoch, training and evaluation, of
every member (study sizes 300/300, batch 32, the model's study lr, seeds 0..K-1); the fused and
the serial run of one (model, K) alternate `--repeats` times and each keeps its fastest, so
machine noise (a shared machine) hits both alike. member-epochs/s = members / seconds; the serial
contender trains min(K, --serial-members) members, since members trained one after another do
not speed each other up (its rate does not depend on K). Prints a table
and writes the numbers as JSON after every row.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import time
from pathlib import Path

import torch

from rnnbench import metrics as M
from rnnbench.train.classifier import ClassifierConfig, ClassifierRun, load_data
from rnnbench.train.group import GroupRun

STUDY_LR = {"mlp": 0.03, "elman": 0.1, "lstm": 0.3}


def fused(configs: list[ClassifierConfig], data) -> tuple[float, float]:
    """Seconds of one GroupRun epoch of all members: with evaluation, and training only."""
    run = GroupRun(configs, data)
    start = time.perf_counter()
    metrics = next(iter(run.run_epoch().values()))
    return time.perf_counter() - start, len(data.train.tokens) / metrics[M.TOKENS_PER_S]


def serial(configs: list[ClassifierConfig], data) -> tuple[float, float]:
    """Seconds of one ClassifierRun epoch per member, one member after another."""
    total = train = 0.0
    for config in configs:
        run = ClassifierRun(config, data)
        start = time.perf_counter()
        metrics = run.run_epoch()
        total += time.perf_counter() - start
        train += len(data.train.tokens) / metrics[M.TOKENS_PER_S]
    return total, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("RNNBENCH_IMDB"))
    parser.add_argument("--subset", type=int, default=500)
    parser.add_argument("--models", nargs="+", default=["mlp", "elman", "lstm"])
    parser.add_argument("--members", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each contender; the fastest counts")
    parser.add_argument("--serial-members", type=int, default=2, help="members the serial contender trains, at most")
    parser.add_argument("--out", type=Path, default=Path("bench_group.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = ClassifierConfig(data=args.data, subset=args.subset, epochs=1, device="cpu")
    data = load_data(base)
    header = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cpus", "torch": torch.__version__,
        "threads": args.threads, "date": datetime.date.today().isoformat(), "train_reviews": len(data.train),
        "eval_reviews": len(data.eval), "vocab": len(data.vocab), "train_tokens": int(len(data.train.tokens)),
        "repeats": args.repeats, "load_average_at_start": os.getloadavg()[0],
    }  # fmt: skip
    print(json.dumps(header))
    print(
        "| model | members | fused member-epochs/s | serial member-epochs/s | fused / serial | fused train-only / serial train-only |"
    )
    print("|---|---|---|---|---|---|")
    rows = []
    for model in args.models:
        for members in args.members:
            configs = [dataclasses.replace(base, model=model, lr=STUDY_LR[model], seed=s) for s in range(members)]
            alone = configs[: args.serial_members]
            runs = [(fused(configs, data), serial(alone, data)) for _ in range(args.repeats)]
            fused_s, fused_train_s = min(r[0] for r in runs)
            serial_s, serial_train_s = min(r[1] for r in runs)
            row = {
                "model": model, "members": members,
                "fused_member_epochs_per_s": members / fused_s, "serial_member_epochs_per_s": len(alone) / serial_s,
                "fused_train_only_per_s": members / fused_train_s, "serial_train_only_per_s": len(alone) / serial_train_s,
                "load_average": os.getloadavg()[0],
            }  # fmt: skip
            rows.append(row)
            args.out.write_text(json.dumps({"header": header, "rows": rows}, indent=1))
            print(
                f"| {model} | {members} | {row['fused_member_epochs_per_s']:.3f} | {row['serial_member_epochs_per_s']:.3f} | "
                f"{row['fused_member_epochs_per_s'] / row['serial_member_epochs_per_s']:.2f}x | "
                f"{row['fused_train_only_per_s'] / row['serial_train_only_per_s']:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
