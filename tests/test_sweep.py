"""Sweeps end to end with a real Ray: the scripts run as a user runs them, in a subprocess that
starts its own local Ray on 127.0.0.1 (2 CPUs here), against the tiny generated IMDB set."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rnnbench import results
from rnnbench.sweep import cli

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--embed-dim", "16", "--hidden-dim", "16"]


def sweep(script: str, *args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "sweeps" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def grid(tiny_imdb, tmp_path_factory):
    """One small finished grid: 2 models x 2 lrs x 2 seeds x 2 epochs."""
    storage = tmp_path_factory.mktemp("storage")
    done = sweep(
        "imdb_grid.py",
        "--data",
        str(tiny_imdb),
        "--models",
        "mlp",
        "elman",
        "--lrs",
        "0.1",
        "0.3",
        "--seeds",
        "0",
        "1",
        "--epochs",
        "2",
        *SMALL,
        "--storage",
        str(storage),
        "--name",
        "g",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return storage, done


def test_small_grid_runs_to_the_end(grid):
    storage, done = grid
    df = results.load(storage / "g")
    assert df["trial"].nunique() == 8
    assert len(df) == 16  # one row per trial per epoch
    assert sorted(df["trial"].unique())[:2] == ["elman_lr0.1_seed0", "elman_lr0.1_seed1"]
    assert set(df["status"]) == {"finished"}
    assert all(sorted(epochs) == [1, 2] for epochs in df.groupby("trial")["epoch"].apply(list))
    assert "Comparisons" in done.stdout and "mlp" in done.stdout and "95% CI" in done.stdout
    assert "member-epochs 16/16" in done.stderr  # the progress line
    output = done.stdout + done.stderr  # Ray's own console output stays out (rnnbench.sweep.runner.quiet_tune_console)
    assert "driver_artifacts" not in output and "tensorboard --logdir" not in output
    assert f"rnnbench-results {storage / 'g'} --plot figs --tensorboard tb" in done.stdout  # ours instead


def test_confirmation_stage_continues_the_best_lr_on_the_test_split(grid, tiny_imdb):
    storage, _ = grid
    done = sweep("imdb_grid.py", "--data", str(tiny_imdb), "--storage", str(storage), "--name", "g", "--confirm")
    assert done.returncode == 0, done.stderr[-3000:]
    first = results.load(storage / "g")
    chosen = results.best(first, metric="val_acc", per="model", how="final")
    confirm = results.load(storage / "g-confirm")
    assert confirm["trial"].nunique() == 4  # 2 models x 2 seeds at each model's best lr
    for row in chosen.itertuples():
        trials = confirm[confirm["model"] == row.model]
        assert set(trials["lr"]) == {row.lr} and set(trials["seed"]) == {0, 1}
    assert sorted(confirm["epoch"].unique()) == [3, 4, 5, 6, 7]
    assert confirm["test_acc"].notna().all() and "val_acc" not in confirm.columns
    assert set(confirm["final"]) == {True}
    assert json.loads((storage / "g-confirm" / "spec.json").read_text())["parent"] == str(storage / "g")
    assert all(path.startswith(str(storage / "g" / "members")) for path in confirm["restore_from"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lrs"], "expected at least one argument"),
        (["--lrs", "0.1", "-0.5"], "lr must be > 0"),
        (["--lrs", "0"], "lr must be > 0"),
        (["--models", "mlp", "transformer"], "invalid choice: 'transformer'"),
        (["--seeds", "1.5"], "invalid int value"),
        (["--epochs", "0"], "epochs must be > 0"),
        (["--address", "127.0.0.1:9"], "cannot reach a Ray cluster at 127.0.0.1:9"),
        pytest.param(
            ["--gpus-per-trial", "0.5"],
            "no node can hold one trial of 1 CPUs and 0.5 GPUs",
            marks=pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine may have a GPU"),
        ),
        (["--cpus-per-trial", "64"], "no node can hold one trial of 64 CPUs"),
        (["--confirm"], "no first stage"),
    ],
)
def test_bad_input_is_one_line_before_any_trial(args, message, tiny_imdb, tmp_path):
    done = sweep("imdb_grid.py", "--data", str(tiny_imdb), "--storage", str(tmp_path / "s"), "--name", "x", *args, timeout=120)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], done.stderr[-2000:]
    assert not (tmp_path / "s" / "x").exists()


def test_unwritable_storage_and_bad_data_fail_before_ray(tiny_imdb, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    done = sweep("imdb_grid.py", "--data", str(tiny_imdb), "--storage", str(blocker / "sub"), timeout=120)
    assert done.returncode == 2 and "lies under the file" in done.stderr
    done = sweep("imdb_grid.py", "--data", str(tmp_path), "--storage", str(tmp_path / "s"), timeout=120)
    assert done.returncode == 2 and "not an aclImdb folder" in done.stderr
    assert not (tmp_path / "s" / "imdb_grid").exists()


def test_existing_experiment_is_not_overwritten(grid, tiny_imdb):
    storage, _ = grid
    done = sweep("imdb_grid.py", "--data", str(tiny_imdb), "--storage", str(storage), "--name", "g", timeout=120)
    assert done.returncode == 2 and "already exists; pass --resume" in done.stderr


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--lrs", "0.1", "0.5"], "--lrs 0.1 0.5 (stored: 0.1 0.3)"),
        (["--epochs", "3"], "--epochs 3 (stored: 2)"),
        (["--group", "all"], "--group all (stored: none)"),
        (["--preset", "smoke"], "--models mlp elman lstm (stored: mlp elman)"),
    ],
)
def test_resume_with_other_settings_is_refused_naming_the_difference(grid, flags, named, capsys):
    storage, _ = grid
    spec = (storage / "g" / "spec.json").read_text()
    with pytest.raises(SystemExit) as exit:
        cli.main("imdb", "", ["--storage", str(storage), "--name", "g", "--resume", *flags])
    error = capsys.readouterr().err
    assert exit.value.code == 2 and error.count("\n") == 1 and named in error and "drop those flags" in error
    assert (storage / "g" / "spec.json").read_text() == spec  # the experiment is untouched


def test_resume_repeating_the_stored_settings_is_accepted(grid):
    storage, _ = grid
    again = ["--lrs", "0.1", "0.3", "--epochs", "2", "--group", "none", "--embed-dim", "16"]
    done = sweep("imdb_grid.py", "--storage", str(storage), "--name", "g", "--resume", *again, "--dry-run", timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow  # a whole sweep on a real Ray: the fast tier has one such run per CLI
def test_grammar_grid_needs_no_data_and_reports_every_temperature(tmp_path):
    done = sweep(
        "grammar_grid.py",
        "--datasets",
        "brackets",
        "ndfa",
        "--lrs",
        "1.0",
        "--seeds",
        "0",
        "--epochs",
        "1",
        "--n",
        "2000",
        "--num-samples",
        "20",
        "--storage",
        str(tmp_path),
        "--name",
        "gr",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    df = results.load(tmp_path / "gr")
    assert sorted(df["trial"]) == ["brackets_lr1_seed0", "ndfa_lr1_seed0"]
    for t in ("0", "0.25", "0.5", "0.75", "1"):
        assert df[f"synth_acc@t{t}"].between(0, 1).all() and df[f"compl_acc@t{t}"].between(0, 1).all()
    assert "synth_acc@t1" in done.stdout  # the task's one objective (rnnbench.tasks)


@pytest.mark.slow  # a whole sweep on a real Ray: the fast tier has one such run per CLI
def test_grouped_members_give_the_rows_of_ungrouped_trials(tmp_path):
    """--group seeds trains each setting's seeds in one fused trial; every member still gets its own
    rows, equal to the same member trained as a trial of its own."""
    grid = [
        "--datasets",
        "dyck2",
        "--lrs",
        "1.0",
        "--seeds",
        "0",
        "1",
        "--epochs",
        "2",
        "--n",
        "1000",
        "--num-samples",
        "10",
        "--storage",
        str(tmp_path),
    ]
    alone = sweep("grammar_grid.py", *grid, "--name", "alone", "--group", "none")
    grouped = sweep("grammar_grid.py", *grid, "--name", "grouped", "--group", "seeds")
    assert alone.returncode == 0 and grouped.returncode == 0, grouped.stderr[-3000:]
    assert "2 members in 1 trials (seeds grouped)" in grouped.stderr
    a, g = results.load(tmp_path / "alone"), results.load(tmp_path / "grouped")
    assert set(g["group"]) == {"dyck2_lr1_seed0-1"} and sorted(set(g["trial"])) == ["dyck2_lr1_seed0", "dyck2_lr1_seed1"]
    a, g = (frame.sort_values(["trial", "epoch"]).reset_index(drop=True) for frame in (a, g))
    assert a[["trial", "epoch", "synth_acc@t1", "compl_acc@t0"]].equals(g[["trial", "epoch", "synth_acc@t1", "compl_acc@t0"]])
    # fused, the batched products differ from a lone member's in the last bits (as in test_group)
    assert g["loss_per_token"].to_numpy() == pytest.approx(a["loss_per_token"].to_numpy(), rel=1e-5)


ERRORING = """
import dataclasses, sys
from rnnbench.sweep.runner import Sweep, run_sweep
from rnnbench.tasks import get_task
from rnnbench.train.configs import GrammarConfig

