"""Optuna search vs the full grid on the ndfa grammar: how many trials does the seed-aware search
need to find an lr whose seed-mean Synthesis accuracy (t=1.0) is within 0.01 of the grid's best?

    python -m benchmarks.bench_search                    # grid: 6 lrs x 3 seeds; 3 searches of 8 x 3
    python -m benchmarks.bench_search --storage /tmp/b   # keep the experiments

Both run the scripts a user runs (sweeps/grammar_grid.py, sweeps/search.py) with the same
settings (n=20,000, 2 epochs, seeds 0..2) and are scored by the same rule: the best epoch of the
seed-mean curve (rnnbench.results.best, how="peak"; Optuna is told exactly that number).
Each search (sampler seeds 0, 1, 2) counts the Ray trials up to and including the first
configuration within the tolerance, pruned configurations before it included.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from rnnbench import metrics as M
from rnnbench import results
from rnnbench.sweep.study import STUDY_NAME, journal

ROOT = Path(__file__).resolve().parents[1]
METRIC = M.synth_acc(1.0)
SETTINGS = ["--n", "20000", "--epochs", "2"]
STUDY_LRS = ["0.01", "0.03", "0.1", "0.3", "1.0", "3.0"]
SEEDS = 3


def script(name: str, *args: str) -> float:
    """Run one sweep script as a user would; its wall time in seconds."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "sweeps" / name), *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def trials_to_reach(path: Path, target: float) -> tuple[int | None, int, dict[str, int]]:
    """Ray trials spent up to the first configuration scoring >= target (None if none did), the
    configurations tried, and their outcomes."""
    trials = optuna.load_study(study_name=STUDY_NAME, storage=journal(path)).get_trials(deepcopy=False)
    hit = next((t.number for t in trials if t.state == TrialState.COMPLETE and t.value >= target), None)
    outcomes = {
        s.name.lower(): sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    }
    return (None if hit is None else (hit + 1) * SEEDS), len(trials), outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", help="where the experiments go (default: a temp dir)")
    parser.add_argument("--budget", type=int, default=8, help="configurations per search (default 8)")
    parser.add_argument("--sampler-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tolerance", type=float, default=0.01)
    args = parser.parse_args()
    storage = Path(args.storage or tempfile.mkdtemp(prefix="bench_search_"))

    seconds = script(
        "grammar_grid.py",
        "--datasets",
        "ndfa",
        "--lrs",
        *STUDY_LRS,
        "--seeds",
        *map(str, range(SEEDS)),
        *SETTINGS,
        "--storage",
        str(storage),
        "--name",
        "grid",
    )
    grid = results.load(storage / "grid")
    best = results.best(grid, metric=METRIC, per="dataset", how="peak").iloc[0]
    target = best["mean"] - args.tolerance
    print(
        f"grid: {grid['trial'].nunique()} trials in {seconds:.0f} s; best lr {best['lr']:g}: {METRIC} "
        f"{best['mean']:.4f} ± {best['std']:.4f} (epoch {best['epoch']}); target >= {target:.4f}"
    )
    for seed in args.sampler_seeds:
        name = f"search_seed{seed}"
        seconds = script(
            "search.py",
            "--task",
            "grammar",
            "--dataset",
            "ndfa",
            *SETTINGS,
            "--num-seeds",
            str(SEEDS),
            "--budget",
            str(args.budget),
            "--sampler-seed",
            str(seed),
            "--storage",
            str(storage),
            "--name",
            name,
        )
        needed, tried, outcomes = trials_to_reach(storage / name, target)
        df = results.load(storage / name)
        epochs = int(df["epoch"].notna().sum())
        study = optuna.load_study(study_name=STUDY_NAME, storage=journal(storage / name))
        top = study.best_trial
        print(
            f"search sampler seed {seed}: {tried} configurations {outcomes}, {df['trial'].nunique()} trials, "
            f"{epochs} trial-epochs, {seconds:.0f} s; best lr {top.params['lr']:.4g}: {top.value:.4f} (seed-mean, peak)"
            f"; trials to reach the target: {needed if needed else 'not reached'}"
        )
    print(f"experiments in {storage}")


if __name__ == "__main__":
    main()
