"""The seed-aware Optuna search: the SeedStudy's bookkeeping and pruning on a real SQLite study
(no Ray), then sweeps/search.py end to end with a real local Ray on the grammar task."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from ray import tune

from rnnbench import results
from rnnbench.sweep.seed_study import SearchSpace, SeedStudy, create_study, set_limits, storage_url

ROOT = Path(__file__).resolve().parents[1]
METRIC = "synth_acc@t1"
SMALL = ["--task", "grammar", "--dataset", "ndfa", "--n", "3000", "--epochs", "2", "--num-samples", "20",
         "--num-seeds", "2"]


def search(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "sweeps" / "search.py"), *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ), cwd=ROOT)


def study_of(path: Path) -> optuna.Study:
    return optuna.load_study(study_name=path.name, storage=storage_url(path))


# --- SeedStudy without Ray ---------------------------------------------------------------------


def seed_study(tmp_path: Path, pruner: str = "median", seeds: int = 2) -> SeedStudy:
    url = storage_url(tmp_path)
    create_study(url, "s", "maximize", {})
    set_limits(url, "s", budget=10, deadline=None)
    return SeedStudy(url, "s", seeds, "maximize", "peak", {"kind": "tpe", "seed": 0, "startup": 1}, pruner)


def run_config(study: SeedStudy, curves: list[list[float]]) -> tuple[int, list[bool]]:
    """Ask a configuration and feed its seeds epoch by epoch; what `record` answered."""
    number, _ = study.ask(SearchSpace())
    answers = []
    for epoch in range(1, len(curves[0]) + 1):
        for seed, curve in enumerate(curves):
            answers.append(study.record(number, seed, epoch, curve[epoch - 1]))
    for seed in range(len(curves)):
        study.finish_seed(number, seed)
    return number, answers


def test_the_study_is_told_the_seed_mean_of_the_best_epoch(tmp_path):
    study = seed_study(tmp_path)
    number, _ = run_config(study, [[0.2, 0.6, 0.5], [0.4, 0.8, 0.7]])
    trial = study.study.trials[number]
    assert trial.state == TrialState.COMPLETE
    assert trial.value == pytest.approx(0.7)  # epoch 2: mean(0.6, 0.8)
    assert trial.intermediate_values == {1: pytest.approx(0.3), 2: pytest.approx(0.7), 3: pytest.approx(0.6)}
    assert trial.user_attrs["epoch"] == 2
    assert trial.user_attrs["std"] == pytest.approx(statistics.stdev([0.6, 0.8]))


def test_nothing_is_reported_until_every_seed_reached_the_epoch(tmp_path):
    study = seed_study(tmp_path)
    number, _ = study.ask(SearchSpace())
    assert study.record(number, 0, 1, 0.5)
    assert study.study.trials[number].intermediate_values == {}
    assert study.record(number, 1, 1, 0.7)
    assert study.study.trials[number].intermediate_values == {1: pytest.approx(0.6)}


def test_a_diverged_seed_counts_with_its_last_value(tmp_path):
    study = seed_study(tmp_path)
    number, _ = study.ask(SearchSpace())
    study.record(number, 0, 1, 0.0)  # diverged in epoch 1: the loop stops, the trial ends
    study.finish_seed(number, 0)
    study.record(number, 1, 1, 0.6)
    study.record(number, 1, 2, 0.8)
    study.finish_seed(number, 1)
    assert study.study.trials[number].value == pytest.approx(0.4)


def test_the_pruner_judges_the_seed_mean_and_stops_every_seed(tmp_path):
    study = seed_study(tmp_path)
    run_config(study, [[0.5, 0.9], [0.5, 0.9]])
    run_config(study, [[0.3, 0.7], [0.3, 0.7]])  # median at epoch 1: 0.4
    # one seed far below the median, but the seed-mean (0.5) is not: keep going
    kept, answers = run_config(study, [[0.1, 0.9], [0.9, 0.9]])
    assert all(answers) and study.study.trials[kept].state == TrialState.COMPLETE
    # both seeds low: pruned at epoch 1, and every later report of either seed says stop
    number, _ = study.ask(SearchSpace())
    assert study.record(number, 0, 1, 0.1)
    assert not study.record(number, 1, 1, 0.2)
    assert not study.record(number, 0, 2, 0.3)
    assert study.study.trials[number].state == TrialState.PRUNED


def test_no_pruning_with_pruner_none(tmp_path):
    study = seed_study(tmp_path, pruner="none")
    run_config(study, [[0.8, 0.9], [0.8, 0.9]])
    number, answers = run_config(study, [[0.1, 0.1], [0.1, 0.1]])
    assert all(answers) and study.study.trials[number].state == TrialState.COMPLETE


# --- sweeps/search.py with a real Ray ----------------------------------------------------------


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One small search: 2 configurations x 2 seeds x 2 epochs of ndfa."""
    storage = tmp_path_factory.mktemp("search")
    done = search(*SMALL, "--budget", "2", "--storage", str(storage), "--name", "s")
    assert done.returncode == 0, done.stderr[-3000:]
    return storage / "s", done


