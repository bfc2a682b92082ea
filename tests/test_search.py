"""The seed-aware search (sweeps/search.py) end to end with a real local Ray: one trial per
configuration training its seeds together, Optuna told the seed-mean, and a driver that survives
SIGKILLs at random points."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from rnnbench import results
from rnnbench.sweep.study import journal, study_values

ROOT = Path(__file__).resolve().parents[1]
METRIC = "synth_acc@t1"
SMALL = ["--task", "grammar", "--dataset", "ndfa", "--n", "3000", "--epochs", "2", "--num-samples", "20", "--num-seeds", "2"]


def search(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "sweeps" / "search.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
        cwd=ROOT,
    )


def assert_seed_means_told(path: Path, how_many: int) -> None:
    """Optuna's value of every configuration = the peak of its seed-mean curve from results.load."""
    df = results.load(path)
    curves = df.groupby(["group", "epoch"])[METRIC].mean()
    told = study_values(path)
    assert len(told) == how_many and set(told) == set(df["group"])
    for group, value in told.items():
        assert value == pytest.approx(curves.loc[group].max())


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One small search: 2 configurations x 2 seeds x 2 epochs of ndfa."""
    storage = tmp_path_factory.mktemp("search")
    done = search(*SMALL, "--budget", "2", "--pruner", "none", "--storage", str(storage), "--name", "s")
    assert done.returncode == 0, done.stderr[-3000:]
    return storage / "s", done


def test_every_configuration_ran_on_every_seed_in_one_trial(searched):
    path, done = searched
    df = results.load(path)
    members = df.drop_duplicates("trial")
    assert sorted(members.groupby("group")["seed"].apply(sorted).tolist()) == [[0, 1], [0, 1]]
    assert members.groupby("group")["lr"].nunique().eq(1).all()  # one configuration per trial
    assert set(members["status"]) == {"finished"} and len(df) == 8  # 4 members x 2 epochs
    assert "Top configurations" in done.stdout


def test_the_studys_values_are_the_seed_means_from_results_load(searched):
    path, _ = searched
    assert_seed_means_told(path, 2)


def test_the_study_opens_with_optuna_alone(searched):
    path, _ = searched
    study = optuna.load_study(study_name="search", storage=journal(path))
    assert len(study.trials) == 2 and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


@pytest.mark.slow  # a whole pruned search on a real Ray: the fast tier runs one search
@pytest.mark.parametrize("pruner", ["median", "asha"])
def test_pruned_configurations_keep_every_epoch_and_optuna_their_seed_means(pruner, tmp_path):
    """Configurations the pruner stops keep every epoch they trained, and Optuna is told the
    seed-mean over exactly those epochs."""
    args = [*SMALL, "--epochs", "3", "--budget", "4", "--startup-trials", "1", "--max-concurrent", "1"]
    done = search(*args, "--pruner", pruner, "--storage", str(tmp_path), "--name", "p")
    assert done.returncode == 0, done.stderr[-3000:]
    df = results.load(tmp_path / "p")
    for _, epochs in df.groupby("trial")["epoch"]:
        assert sorted(epochs) == list(range(1, len(epochs) + 1))  # none lost, none repeated
    assert df.groupby("group")["epoch"].max().min() >= 1
    assert_seed_means_told(tmp_path / "p", 4)


@pytest.mark.slow
def test_killed_search_resumes_to_every_epoch_once(tmp_path):
    """10 cycles of SIGKILL to the driver's process group at random points, each followed by
    --resume; then every member has each epoch exactly once and Optuna holds the seed-means."""
    # epochs long enough (n 15,000) that most kills land mid-run, not after the search is done
    args = [
        *SMALL,
        "--n",
        "15000",
        "--epochs",
        "3",
        "--budget",
        "4",
        "--pruner",
        "none",
        "--max-concurrent",
        "1",
        "--storage",
        str(tmp_path),
        "--name",
        "k",
    ]
    path, rng = tmp_path / "k", random.Random(0)
    kills = 0
    for cycle in range(10):
        resume = ["--resume"] if (path / "spec.json").exists() else []
        driver = subprocess.Popen(
            [sys.executable, str(ROOT / "sweeps" / "search.py"), *args, *resume],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        if cycle % 2:  # after the next report, at a random point of what follows: checkpoint, state write
            before = reported_lines(path)
            deadline = time.monotonic() + 180  # a generous bound; the wait ends as soon as there is progress
            while driver.poll() is None and reported_lines(path) <= before and time.monotonic() < deadline:
                time.sleep(0.1)
            delay = rng.uniform(0, 0.5)
        else:  # anywhere from Ray's start and the restore to the first epochs
            delay = rng.uniform(1, 10)
        try:
            driver.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started, nothing else
            kills += 1
        driver.wait()
        driver.stderr.close()
    done = search(*args, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    assert kills >= 8  # (nearly) every cycle really was interrupted
    df = results.load(path)
    assert len(df.drop_duplicates("group")) == 4 and set(df["status"]) == {"finished"}
    assert all(sorted(epochs) == [1, 2, 3] for _, epochs in df.groupby("trial")["epoch"])
    assert len(df) == 4 * 2 * 3  # configurations x seeds x epochs: none lost, none repeated
    assert_seed_means_told(path, 4)


def reported_lines(path: Path) -> int:
    return sum(len(f.read_text().split()) for f in path.glob("members/*/rows.jsonl"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lr-range", "1", "0.1"], "--lr-range is inverted"),
        (["--lr-range", "0.1", "0.1"], "--lr-range is empty"),
        (["--lr-range", "0", "1"], "--lr-range must be > 0"),
        (["--num-seeds", "0"], "--num-seeds must be >= 1"),
        (["--budget", "0"], "--budget must be >= 1"),
        (["--metric", "val_acc"], "--metric val_acc is not reported by grammar trials"),
        (["--cpus-per-trial", "0"], "--cpus-per-trial must be > 0"),
    ],
)
def test_bad_input_is_one_line_before_ray(args, message, tmp_path):
    done = search(*SMALL, "--storage", str(tmp_path), "--name", "x", *args, timeout=120)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], done.stderr[-2000:]
    assert not (tmp_path / "x").exists()


def test_an_incompatible_search_is_refused_on_resume(searched):
    path, _ = searched
    cases = [
        (["--task", "grammar", "--num-seeds", "3", "--resume"], "made with other settings (num_seeds: 2)"),
        (["--task", "imdb", "--resume"], "is a grammar search, not imdb"),
        (SMALL, "a search already exists at"),
    ]
    for args, message in cases:
        done = search(*args, "--storage", str(path.parent), "--name", "s", timeout=120)
        assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
    assert json.loads((path / "spec.json").read_text())["num_seeds"] == 2


@pytest.mark.slow  # a whole sweep on a real Ray: the fast tier has one such run per CLI
def test_imdb_search_on_the_tiny_set(tiny_imdb, tmp_path):
    done = search(
        "--task",
        "imdb",
        "--data",
        str(tiny_imdb),
        "--model",
        "mlp",
        "--epochs",
        "2",
        "--embed-dim",
        "16",
        "--hidden-dim",
        "16",
        "--num-seeds",
        "2",
        "--budget",
        "2",
        "--pruner",
        "none",
        "--storage",
        str(tmp_path),
        "--name",
        "i",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    df = results.load(tmp_path / "i")
    told = study_values(tmp_path / "i")
    assert len(told) == 2
    for _, seeds in df.groupby("group"):
        assert set(seeds["model"]) == {"mlp"} and sorted(seeds.drop_duplicates("trial")["seed"]) == [0, 1]
        assert told[seeds["group"].iloc[0]] == pytest.approx(seeds.groupby("epoch")["val_acc"].mean().max())
