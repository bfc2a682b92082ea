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

import torch
from rnnbench.sweep.trainables import train_classifier

from rnnbench import results
from rnnbench.sweep.grid import run_grid, trial_namer
from rnnbench.sweep.runtime import start_ray
from rnnbench.train.classifier import ClassifierConfig, ClassifierRun, load_data


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

    start = time.perf_counter()
    start_ray(None)
    ray_start = time.perf_counter() - start
    cores = int(__import__("ray").cluster_resources()["CPU"])
    storage = tempfile.mkdtemp()
    space = {**dataclasses.asdict(config), "seed": {"grid_search": list(range(args.trials))}}
    start = time.perf_counter()
    run_grid(
        train_classifier,
        space,
        name="bench",
        storage=storage,
        namer=trial_namer(("model", "seed")),
        metric="val_acc",
        epochs=config.epochs,
        data=data,
    )
    wall = time.perf_counter() - start

    df = results.load(f"{storage}/bench")
    inside = df.groupby("trial")["time_total_s"].max()
    ideal = args.trials / cores * alone
    print(f"machine: {os.cpu_count()} cpus, torch {torch.__version__}; trial: lstm, {args.subset} reviews, {args.epochs} epochs")
    print(f"one trial alone, 1 thread: {alone:.1f} s")
    print(f"ray start: {ray_start:.1f} s")
    print(f"grid of {args.trials} on {cores} cores: wall {wall:.1f} s; ideal {ideal:.1f} s; efficiency {ideal / wall:.0%}")
    print(
        f"trial time inside Ray: mean {inside.mean():.1f} s (min {inside.min():.1f}, max {inside.max():.1f}); "
        f"overhead per trial vs alone: {inside.mean() - alone:+.1f} s; "
        f"scheduling gaps: {wall * cores / args.trials - inside.mean():.1f} s per trial"
    )


if __name__ == "__main__":
    main()
