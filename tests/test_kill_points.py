"""A driver SIGKILLed at exact points of a sweep, each kill followed by a --resume that is killed at
the next point, and a last --resume without kills: every member still ends with each epoch exactly
once, and with the metrics a run without Ray or kills computes.

The kill points (tests/killpoints.py) are function calls in the driver, not sleeps: Ray's start,
the first result, a checkpoint's registration, the deletion of a checkpoint beyond num_to_keep
(the window in which the saved experiment state names a checkpoint that is gone, repaired by
rnnbench.sweep.recovery) and the closing summary. Chains: the grammar grid (every point), the
seed-aware search, and the IMDB grid's confirmation stage.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from ray import tune

from rnnbench import metrics as M
from rnnbench import results
from rnnbench.sweep.members import MEMBERS, NAME
from rnnbench.sweep.recovery import CheckpointFallback, checkpoint_index, repair, with_fallback
from rnnbench.sweep.runtime import SPEC_FILE
from rnnbench.sweep.search import study_values
from rnnbench.sweep.trainable import TASK, make_group, member_configs
from rnnbench.tasks import RESTORE_FROM, get_task
from rnnbench.train.common import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "tests" / "killpoints.py"
# With this, Ray writes the experiment state only at a run's start and end and when it forces a write
# (every num_to_keep = 2 checkpoints of a trial), never on its 10 s timer: which checkpoint the
# state names at a kill point follows from the counts below, however slow the machine is.
ENV = {"TUNE_GLOBAL_CHECKPOINT_S": "3600"}
TIMINGS = {M.EPOCH_S, M.TOKENS_PER_S}  # the only metrics that differ between two identical runs
# CheckpointFallback's line for a trial it repairs. Each chain's deletion-window kill falls in the
# experiment's first Ray session, where the counts alone say that the state names the checkpoint
# Ray has just deleted (no earlier session's writes to account for).
NOTE = "(the checkpoint the experiment state names is missing)"


def killed_at(point: str, n: int, script: str, args: list[str], log: Path) -> str:
    """Run the sweep script until its n-th pass at `point`, SIGKILL its process group there (the
    driver and the Ray it started), and return what it wrote to stderr."""
    signal_file = log.with_suffix(".reached")
    with log.open("w") as stderr:
        driver = subprocess.Popen(
            [sys.executable, str(HARNESS), point, str(n), str(signal_file), "--", str(ROOT / "sweeps" / script), *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, **ENV},
            start_new_session=True,
        )
        deadline = time.monotonic() + 300  # a generous bound; the wait ends when the point is reached
        while not signal_file.exists() and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended by itself; the assertion below says so
            pass
        driver.wait()
    text = log.read_text()
    assert signal_file.exists(), f"{script} never reached {point} #{n} (exit {driver.returncode}): {text[-3000:]}"
    return text


def sweep(script: str, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "sweeps" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **ENV},
        cwd=ROOT,
    )


def chain(script: str, fresh: list[str], resume: list[str], spec: Path, points: list[tuple[str, int]], logs: Path) -> list[str]:
    """Kill a run at each point in turn (the same command again while nothing was written, else
    its --resume form), then resume once more without kills; the stderr of every run."""
    logs.mkdir()
    errs = []
    for i, (point, n) in enumerate(points):
        errs.append(killed_at(point, n, script, resume if spec.exists() else fresh, logs / f"{i}-{point}.err"))
    done = sweep(script, resume)
    assert done.returncode == 0, done.stderr[-3000:]
    return [*errs, done.stderr]


def replay(path: Path, data: object = None) -> pd.DataFrame:
    """What every trial of the experiment computes, run here without Ray or kills: its own config
    (params.json) through the trainable's own group, starting where a confirmation member starts.
    One row per member and epoch, as `results.load` has them."""
    rows = []
    for params in sorted(path.glob("*/params.json")):
        config = json.loads(params.read_text())
        task = get_task(config[TASK])
        members = config[MEMBERS]
        group = make_group(task, member_configs(task, config), data)
        if any(RESTORE_FROM in member for member in members):
            group.load_state_dict({MEMBERS: [load_checkpoint(Path(m[RESTORE_FROM]) / f"{m[NAME]}.pt") for m in members]})
        for reports in group.epochs():
            rows += [{"trial": members[i][NAME], **report} for i, report in reports.items()]
    return pd.DataFrame(rows)


def assert_every_epoch_once_as_computed(path: Path, data: object = None) -> pd.DataFrame:
    """Every member finished with each of its epochs exactly once (in `results.load`, and none
    missing from its result.json), with the metrics of an uninterrupted run."""
    df = results.load(path)
    expected = replay(path, data)
    assert set(df["status"]) == {"finished"}
    assert not df.duplicated(["trial", "epoch"]).any()
    assert sorted(zip(df["trial"], df["epoch"])) == sorted(zip(expected["trial"], expected["epoch"]))
    for name, epochs in expected.groupby("trial")["epoch"]:
        assert set(logged_epochs(path, name)) == set(epochs), name  # no row lost from the raw log
    columns = ["trial", "epoch", *sorted(set(expected.columns) - TIMINGS - {"trial", "epoch"})]
    got = df[columns].sort_values(["trial", "epoch"]).reset_index(drop=True)
    want = expected[columns].sort_values(["trial", "epoch"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_exact=True)
    return df


def logged_epochs(path: Path, member: str) -> list[int]:
    """The member's epochs in the raw result.json of its trial, repeats included."""
    epochs = []
    for log in path.glob("*/result.json"):
        for line in log.read_text().splitlines():
            report = json.loads(line).get(MEMBERS, {}).get(member) if line.strip() else None
            if report is not None:
                epochs.append(report["epoch"])
    return epochs