def test_every_configuration_ran_on_every_seed(searched):
    path, done = searched
    df = results.load(path)
    trials = df.drop_duplicates("trial")
    assert sorted(trials.groupby("optuna_trial")["seed"].apply(sorted).tolist()) == [[0, 1], [0, 1]]
    assert trials.groupby("optuna_trial")["lr"].nunique().eq(1).all()  # one config per Optuna trial
    assert set(trials["status"]) == {"finished"} and len(df) == 8
    assert "best configuration: optuna_trial" in done.stdout and "95% CI" in done.stdout


def test_the_studys_values_are_the_seed_means_from_results_load(searched):
    path, _ = searched
    df = results.load(path)
    curves = df.groupby(["optuna_trial", "epoch"])[METRIC].mean()
    told = {t.number: t.value for t in study_of(path).trials}
    assert len(told) == 2
    for number, value in told.items():
        assert value == pytest.approx(curves.loc[number].max())
    best = results.best(df, metric=METRIC, per="optuna_trial", how="peak")  # the grid's rule, per config
    assert dict(zip(best["optuna_trial"], best["mean"])) == pytest.approx(told)


def test_resume_continues_the_same_study(searched):
    path, _ = searched
    before = study_of(path).trials
    done = search("--task", "grammar", "--resume", "--budget", "3", "--storage", str(path.parent), "--name", "s",
                  "--compare-grid", str(path))
    assert done.returncode == 0, done.stderr[-3000:]
    after = study_of(path).trials
    assert [t.state for t in after] == [TrialState.COMPLETE] * 3
    assert [(t.params, t.value) for t in after[:2]] == [(t.params, t.value) for t in before]
    assert after[2].params["lr"] not in [t.params["lr"] for t in before]  # a new draw, not a replay
    df = results.load(path)
    assert df.drop_duplicates("trial").groupby("optuna_trial").size().to_dict() == {0: 2, 1: 2, 2: 2}
    assert any(line.split()[:1] == ["grid"] for line in done.stdout.splitlines())  # the comparison row


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lr-range", "1", "0.1"], "--lr-range is inverted"),
        (["--lr-range", "0.1", "0.1"], "--lr-range is empty"),
        (["--lr-range", "0", "1"], "--lr-range must be > 0"),
        (["--num-seeds", "0"], "--num-seeds must be >= 1"),
        (["--budget", "0"], "--budget must be >= 1"),
        (["--metric", "val_acc"], "--metric val_acc is not reported by grammar trials"),
        (["--resume"], "no search to resume"),
    ],
)
def test_bad_input_is_one_line_before_ray(args, message, tmp_path):
    done = search(*SMALL, "--storage", str(tmp_path), "--name", "x", *args, timeout=120)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], done.stderr[-2000:]
    assert not tune.Tuner.can_restore(str(tmp_path / "x")) and not (tmp_path / "x" / "optuna.db").exists()


def test_an_incompatible_study_is_refused_on_resume(searched, tmp_path):
    path, _ = searched
    cases = [
        (["--task", "grammar", "--num-seeds", "3"], "made with other settings (num_seeds: 2)"),
        (["--task", "imdb"], "is a grammar search, not imdb"),
        (SMALL, "a search already exists at"),
    ]
    for args, message in cases:
        resume = ["--resume"] if args is not SMALL else []
        done = search(*args, *resume, "--storage", str(path.parent), "--name", "s", timeout=120)
        assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
    foreign = tmp_path / "f"
    foreign.mkdir()
    optuna.create_study(storage=storage_url(foreign), study_name="f")  # someone else's study
    done = search("--task", "grammar", "--resume", "--storage", str(tmp_path), "--name", "f", timeout=120)
    assert done.returncode == 2 and "not made by rnnbench's search" in done.stderr, done.stderr[-2000:]


def test_imdb_search_on_the_tiny_set(tiny_imdb, tmp_path):
    done = search("--task", "imdb", "--data", str(tiny_imdb), "--model", "mlp", "--epochs", "2", "--embed-dim", "16",
                  "--hidden-dim", "16", "--num-seeds", "2", "--budget", "2", "--storage", str(tmp_path), "--name", "i")
    assert done.returncode == 0, done.stderr[-3000:]
    study = study_of(tmp_path / "i")
    df = results.load(tmp_path / "i")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    for trial in study.trials:
        seeds = df[df["optuna_trial"] == trial.number]
        assert set(seeds["model"]) == {"mlp"} and sorted(seeds.drop_duplicates("trial")["seed"]) == [0, 1]
        assert trial.value == pytest.approx(seeds.groupby("epoch")["val_acc"].mean().max())
    assert "val_acc (fraction correct), mean ± sd" in done.stdout
