"""Time `load` + `aggregate` on a generated 10,000-trial × 10-epoch experiment in Ray's layout,
next to Ray's own `ray.tune.ExperimentAnalysis` on the same folder.

    python benchmarks/bench_results.py [--trials 10000] [--epochs 10] [--keep DIR]

The folder mimics what Ray Tune 2.60 writes for a function trainable that reports once per
epoch: per trial params.json and result.json (our metric names plus Ray's keys and the nested
config), error.txt for errored trials, and an experiment_state-*.json serialised by Ray's own
Trial class, so ExperimentAnalysis can list the trials. progress.csv, checkpoints and event files
are not written: neither reader opens them when result.json exists.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

MODELS = ("mlp", "elman", "lstm")
LRS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def _rows(config: dict, trial_id: str, epochs: int, rng: random.Random, fate: str) -> list[dict]:
    rows, total = [], 0.0
    last = epochs if fate == "finished" else rng.randint(1, epochs - 1)
    for epoch in range(1, last + 1):
        took = 2.0 + rng.random()
        total += took
        diverged = fate == "diverged" and epoch == last
        loss = math.nan if diverged else 0.7 / epoch + 0.05 * rng.random()
        rows.append(
            {
                "epoch": epoch,
                "diverged": diverged,
                "train_loss": loss,
                "train_loss_sum": loss * 625,
                "train_acc": math.nan if diverged else 0.5 + 0.04 * epoch,
                "val_loss": loss,
                "val_acc": math.nan if diverged else 0.5 + 0.035 * epoch + 0.01 * rng.random(),
                "epoch_s": took,
                "tokens_per_s": 7.8e5 + 1e4 * rng.random(),
                "timestamp": 1795689217 + int(total),
                "checkpoint_dir_name": f"checkpoint_{epoch - 1:06d}",
                "should_checkpoint": True,
                "done": False,
                "training_iteration": epoch,
                "trial_id": trial_id,
                "date": "2026-11-26_10-33-37",
                "time_this_iter_s": took,
                "time_total_s": total,
                "pid": 4242,
                "hostname": "vm",
                "node_ip": "127.0.0.1",
                "config": config,
                "time_since_restore": total,
                "iterations_since_restore": epoch,
            }
        )
    return rows


def generate(root: Path, n_trials: int, epochs: int, seed: int = 0) -> Path:
    """Write the experiment folder `root/bench`; 1% of trials diverge, 1% error out."""
    from ray.train._internal.storage import StorageContext
    from ray.tune.execution.placement_groups import PlacementGroupFactory
    from ray.tune.experiment.trial import Trial

    rng = random.Random(seed)
    exp = root / "bench"
    exp.mkdir(parents=True)
    trial_data = []
    for i in range(n_trials):
        model, lr = MODELS[i % len(MODELS)], LRS[(i // len(MODELS)) % len(LRS)]
        s = i // (len(MODELS) * len(LRS))
        config = {
            "model": model,
            "lr": lr,
            "seed": s,
            "epochs": epochs,
            "batch_size": 32,
            "final": False,
            "data": {"max_len": 400, "bucket": True},
        }
        trial_id, name = f"bench_{i:05d}", f"{model}_lr{lr}_seed{s}"
        fate = "diverged" if i % 100 == 7 else "errored" if i % 100 == 42 else "finished"
        folder = exp / name
        folder.mkdir()
        (folder / "params.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        rows = _rows(config, trial_id, epochs, rng, fate)
        (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
        if fate == "errored":
            (folder / "error.txt").write_text("Failure # 1\nTraceback ...\nRuntimeError: CUDA out of memory\n")
        storage = StorageContext(storage_path=str(root), experiment_dir_name="bench", trial_dir_name=name)
        trial = Trial("trainable", config=config, trial_id=trial_id, storage=storage, stub=True)
        trial.placement_group_factory = PlacementGroupFactory([{"CPU": 1}])  # stub trials skip it
        trial.relative_logdir = name  # as Ray records it once the trial folder exists
        trial.status = "ERROR" if fate == "errored" else "TERMINATED"
        trial.run_metadata.last_result = rows[-1]
        trial_data.append(trial.get_json_state())
    state = {"trial_data": trial_data, "runner_data": {}, "stats": {"start_time": 1795689214.6}}
    (exp / "experiment_state-2026-11-26_10-33-34.json").write_text(json.dumps(state))
    return exp


def _time_ray(path: str, queue: mp.Queue) -> None:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import pandas as pd
    from ray.tune import ExperimentAnalysis

    start = time.perf_counter()
    analysis = ExperimentAnalysis(path)
    frame = pd.concat(analysis.trial_dataframes.values(), ignore_index=True)
    queue.put((time.perf_counter() - start, len(frame)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--ray-timeout", type=float, default=300, help="cap on ExperimentAnalysis (s)")
    p.add_argument("--keep", help="write the folder here and keep it")
    args = p.parse_args()

    root = Path(args.keep or tempfile.mkdtemp(prefix="bench_results_"))
    try:
        start = time.perf_counter()
        exp = generate(root, args.trials, args.epochs)
        size = sum(f.stat().st_size for f in exp.rglob("*") if f.is_file())
        print(
            f"generated {args.trials} trials x {args.epochs} epochs ({size / 1e6:.0f} MB) in {time.perf_counter() - start:.1f} s"
        )

        from rnnbench.results import aggregate, load

        for attempt in (1, 2):
            start = time.perf_counter()
            df = load(exp)
            loaded = time.perf_counter() - start
            agg = aggregate(df, by=("model", "lr", "epoch"))
            total = time.perf_counter() - start
            print(
                f"rnnbench load (run {attempt}): {loaded:.2f} s, {len(df)} rows x {df.shape[1]} "
                f"columns; + aggregate ({len(agg)} rows): {total:.2f} s total"
            )

        spawn = mp.get_context("spawn")
        queue = spawn.Queue()
        proc = spawn.Process(target=_time_ray, args=(str(exp), queue))
        proc.start()
        proc.join(args.ray_timeout)
        if proc.is_alive():
            proc.terminate()
            proc.join()
            print(f"ray.tune.ExperimentAnalysis: not done after {args.ray_timeout:.0f} s (stopped)")
        elif proc.exitcode == 0:
            took, rows = queue.get()
            print(
                f"ray.tune.ExperimentAnalysis + concat of trial_dataframes: {took:.2f} s, {rows} rows "
                "(no aggregate, no status, config only as nested config/* columns)"
            )
        else:
            print(f"ray.tune.ExperimentAnalysis failed (exit code {proc.exitcode})")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
