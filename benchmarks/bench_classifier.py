"""Classifier loop throughput on the real IMDB data: rnnbench's loop (bucketed and random
batches) against the plain reference loop, side by side in one process, and the cached load time.

    RNNBENCH_IMDB=../shared/data/aclImdb_labelled.tar.gz python benchmarks/bench_classifier.py --subset 1500

The data is the full split (20,000 training reviews, the full training vocabulary of ~67,000
words); each contender trains one epoch on the same random `--subset` of those reviews (so the
length distribution and the embedding table are the real ones, the run short), from the same
initial weights. Tokens/s counts real tokens only, over training time only.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import tempfile
import time

import numpy as np
import torch

from benchmarks.plain_loop import plain_epoch
from rnnbench import metrics as M
from rnnbench.data.imdb import load_imdb
from rnnbench.train.classifier import ClassifierConfig, ClassifierRun, load_data


def load_times(source: str) -> tuple[float, float]:
    """First (tokenizing) and second (cached) load of all 50,000 reviews, in a fresh cache."""
    saved = os.environ.get("RNNBENCH_CACHE")
    os.environ["RNNBENCH_CACHE"] = tempfile.mkdtemp()
    try:
        times = []
        for _ in range(2):
            start = time.perf_counter()
            load_imdb(source)
            times.append(time.perf_counter() - start)
        shutil.rmtree(os.environ["RNNBENCH_CACHE"])
    finally:
        if saved is None:
            del os.environ["RNNBENCH_CACHE"]
        else:
            os.environ["RNNBENCH_CACHE"] = saved
    return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("RNNBENCH_IMDB"))
    parser.add_argument("--subset", type=int, default=1500)
    parser.add_argument("--models", nargs="+", default=["mlp", "lstm"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    first, second = load_times(args.data)
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, torch {torch.__version__}, device {args.device}")
    print(f"load all 50,000 reviews: first (tokenize + cache) {first:.2f} s, second (cached) {second:.3f} s")
    print("| model | plain loop tok/s | rnnbench random tok/s | rnnbench bucketed tok/s | bucketed / plain |")
    print("|---|---|---|---|---|")
    for model in args.models:
        config = ClassifierConfig(model=model, lr=0.1, epochs=1, data=args.data, device=args.device)
        full = load_data(config)
        sample = np.random.default_rng(0).choice(len(full.train), args.subset, replace=False)
        data = dataclasses.replace(full, train=full.train.subset(sample))
        bucketed = ClassifierRun(config, data)
        initial = {k: v.clone() for k, v in bucketed.model.state_dict().items()}
        bucket_tps = bucketed.run_epoch()[M.TOKENS_PER_S]
        random_run = ClassifierRun(dataclasses.replace(config, batching="random"), data)
        random_tps = random_run.run_epoch()[M.TOKENS_PER_S]
        reference = ClassifierRun(config, data).model
        reference.load_state_dict(initial)
        plain_tps = plain_epoch(reference, data.train, config.lr, config.batch_size, config.seed, args.device)
        print(
            f"| {model} | {plain_tps:,.0f} | {random_tps:,.0f} | {bucket_tps:,.0f} | {bucket_tps / plain_tps:.1f}x |", flush=True
        )


if __name__ == "__main__":
    main()
