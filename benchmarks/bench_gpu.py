"""Classifier epochs on one GPU with the full IMDB training split (20,000 reviews), side by side:
rnnbench's loop (bucketed and random batches, batch 32 and 128) against the plain reference loop,
and a 10-epoch LSTM run at the study's best lr to check the accuracy anchor (~0.88 val_acc).

    RNNBENCH_IMDB=path/to/aclImdb_labelled.tar.gz python -m benchmarks.bench_gpu
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import torch

from benchmarks.plain_loop import plain_epoch
from rnnbench import metrics as M
from rnnbench.train.classifier import ClassifierConfig, ClassifierRun, load_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--subset", type=int, default=None, help="fewer reviews, to try the script on a CPU")
    parser.add_argument("--long-epochs", type=int, default=10)
    args = parser.parse_args()
    device = args.device
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"device: {name}, torch {torch.__version__}")
    start = time.perf_counter()
    base = ClassifierConfig(data=os.environ.get("RNNBENCH_IMDB"), device=device, epochs=1, subset=args.subset)
    data = load_data(base)
    print(f"first load (tokenize + cache) {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    load_data(base)
    print(f"cached load {time.perf_counter() - start:.3f} s")

    print("| model | loop | batch | epoch s (train + eval) | train tokens/s | val_acc after 1 epoch |")
    print("|---|---|---|---|---|---|")
    for model, lr in (("mlp", 0.03), ("elman", 0.1), ("lstm", 0.3)):
        for batching, batch_size in (("bucket", 32), ("random", 32), ("bucket", 128)):
            config = dataclasses.replace(base, model=model, lr=lr, batching=batching, batch_size=batch_size)
            run = ClassifierRun(config, data)
            if batching == "bucket" and batch_size == 32:
                initial = {k: v.clone() for k, v in run.model.state_dict().items()}
            metrics = run.run_epoch()
            print(
                f"| {model} | rnnbench {batching} | {batch_size} | {metrics[M.EPOCH_S]:.1f} | "
                f"{metrics[M.TOKENS_PER_S]:,.0f} | {metrics[M.VAL_ACC]:.3f} |",
                flush=True,
            )
        reference = ClassifierRun(dataclasses.replace(base, model=model, lr=lr), data)
        reference.model.load_state_dict(initial)
        start = time.perf_counter()
        tps = plain_epoch(reference.model, data.train, lr, 32, 0, device)
        print(f"| {model} | plain reference | 32 | {time.perf_counter() - start:.1f} (train only) | {tps:,.0f} | - |", flush=True)

    config = dataclasses.replace(base, model="lstm", lr=0.3, epochs=args.long_epochs)
    history = list(ClassifierRun(config, data).epochs())
    accs = " ".join(f"{m[M.VAL_ACC]:.3f}" for m in history)
    print(
        f"lstm lr 0.3, {args.long_epochs} epochs, bucketed batch 32: val_acc per epoch {accs}; "
        f"mean epoch {sum(m[M.EPOCH_S] for m in history) / len(history):.1f} s"
    )


if __name__ == "__main__":
    main()
