"""The results layer on experiment records (rnnbench.record) written here file by file, as the
sweeps write them: a grid of 8 members × 3 epochs in 4 trials (one member errored, one diverged),
its confirmation stage, and copies cut short in the ways a killed or running sweep leaves them
(a torn last line, an epoch written twice, members with no epoch, planned members with no folder)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import pandas as pd
import pyarrow.fs as pafs
import pytest

from rnnbench import record
from rnnbench.results import (
    STATUSES,
    ResultsError,
    aggregate,
    best,
    compare,
    export_tensorboard,
    learning_curves,
    list_experiments,
    load,
    lr_grid,
    summary_table,
    temperature_curves,
    trial_overview,
)
from rnnbench.results.cli import main, report
from rnnbench.results.columns import default_metric, default_per

EPOCHS = 3
FS = pafs.LocalFileSystem()
BASE = {"model": "mlp", "lr": 0.01, "seed": 0, "epochs": EPOCHS, "batch_size": 32, "temperatures": [0.5, 1.0], "final": False}
ERRORED, DIVERGED = "lstm_lr0.3_seed1", "elman_lr0.3_seed1"


def grid_groups(models: tuple[str, ...] = ("lstm", "elman"), extra: dict | None = None) -> list[list[dict]]:
    """The spec's planned members, grouped by seeds (one trial per model and lr), as the grid plans them."""
    return [
        [{"name": f"{model}_lr{lr}_seed{seed}", "model": model, "lr": lr, "seed": seed, **(extra or {})} for seed in (0, 1)]
        for model in models
        for lr in (0.1, 0.3)
    ]


def metrics(model: str, lr: float, seed: int, epoch: int) -> dict:
    """A finished epoch's row; the diverged member's second epoch is not finite."""
    diverged = (f"{model}_lr{lr}_seed{seed}", epoch) == (DIVERGED, 2)
    base = 0.6 + 0.05 * epoch + (0.02 if model == "lstm" else 0) + 0.01 * seed
    return {
        "epoch": epoch,
        "diverged": diverged,
        "train_loss": math.nan if diverged else 1.0 / epoch + lr,
        "val_acc": math.nan if diverged else base + lr / 10,
        "synth_acc@t0.5": 0.9 - 0.1 * seed,
        "synth_acc@t1": 0.7,
        "compl_acc@t0.5": 0.95,
        "compl_acc@t1": 0.8,
    }


def write_spec(path: Path, groups: list[list[dict]], kind: str = "grid", task: str = "imdb", **more) -> None:
    spec = {"task": task, "kind": kind, "base": BASE, "axes": {}, "group": "seeds", "groups": groups, **more}
    record.write_json(FS, str(path / record.SPEC), spec)


def write_member(path: Path, member: dict, group: str, config: dict, rows: list[dict], error: str | None = None) -> None:
    """One member folder: member.json, a row per finished epoch, error.txt while it failed."""
    folder = record.member_folder(str(path), member["name"])
    info = {"name": member["name"], "group": group, "config": config}
    info.update({k: v for k, v in member.items() if k == "restore_from"})
    record.write_json(FS, f"{folder}/{record.MEMBER}", info)
    for row in rows:
        record.append_row(FS, folder, row)
    if error is not None:
        Path(folder, record.ERROR).write_text(f"Traceback (most recent call last):\n  ...\n{error}\n")


def group_of(group: list[dict]) -> str:
    """The trial's name, e.g. lstm_lr0.1_seed0-1."""
    return f"{group[0]['model']}_lr{group[0]['lr']}_seed0-1"


def write_grid(path: Path, models: tuple[str, ...] = ("lstm", "elman"), started: tuple[str, ...] = ("lstm", "elman")) -> Path:
    """The grid: every member of a started model with its epochs (the errored one stops after
    epoch 1, the diverged one at epoch 2); the other models' members planned only."""
    groups = grid_groups(models)
    write_spec(path, groups)
    for group in groups:
        for member in group:
            if member["model"] not in started:
                continue
            config = {**BASE, **{k: v for k, v in member.items() if k != "name"}}
            last = {ERRORED: 1, DIVERGED: 2}.get(member["name"], EPOCHS)
            rows = [metrics(member["model"], member["lr"], member["seed"], e) for e in range(1, last + 1)]
            write_member(path, member, group_of(group), config, rows, "RuntimeError: boom" if member["name"] == ERRORED else None)
    return path


