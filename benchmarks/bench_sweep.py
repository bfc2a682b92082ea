"""How well Ray Tune packs a grid onto this machine's cores: 8 equal IMDB trials (LSTM, same
config, seeds 0-7, one CPU each) against 8 / cores × one trial run alone with one thread.

    RNNBENCH_IMDB=../shared/data/aclImdb_labelled.tar.gz python -m benchmarks.bench_sweep

Scheduling efficiency = (8 / cores × one trial's time) / the grid's wall time (Tuner.fit only;
Ray's start-up is reported on its own). Per-trial overhead = the trial's time inside Ray (its
reported time_total_s) minus the same trial run alone, both with one thread.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time

import ray
import torch

from rnnbench import results
from rnnbench.sweep.runner import Sweep, run_sweep
from rnnbench.tasks import get_task
from rnnbench.train.classifier import ClassifierRun, load_data
from rnnbench.train.configs import ClassifierConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--subset", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    config = ClassifierConfig(
        model="lstm", lr=0.3, epochs=args.epochs, subset=args.subset, data=os.environ.get("RNNBENCH_IMDB"), device="cpu"
    )
    data = load_data(config)

    torch.set_num_threads(1)
    start = time.perf_counter()
    list(ClassifierRun(config, data).epochs())
    alone = time.perf_counter() - start

    path = f"{tempfile.mkdtemp()}/bench"
    groups = [[{"name": f"lstm_seed{seed}", "seed": seed}] for seed in range(args.trials)]
    spec = {"task": "imdb", "kind": "grid", "base": dataclasses.asdict(config), "axes": {}, "group": "none", "groups": groups}
    sweep = Sweep(get_task("imdb"), path, spec, config, data, "val_acc", "max", "peak", groups=groups)
    start = time.perf_counter()
    run_sweep(sweep, {"cpus_per_trial": 1, "gpus_per_trial": 0}, None, resume=False, summary=False)
    wall = time.perf_counter() - start  # Ray's start included
    cores = int(ray.cluster_resources()["CPU"])

    df = results.load(path)
    inside = df.groupby("trial")["epoch_s"].sum()
    ideal = args.trials / cores * alone
    print(f"machine: {os.cpu_count()} cpus, torch {torch.__version__}; trial: lstm, {args.subset} reviews, {args.epochs} epochs")
    print(f"one trial alone, 1 thread: {alone:.1f} s")
    print(
        f"grid of {args.trials} on {cores} cores, Ray's start included: wall {wall:.1f} s; ideal {ideal:.1f} s; efficiency {ideal / wall:.0%}"
    )
    print(
        f"trial time inside Ray (its epochs): mean {inside.mean():.1f} s (min {inside.min():.1f}, max {inside.max():.1f}); "
        f"overhead per trial vs alone: {inside.mean() - alone:+.1f} s; "
        f"start-up and scheduling: {wall * cores / args.trials - inside.mean():.1f} s per trial"
    )


if __name__ == "__main__":
    main()