@pytest.fixture(scope="module")
def grammar_chain(tmp_path_factory) -> tuple[Path, list[str]]:
    """One grammar grid (2 trials, 6 epochs each, one at a time) killed at Ray's start, in the
    deletion window, at the first result, after a checkpoint's registration and at the summary,
    then resumed to the end. The deletion is the 2nd of a fresh trial: at its 4th checkpoint, Ray
    deletes its 2nd, the one the state (forced after its 2nd) names. It falls in the experiment's
    first Ray session (see NOTE)."""
    tmp = tmp_path_factory.mktemp("grammar")
    storage, name = tmp / "runs", "g"
    fresh = ["--datasets", "brackets", "--lrs", "0.5", "--seeds", "0", "1", "--epochs", "6", "--n", "300"]
    fresh += ["--num-samples", "5", "--max-concurrent", "1", "--storage", str(storage), "--name", name]
    resume = ["--storage", str(storage), "--name", name, "--resume"]
    points = [("ray-start", 1), ("checkpoint-deleted", 2), ("first-report", 1), ("checkpoint-registered", 3), ("summary", 1)]
    return storage / name, chain("grammar_grid.py", fresh, resume, storage / name / SPEC_FILE, points, tmp / "logs")


@pytest.mark.slow
def test_grammar_grid_survives_a_kill_at_every_point(grammar_chain):
    path, errs = grammar_chain
    assert NOTE in errs[2] and "brackets_lr0.5_seed0" in errs[2]  # the run after the deletion window
    assert sum(NOTE in err for err in errs) == 1
    assert "Error handling checkpoint" not in "".join(errs)  # Ray never tripped over a deleted checkpoint
    assert len(assert_every_epoch_once_as_computed(path)) == 2 * 6


@pytest.mark.slow
def test_fallback_takes_the_newest_complete_logged_checkpoint(grammar_chain, tmp_path, capsys):
    """On a copy of the finished grid, as Ray restores its trials from the files: with the named
    checkpoint gone the trial points at the one before it, with the metrics of its row; with that
    one incomplete too it starts over. Either way its next checkpoint gets a new folder name."""
    path, _ = grammar_chain
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    trial_dir = copy / "brackets_lr0.5_seed0"
    named = tune.ExperimentAnalysis(str(copy)).trials
    latest = {str(t): Path(t.checkpoint.path).name for t in named}["brackets_lr0.5_seed0"]
    shutil.rmtree(trial_dir / latest)
    before = sorted(p.name for p in trial_dir.glob("checkpoint_*"))[-1]  # the one registered before it
    rows = {r["checkpoint_dir_name"]: r for r in map(json.loads, (trial_dir / "result.json").read_text().splitlines())}

    trial = next(t for t in tune.ExperimentAnalysis(str(copy)).trials if str(t) == "brackets_lr0.5_seed0")
    repair(trial)
    assert trial.checkpoint.path == str(trial_dir / before)
    assert trial.latest_checkpoint_result.metrics == rows[before]
    assert trial.storage.current_checkpoint_index == checkpoint_index(before)  # the next one: a new name
    assert f"note: brackets_lr0.5_seed0 resumes from {before} {NOTE}" in capsys.readouterr().err

    (trial_dir / before / "score.json").unlink()
    trial = next(t for t in tune.ExperimentAnalysis(str(copy)).trials if str(t) == "brackets_lr0.5_seed0")
    repair(trial)
    assert trial.checkpoint is None and trial.storage.current_checkpoint_index == checkpoint_index(before)
    assert "brackets_lr0.5_seed0 starts over" in capsys.readouterr().err

    untouched = next(t for t in tune.ExperimentAnalysis(str(copy)).trials if str(t) == "brackets_lr0.5_seed1")
    named = untouched.checkpoint.path
    repair(untouched)
    assert untouched.checkpoint.path == named and capsys.readouterr().err == ""