def write_confirm(path: Path, parent: Path) -> Path:
    """The confirmation stage: lstm lr 0.3's seeds continued for one more epoch on the test split."""
    members = [
        {"name": f"lstm_lr0.3_seed{seed}", "model": "lstm", "lr": 0.3, "seed": seed, "restore_from": f"{parent}/x/state-3.pt"}
        for seed in (0, 1)
    ]
    write_spec(path, [members], kind="confirm", parent=str(parent))
    for seed, member in enumerate(members):
        config = {**BASE, "model": "lstm", "lr": 0.3, "seed": seed, "final": True, "epochs": EPOCHS + 1}
        row = {"epoch": EPOCHS + 1, "test_acc": 0.8 + 0.01 * seed, "test_loss": 0.4, "diverged": False}
        write_member(path, member, "lstm_lr0.3_seed0-1", config, [row])
    return path


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> Path:
    storage = tmp_path_factory.mktemp("storage")
    write_grid(storage / "exp")
    write_confirm(storage / "exp-confirm", storage / "exp")
    return storage


@pytest.fixture(scope="module")
def df(storage) -> pd.DataFrame:
    return load(storage / "exp")


def heads(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop_duplicates("trial").set_index("trial")


def test_load_reads_every_epoch_config_and_status(df):
    statuses = heads(df)["status"]
    assert statuses[ERRORED] == "errored" and statuses[DIVERGED] == "diverged"
    assert (statuses.drop([ERRORED, DIVERGED]) == "finished").all() and len(statuses) == 8
    assert len(df) == 6 * EPOCHS + 1 + 2  # the errored member finished 1 epoch, the diverged one 2
    assert list(df.columns[:9]) == ["experiment", "trial", "group", "status", "error", "model", "lr", "seed", "epochs"]
    at = list(df.columns).index("epoch")
    assert list(df.columns[at : at + 4]) == ["epoch", "diverged", "train_loss", "val_acc"]
    assert {"trial_id", "training_iteration", "config"}.isdisjoint(df.columns)
    assert heads(df).loc[ERRORED, "error"] == "RuntimeError: boom" and heads(df)["error"].isna().sum() == 7
    assert heads(df).loc["lstm_lr0.1_seed1", "group"] == "lstm_lr0.1_seed0-1"
    assert df["temperatures"].iloc[0] == (0.5, 1.0)  # a list as a tuple, so it can be grouped on
    diverged = df[df.trial == DIVERGED].sort_values("epoch")
    assert diverged["diverged"].tolist() == [False, True] and math.isnan(diverged["train_loss"].iloc[-1])
    assert df.groupby("trial")["epoch"].max().max() == EPOCHS and str(df["epoch"].dtype) == "Int64"
    assert df.attrs["task"] == "imdb" and df.attrs["experiment"] == "exp"
    assert df.attrs["config_columns"][:4] == ["model", "lr", "seed", "epochs"]
    assert df.attrs["metric_columns"][:2] == ["train_loss", "val_acc"] and "diverged" not in df.attrs["metric_columns"]
    assert set(df["status"]) <= set(STATUSES)


def test_file_uri_and_an_fsspec_filesystem_read_the_same(storage, df):
    """A storage URI, and a non-local store: the experiment copied into fsspec's in-memory
    filesystem, read through pyarrow's fsspec bridge, as an s3fs or gcsfs one would be passed in."""
    import fsspec
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    pd.testing.assert_frame_equal(load((storage / "exp").as_uri()), df)
    memory = fsspec.filesystem("memory")
    memory.put(str(storage / "exp"), "/bucket/exp", recursive=True)
    pd.testing.assert_frame_equal(load("/bucket/exp", filesystem=PyFileSystem(FSSpecHandler(memory))), df)


def test_a_torn_line_and_a_rewritten_epoch_count_once(storage, tmp_path):
    copy = tmp_path / "exp"
    shutil.copytree(storage / "exp", copy)
    rows = copy / "members" / "lstm_lr0.1_seed0" / record.ROWS
    rows.write_text(rows.read_text()[:-25])  # the last line cut mid-write
    resumed = record.member_folder(str(copy), "elman_lr0.1_seed0")
    record.append_row(FS, resumed, {**metrics("elman", 0.1, 0, 2), "val_acc": 0.5})  # resumed from epoch 1
    record.append_row(FS, resumed, metrics("elman", 0.1, 0, 3))
    cut = load(copy)
    assert cut.loc[cut.trial == "lstm_lr0.1_seed0", "epoch"].tolist() == [1, 2]
    assert heads(cut).loc["lstm_lr0.1_seed0", "status"] == "stopped"  # unfinished, and no driver runs it
    again = cut[cut.trial == "elman_lr0.1_seed0"]
    assert again["epoch"].tolist() == [1, 2, 3] and again["val_acc"].tolist()[1] == 0.5  # the later line wins
    record.write_json(FS, str(rows.parent / record.PRUNED), {"epoch": 2})  # a search's pruner stopped it: done
    assert heads(load(copy)).loc["lstm_lr0.1_seed0", "status"] == "pruned"


def test_members_without_epochs_are_counted_planned_or_not(storage, tmp_path):
    """A member whose folder holds no row yet, and a member spec.json plans that has no folder:
    one row each with epoch <NA>, config as planned, in `load` and in `trial_overview`."""
    copy = tmp_path / "exp"
    shutil.copytree(storage / "exp", copy)
    spec = json.loads((copy / record.SPEC).read_text())
    spec["groups"].append([{"name": "gru_lr0.1_seed0", "model": "gru", "lr": 0.1, "seed": 0}])
    record.write_json(FS, str(copy / record.SPEC), spec)
    (copy / "members" / "lstm_lr0.1_seed1" / record.ROWS).unlink()
    part = load(copy)
    assert len(part) == 6 * EPOCHS + 1 + 2 - EPOCHS + 2
    for name in ("lstm_lr0.1_seed1", "gru_lr0.1_seed0"):
        rows = part[part.trial == name]
        assert len(rows) == 1 and rows["epoch"].isna().all() and rows["status"].iloc[0] == "stopped"
    planned = heads(part).loc["gru_lr0.1_seed0"]
    assert (planned["group"], planned["model"], planned["lr"], planned["epochs"]) == ("gru_lr0.1_seed0", "gru", 0.1, EPOCHS)
    overview = trial_overview(copy).set_index("trial")
    assert list(overview.columns) == ["group", "status", "epochs", "planned"] and len(overview) == 9
    assert overview.loc["gru_lr0.1_seed0"].tolist() == ["gru_lr0.1_seed0", "stopped", 0, EPOCHS]
    assert overview.loc[DIVERGED, ["status", "epochs"]].tolist() == ["diverged", 2]
    assert overview.loc["lstm_lr0.1_seed1", "epochs"] == 0
    assert best(part, metric="val_acc", per="model").set_index("model")["n_trials"].to_dict() == {"elman": 2, "lstm": 2}


def test_a_live_driver_makes_unfinished_members_running_or_pending(storage, tmp_path):
    copy = tmp_path / "exp"
    shutil.copytree(storage / "exp", copy)
    (copy / "members" / "lstm_lr0.1_seed1" / record.ROWS).unlink()
    (copy / "members" / ERRORED / record.ERROR).unlink()  # retried: the error is cleared while it runs
    record.write_driver(FS, str(copy), time.time())  # this process, alive
    statuses = trial_overview(copy).set_index("trial")["status"]
    assert (statuses["lstm_lr0.1_seed1"], statuses[ERRORED], statuses[DIVERGED]) == ("pending", "running", "diverged")
    driver = json.loads((copy / record.DRIVER).read_text())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    record.write_json(FS, str(copy / record.DRIVER), {**driver, "pid": int(dead)})  # a killed driver's file
    assert set(trial_overview(copy)["status"]) == {"finished", "diverged", "stopped"}


def test_aggregate_best_and_compare_on_the_grid(df):
    agg = aggregate(df, by=("model", "lr", "epoch"), metrics=["val_acc"])
    cell = agg[(agg.model == "elman") & (agg.lr == 0.3) & (agg.epoch == 2)].iloc[0]
    assert (cell["n"], cell["n_trials"], cell["n_diverged"]) == (1, 2, 1)
    table = best(df, metric="val_acc", per="model")
    assert table.set_index("model")["lr"].to_dict() == {"elman": 0.1, "lstm": 0.3}
    assert table.set_index("model").loc["lstm", "n_errored"] == 1
    result = compare(df, "lstm", "elman", metric="val_acc")
    assert result.n_a == 1 and result.n_b == 2  # lstm lr 0.3 lost its errored seed's epoch 3
    summary = summary_table(df)
    assert summary.set_index(["model", "lr"]).loc[("elman", 0.3), "n_diverged"] == 1


def test_confirmation_stage_loads_with_test_metrics(storage):
    confirm = load(storage / "exp-confirm")
    assert confirm["final"].all() and (confirm["status"] == "finished").all()
    assert confirm["test_acc"].tolist() == pytest.approx([0.80, 0.81])
    assert confirm["restore_from"].str.endswith("/x/state-3.pt").all() and "restore_from" in confirm.attrs["config_columns"]
    row = summary_table(confirm, by=["model", "lr"]).iloc[0]
    assert row["metric"] == "test_acc" and row["n"] == 2 and row["mean"] == pytest.approx(0.805)


def test_bad_paths_give_one_line_errors(storage, tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "notes").mkdir()
    cases = [
        (tmp_path / "missing", "does not exist"),
        (tmp_path / "file", "is a file, not an experiment folder"),
        (tmp_path / "notes", r"is not an experiment folder \(no spec.json and no members/ folder\)$"),
        (storage, "is not an experiment folder.*; it holds experiment folders: exp, exp-confirm$"),
    ]
    write_spec(tmp_path / "empty", grid_groups())
    cases.append((tmp_path / "empty", "is empty: 8 member"))
    for path, message in cases:
        with pytest.raises(ResultsError, match=message) as error:
            load(path)
        assert "\n" not in str(error.value)
    assert trial_overview(tmp_path / "empty")["status"].eq("stopped").all()  # the overview still answers


def test_the_specs_task_sets_the_defaults(storage, df, tmp_path):
    assert default_metric(df) == "val_acc" and default_per(df) == "model"
    copy = tmp_path / "exp"
    shutil.copytree(storage / "exp", copy)
    spec = json.loads((copy / record.SPEC).read_text())
    record.write_json(FS, str(copy / record.SPEC), {**spec, "task": "grammar"})
    as_grammar = load(copy)
    assert as_grammar.attrs["task"] == "grammar"
    assert default_metric(as_grammar) == "synth_acc@t1" and default_per(as_grammar) == "model"  # no dataset column
    (copy / record.SPEC).unlink()  # members/ alone still make an experiment; the task is inferred
    assert "task" not in load(copy).attrs and default_metric(load(copy)) == "val_acc"


def test_plots_are_written_and_readable(df, tmp_path):
    paths = learning_curves(df, tmp_path) + lr_grid(df, tmp_path) + temperature_curves(df, tmp_path)
    names = ("curves_val_acc", "curves_train_loss", "train_loss_and_val_acc", "lr_grid_val_acc_peak", "temperature_accuracy")
    assert sorted(p.name for p in paths) == sorted(f"{n}.{ext}" for n in names for ext in ("png", "svg"))
    for path in paths:
        if path.suffix == ".png":
            assert matplotlib.image.imread(path).shape[0] > 100
        else:
            assert "<svg" in path.read_text()[:500]


def test_tensorboard_runs_hold_mean_ci_n_and_hparams(df, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = export_tensorboard(df, tmp_path, metrics=["val_acc", "train_loss"])
    assert sorted(r.name for r in runs) == ["model=elman,lr=0.1", "model=elman,lr=0.3", "model=lstm,lr=0.1", "model=lstm,lr=0.3"]
    acc = EventAccumulator(str(tmp_path / "model=lstm,lr=0.1"))
    acc.Reload()
    agg = aggregate(df, by=("model", "lr", "epoch"), metrics=["val_acc"])
    want = agg[(agg.model == "lstm") & (agg.lr == 0.1)].sort_values("epoch")
    assert [e.step for e in acc.Scalars("val_acc/mean")] == [1, 2, 3]
    assert [e.value for e in acc.Scalars("val_acc/mean")] == pytest.approx(want["mean"].tolist(), rel=1e-6)
    assert [e.value for e in acc.Scalars("val_acc/ci_high")] == pytest.approx(want["ci_high"].tolist(), rel=1e-6)
    assert [e.value for e in acc.Scalars("val_acc/n")] == [2, 2, 2]
    assert "_hparams_/session_start_info" in acc.PluginTagToContent("hparams")


def test_cli_prints_tables_and_comparisons_and_exits_2_on_bad_input(storage, tmp_path, capsys):
    path = str(storage / "exp")
    exports = [str(tmp_path / "rows.parquet"), str(tmp_path / "rows.csv"), str(tmp_path / "report.md")]
    assert main([path, "--format", "markdown", *(a for e in exports for a in ("--export", e))]) == 0
    out = capsys.readouterr().out
    headline, title = out.split("\n\n")[:2]
    assert headline.startswith("Best: lstm (lr 0.3, peak epoch 3): val_acc 0.800, n = 1 (no spread or CI from one seed)")
    assert (
        headline.splitlines()[1]
        == "  no firm lead over elman (lr 0.1, peak epoch 3): P(X > Y) = 1.00, interval not reliable below n = 4"
    )
    assert title == "exp (imdb): 8 members: 6 finished, 1 diverged, 1 errored, trained in 4 trials"
    assert "| model | lr |" in out and "Comparisons (" in out
    assert len(pd.read_parquet(exports[0])) == len(pd.read_csv(exports[1])) == 21
    assert "Comparisons (" in Path(exports[2]).read_text()
    for argv, message in (
        ([path, "--metric", "nope"], "available metrics: train_loss, val_acc"),
        ([path, "--per", "x"], "no column 'x'"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("rnnbench-results: error: ") and message in err


def test_report_fits_120_columns_and_the_cli_lists_every_file_it_wrote(storage, df, tmp_path, capsys):
    for frame in (df, load(storage / "exp-confirm")):
        text = report(frame, by=["model", "lr"])
        assert max(map(len, text.splitlines())) <= 120, text
        for low, high in re.findall(r"\[(-?[\d.]+), (-?[\d.]+)\]", text):  # accuracy CIs
            assert 0 <= float(low) <= float(high) <= 1
    plots, tb, rows = tmp_path / "plots", tmp_path / "tb", tmp_path / "rows.csv"
    assert main([str(storage / "exp"), "--plot", str(plots), "--tensorboard", str(tb), "--export", str(rows)]) == 0
    printed, _, files = capsys.readouterr().out.partition("\nWrote:\n")
    assert max(map(len, printed.splitlines())) <= 120
    listed = {Path(line.strip()) for line in files.splitlines()}
    assert listed == {rows, tb, *plots.iterdir()} and all(p.exists() for p in listed)


def test_a_partial_experiment_is_reported_not_refused(tmp_path, capsys):
    """A killed IMDB experiment in which one model has no epoch yet: the report covers the model
    that has results and names what has none, with or without a driver still running it."""
    path = write_grid(tmp_path / "part", models=("lstm", "elman", "gru"), started=("elman",))
    (tmp_path / "part" / "members" / "lstm_lr0.1_seed0").mkdir()  # a folder, nothing written yet
    assert main([str(path), "--plot", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Best: elman (lr 0.1, peak epoch 3): val_acc 0.765 ± 0.007, n = 2, 95% CI [0.701, 0.829]\n\n")
    assert out.split("\n\n")[1].startswith("part (imdb): 12 members: 8 stopped, 3 finished, 1 diverged")
    said = " ".join(out.split())  # the line is wrapped to 120 columns
    assert (
        "no val_acc yet for model gru, lstm (left out of the tables); 8 of 12 members have no epoch yet: gru_lr0.1_seed0," in said
    )
    assert "gru_lr0.3_seed1 and 4 more." in said and "Best setting per model" in out and "Comparisons (" not in out
    assert "plots/curves_val_acc.png" in out  # the figures of what has results
    record.write_driver(FS, str(path), time.time())
    text = report(load(path))
    assert text.split("\n\n")[1].startswith("part (imdb): 12 members: 8 pending, 3 finished, 1 diverged") and "Per cell:" in text
    assert max(map(len, text.splitlines())) <= 120
    (path / record.DRIVER).unlink()
    for member in (path / "members").iterdir():  # every member diverged at its first epoch: no table at all
        if (member / record.ROWS).exists():
            row = {**metrics("elman", 0.1, 0, 1), "val_acc": math.nan, "train_loss": math.nan, "diverged": True}
            (member / record.ROWS).write_text(json.dumps(row))
    assert main([str(path)]) == 0
    assert "no val_acc yet for model elman, gru, lstm" in " ".join(capsys.readouterr().out.split())


def test_list_gives_one_line_per_experiment_with_its_state(storage, tmp_path, capsys):
    root = tmp_path / "storage"
    shutil.copytree(storage / "exp", root / "exp")  # ended, one member errored
    shutil.copytree(storage / "exp-confirm", root / "exp-confirm")  # finished
    write_grid(root / "live", started=("elman",))
    record.write_driver(FS, str(root / "live"), time.time())  # run by this (live) process
    write_grid(root / "killed", started=("elman",))
    (root / "killed" / "members" / "lstm_lr0.1_seed0").mkdir()  # its first attempt failed before member.json
    (root / "killed" / "members" / "lstm_lr0.1_seed0" / record.ERROR).write_text("boom\n")
    (root / "notes").mkdir()  # not an experiment
    stamp = time.time() - 7200
    for path in (root / "exp-confirm").rglob("*"):
        os.utime(path, (stamp, stamp))
    table = list_experiments(root).set_index("experiment")
    assert list(table.index) == ["exp", "exp-confirm", "killed", "live"]
    columns = ["task", "state", "done", "running", "errored", "total", "epochs", "planned"]
    assert table.loc["exp", columns].tolist() == ["imdb", "errored", 7, 0, 1, 8, 21, 24]
    assert table.loc["exp-confirm", columns].tolist() == ["imdb", "finished", 2, 0, 0, 2, 2, 8]
    assert table.loc["live", columns].tolist() == ["imdb", "running", 4, 0, 0, 8, 11, 24]  # lstm pending
    assert table.loc["killed", columns].tolist() == ["imdb", "stopped", 4, 0, 1, 8, 11, 24]
    assert abs(table.loc["exp-confirm", "last_change"].timestamp() - stamp) < 1
    size = sum(f.stat().st_size for f in (root / "exp").rglob("*") if f.is_file())
    assert table.loc["exp", "size_mb"] == pytest.approx(size / 1e6)

    assert main(["list", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("members = done") and len(lines) == 2 + 4 and max(map(len, lines)) <= 120
    assert lines[2].split()[:5] == ["exp", "imdb", "errored", "7/0/1/8", "21/24"]
    assert main(["list", str(root / "exp")]) == 2
    assert "it is an experiment itself" in capsys.readouterr().err


def test_module_list_and_the_console_script_run(storage):
    done = subprocess.run(
        [sys.executable, "-m", "rnnbench.results", "list", str(storage)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.splitlines()[2].split()[0] == "exp"
    script = Path(sys.executable).parent / "rnnbench-results"
    done = subprocess.run([str(script), str(storage / "exp")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Best setting per model" in done.stdout