# made on a machine with a GPU: the CLI refuses --device cuda:7 here, so the sweep is built directly
base = GrammarConfig(dataset="brackets", lr=1.0, epochs=1, n=500, num_samples=5, device="cuda:7")
groups = [[{"name": "brackets_lr1_seed0", "dataset": "brackets", "lr": 1.0, "seed": 0}]]
axes = {"datasets": ["brackets"], "lrs": [1.0], "seeds": [0]}
spec = {"task": "grammar", "kind": "grid", "base": dataclasses.asdict(base), "axes": axes, "group": "none", "groups": groups}
sweep = Sweep(get_task("grammar"), sys.argv[1], spec, base, None, "synth_acc@t1", "max", "peak", groups=groups)
sys.exit(run_sweep(sweep, {"cpus_per_trial": 1, "gpus_per_trial": 0}, None, resume=False))
"""


@pytest.mark.slow  # a whole sweep on a real Ray: the fast tier has one such run per CLI
def test_errored_trials_end_the_sweep_non_zero_with_the_resume_command(tmp_path):
    """A member that fails inside its trial (its device does not exist here) is retried by Ray,
    then ends the sweep with 1, its error in the record; --resume retries it."""
    done = subprocess.run(
        [sys.executable, "-c", ERRORING, str(tmp_path / "e")], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "1 of 1 members errored" in done.stderr and "--resume" in done.stderr.splitlines()[-1]
    assert "cuda" in (tmp_path / "e" / "members" / "brackets_lr1_seed0" / "error.txt").read_text().lower()
    assert results.trial_overview(tmp_path / "e")["status"].tolist() == ["errored"]
    again = sweep("grammar_grid.py", "--storage", str(tmp_path), "--name", "e", "--resume")
    assert "resuming: 0 of 1 trials done (kept), 1 to train" in again.stderr
    assert again.returncode == 1 and "1 of 1 members errored" in again.stderr  # retried, and failing again


def signal_when(stop: int, ready: Callable[[], bool], *args: str) -> tuple[int, str]:
    """Start a grammar grid in its own session, send `stop` to the whole group (as a terminal or a
    batch scheduler does) as soon as `ready()` holds, and return its exit code and stderr."""
    driver = subprocess.Popen(
        [sys.executable, str(ROOT / "sweeps" / "grammar_grid.py"), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while not ready() and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(driver.pid, stop)
    _, err = driver.communicate(timeout=240)
    return driver.returncode, err


@pytest.mark.slow  # two sweeps on a real Ray each
@pytest.mark.parametrize("stop, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_ends_the_sweep_with_130_and_says_how_to_resume(stop, code, tmp_path):
    """Ctrl-C, or SIGTERM as a batch scheduler sends it (to the whole process group, Ray's own
    processes included), mid-training: the run stops with 130 / 143, the command that continues,
    none of Ray's own hints, no false "done"; the resume finishes it."""
    args = [
        "--datasets",
        "brackets",
        "--lrs",
        "1.0",
        "--seeds",
        "0",
        "1",
        "2",
        "--epochs",
        "3",
        "--n",
        "2000",
        "--num-samples",
        "10",
        "--max-concurrent",
        "1",
        "--storage",
        str(tmp_path),
        "--name",
        "c",
    ]
    returncode, err = signal_when(stop, lambda: bool(list((tmp_path / "c").glob("members/*/rows.jsonl"))), *args)
    assert returncode == code, err[-3000:]
    said = "interrupted:" if stop == signal.SIGINT else "terminated:"
    assert said in err and "--resume" in err.splitlines()[-1]
    assert not (tmp_path / "c" / "driver.json").exists()
    assert "Tuner.restore" not in err and "SIGTERM received" not in err and "Traceback" not in err
    assert "member-epochs 9/9" not in err
    resumed = sweep("grammar_grid.py", "--storage", str(tmp_path), "--name", "c", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming: " in resumed.stderr and " 0 to train" not in resumed.stderr
    df = results.load(tmp_path / "c")
    assert all(sorted(epochs) == [1, 2, 3] for _, epochs in df.groupby("trial")["epoch"]) and len(df) == 9


@pytest.mark.slow  # a Ray start and a sweep on a real Ray
@pytest.mark.parametrize("stop, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_a_signal_while_ray_starts_ends_with_the_resume_command(stop, code, tmp_path):
    """Ctrl-C or a process-group SIGTERM as soon as the storage is checked, that is while Ray
    starts (or just before or after: the answer must be the same at every moment): 130 / 143, the
    command that continues as the last line, no traceback; that command then runs the grid."""
    storage = tmp_path / "s"
    args = ["--datasets", "brackets", "--lrs", "1.0", "--seeds", "0", "--epochs", "1", "--n", "500", "--num-samples", "5"]
    returncode, err = signal_when(stop, storage.exists, *args, "--storage", str(storage), "--name", "r")
    assert returncode == code, err[-3000:]
    assert "--resume" in err.splitlines()[-1] and "Traceback" not in err
    assert sweep("grammar_grid.py", *args, "--storage", str(storage), "--name", "r", "--resume").returncode == 0
    assert len(results.load(storage / "r")) == 1


def test_a_repeated_seed_is_refused_before_ray(tmp_path):
    done = sweep("grammar_grid.py", "--seeds", "0", "0", "--storage", str(tmp_path), "--name", "r", timeout=120)
    assert done.returncode == 2 and "error: --seeds repeats 0; give each value once" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "r").exists() and "Ray" not in done.stderr


def test_resume_of_an_experiment_never_written_starts_it(tmp_path):
    args = ["--datasets", "brackets", "--lrs", "1.0", "--seeds", "0", "--epochs", "1", "--n", "500", "--num-samples", "5"]
    done = sweep("grammar_grid.py", *args, "--storage", str(tmp_path), "--name", "n", "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(results.load(tmp_path / "n")) == 1


def test_dry_run_prints_the_plan_and_starts_nothing(tmp_path):
    done = sweep(
        "grammar_grid.py",
        "--datasets",
        "brackets",
        "dyck2",
        "--lrs",
        "1.0",
        "--seeds",
        "0",
        "1",
        "2",
        "--epochs",
        "2",
        "--n",
        "600",
        "--num-samples",
        "5",
        "--group",
        "seeds",
        "--dry-run",
        "--storage",
        str(tmp_path),
        "--name",
        "d",
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "6 members in 2 trials (seeds grouped) x 2 epochs = 12 member-epochs" in done.stdout
    assert "probe: brackets" in done.stdout and "probe: dyck2" in done.stdout
    assert "estimate: ~" in done.stdout and "MB of state per member" in done.stdout
    assert not (tmp_path / "d").exists() and "Ray" not in done.stderr


def test_fused_groups_on_cpus_give_every_slot_two_trials():
    """On CPUs `--group auto` cuts the grammar grid's two per-grammar groups into near-equal trials,
    two per core (so the costlier ndfa groups even out over the cores), never below MIN_CPU_GROUP
    members; with a GPU each grammar stays one trial, and `--group all` is what it says."""
    from rnnbench.sweep.members import MIN_CPU_GROUP, NAME
    from rnnbench.tasks import get_task

    task = get_task("grammar")
    axes = {flag: list(values) for flag, values in task.grid.items()}
    for slots, trials in ((2, 4), (4, 8), (16, 12)):
        grouping, groups, _ = cli.trials(task, axes, "auto", 0, slots, True)
        assert (grouping, len(groups)) == ("all", trials)
        assert min(len(g) for g in groups) >= MIN_CPU_GROUP and max(len(g) for g in groups) - min(len(g) for g in groups) <= 1
        assert all(len({m["dataset"] for m in g}) == 1 for g in groups)
        assert [m[NAME] for g in groups for m in g] == [
            m[NAME] for g in cli.trials(task, axes, "all", 0, slots, True)[1] for m in g
        ]
    assert [len(g) for g in cli.trials(task, axes, "auto", 1, 2, True)[1]] == [60, 60]
    assert [len(g) for g in cli.trials(task, axes, "all", 0, 2, True)[1]] == [60, 60]
