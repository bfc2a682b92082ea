"""Time `load` + `aggregate` on a generated 10,000-member x 10-epoch experiment in rnnbench's
record layout, next to the plainest pandas read of the same files (what a researcher without
rnnbench would write: one `pd.read_json(lines=True)` per member, concatenated).

    python benchmarks/bench_results.py [--members 10000] [--epochs 10] [--keep DIR]

The folder is what the sweeps write (rnnbench/record.py): spec.json, and per member member.json
and rows.jsonl; 1% of members diverge with NaN losses, 1% stop early with an error.txt. State
files are not written: neither reader opens them.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

MODELS = ("mlp", "elman", "lstm")
LRS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def _rows(epochs: int, rng: random.Random, fate: str) -> list[dict]:
    rows = []
    last = epochs if fate == "finished" else rng.randint(1, epochs - 1)
    for epoch in range(1, last + 1):
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
                "epoch_s": 2.0 + rng.random(),
                "tokens_per_s": 7.8e5 + 1e4 * rng.random(),
                "time": 1795689217.0 + epoch,
                "node_ip": "127.0.0.1",
            }
        )
    return rows


def generate(root: Path, n_members: int, epochs: int, seed: int = 0) -> Path:
    """Write the experiment folder `root/bench`."""
    rng = random.Random(seed)
    exp = root / "bench"
    (exp / "members").mkdir(parents=True)
    base = {"model": "lstm", "lr": 0.1, "seed": 0, "epochs": epochs, "batch_size": 32, "final": False}
    (exp / "spec.json").write_text(json.dumps({"task": "imdb", "kind": "grid", "base": base, "axes": {}, "group": "none"}))
    for i in range(n_members):
        model, lr = MODELS[i % len(MODELS)], LRS[(i // len(MODELS)) % len(LRS)]
        name = f"{model}_lr{lr}_seed{i // (len(MODELS) * len(LRS))}"
        fate = "diverged" if i % 100 == 7 else "errored" if i % 100 == 42 else "finished"
        folder = exp / "members" / name
        folder.mkdir()
        config = {**base, "model": model, "lr": lr, "seed": i // (len(MODELS) * len(LRS))}
        (folder / "member.json").write_text(json.dumps({"name": name, "group": name, "config": config}))
        (folder / "rows.jsonl").write_text("".join("\n" + json.dumps(r) for r in _rows(epochs, rng, fate)))
        if fate == "errored":
            (folder / "error.txt").write_text("Traceback ...\nRuntimeError: CUDA out of memory\n")
    return exp


def plain_pandas(exp: Path) -> pd.DataFrame:
    """The files read with pandas alone: rows per member, its config beside them."""
    frames = []
    for folder in sorted((exp / "members").iterdir()):
        rows = pd.read_json(folder / "rows.jsonl", lines=True).drop_duplicates("epoch", keep="last")
        config = json.loads((folder / "member.json").read_text())["config"]
        frames.append(rows.assign(trial=folder.name, **config))
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--keep", help="write the folder here and keep it")
    args = p.parse_args()

    root = Path(args.keep or tempfile.mkdtemp(prefix="bench_results_"))
    try:
        start = time.perf_counter()
        exp = generate(root, args.members, args.epochs)
        size = sum(f.stat().st_size for f in exp.rglob("*") if f.is_file())
        print(
            f"generated {args.members} members x {args.epochs} epochs ({size / 1e6:.0f} MB) in {time.perf_counter() - start:.1f} s"
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
                f"columns (status included); + aggregate ({len(agg)} rows): {total:.2f} s total"
            )
            start = time.perf_counter()
            plain = plain_pandas(exp)
            print(
                f"plain pandas (run {attempt}): {time.perf_counter() - start:.2f} s, {len(plain)} rows (no status, no aggregate)"
            )
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