def test_a_restored_tuner_runs_the_fallback(tmp_path):
    """Tuner.restore takes no callbacks: it unpickles the RunConfig's, so a tuner made by run_grid
    brings its CheckpointFallback back, and with_fallback adds one to a tuner made without."""

    def trainable(config: dict) -> None:
        pass

    for name, callbacks in (("made-with", [CheckpointFallback()]), ("made-without", [])):
        tune.Tuner(trainable, run_config=tune.RunConfig(name=name, storage_path=str(tmp_path), callbacks=callbacks))
        restored = with_fallback(tune.Tuner.restore(str(tmp_path / name), trainable))
        # the restored RunConfig has no public accessor on a Tuner
        kept = restored._local_tuner.get_run_config().callbacks
        assert sum(isinstance(c, CheckpointFallback) for c in kept) == 1, name


@pytest.mark.slow
def test_search_survives_kills(tmp_path):
    """The seed-aware search (2 configurations x 2 seeds x 4 epochs) killed in the deletion window
    (in its first Ray session, see NOTE), at the first result and at its report; Optuna ends told every configuration's
    seed-mean."""
    storage, name = tmp_path / "runs", "s"
    resume = ["--task", "grammar", "--storage", str(storage), "--name", name, "--resume"]
    fresh = ["--dataset", "brackets", "--n", "300", "--epochs", "4", "--num-samples", "5", "--num-seeds", "2"]
    fresh += ["--budget", "2", "--pruner", "none", "--max-concurrent", "1", *resume[:-1]]
    points = [("checkpoint-deleted", 2), ("first-report", 1), ("summary", 1)]
    errs = chain("search.py", fresh, resume, storage / name / SPEC_FILE, points, tmp_path / "logs")
    assert NOTE in errs[1]
    df = assert_every_epoch_once_as_computed(storage / name)
    assert len(df) == 2 * 2 * 4
    told = study_values(storage / name)
    curves = df.groupby(["group", "epoch"])["synth_acc@t1"].mean()
    assert len(told) == 2
    for group, ids in df.groupby("group")["trial_id"]:
        assert told[ids.iloc[0].split("/")[0]] == pytest.approx(curves.loc[group].max())


@pytest.mark.slow
def test_confirmation_stage_survives_kills(tiny_imdb, tmp_path):
    """The IMDB grid's --confirm stage (2 members x 5 more epochs) killed in the deletion window
    (in its first Ray session, see NOTE) and at its first result; it ends as an uninterrupted confirmation would."""
    storage, name = tmp_path / "runs", "c"
    first = ["--data", str(tiny_imdb), "--models", "mlp", "--lrs", "0.1", "--seeds", "0", "1", "--epochs", "2"]
    first += ["--embed-dim", "16", "--hidden-dim", "16", "--max-concurrent", "1", "--storage", str(storage), "--name", name]
    done = sweep("imdb_grid.py", first)
    assert done.returncode == 0, done.stderr[-3000:]
    # one trial at a time, as in the first stage: with two at once, which deletion comes 2nd is a race
    confirm = ["--storage", str(storage), "--name", name, "--confirm", "--max-concurrent", "1"]
    points = [("checkpoint-deleted", 2), ("first-report", 1)]
    path = storage / f"{name}-confirm"
    errs = chain("imdb_grid.py", confirm, [*confirm, "--resume"], path / SPEC_FILE, points, tmp_path / "logs")
    assert NOTE in errs[1]
    data = confirmation_data(path)
    df = assert_every_epoch_once_as_computed(path, data)
    assert len(df) == 2 * 5 and sorted(df["epoch"].unique()) == [3, 4, 5, 6, 7]


def confirmation_data(path: Path) -> object:
    """The data a confirmation trial is given: the official split, in the first stage's vocabulary."""
    config = json.loads(next(path.glob("*/params.json")).read_text())
    task = get_task(config[TASK])
    member = config[MEMBERS][0]
    vocab = tuple(load_checkpoint(Path(member[RESTORE_FROM]) / f"{member[NAME]}.pt")["vocab"])
    return task.load("load_data")(member_configs(task, config)[0], vocab=vocab)
