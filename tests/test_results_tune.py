"""The results layer on real Ray Tune 2.60 experiment folders: one small sweep (8 trials × 3
epochs, one errored, one diverged), its confirmation stage, a copy taken mid-run, and an
"interrupted" copy with a truncated result line and no experiment state."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from rnnbench.results import (
    STATUSES,
    ResultsError,
    ResultsWarning,
    aggregate,
    best,
    compare,
    export_tensorboard,
    learning_curves,
    load,
    lr_grid,
    summary_table,
    temperature_curves,
)
from rnnbench.results.cli import main

EPOCHS = 3


def _sweep(storage: Path) -> None:
    from ray import tune

    def trainable(config: dict) -> None:
        for epoch in range(1, EPOCHS + 1):
            if (config["model"], config["lr"], config["seed"], epoch) == ("lstm", 0.3, 1, 2):
                raise RuntimeError("boom")
            diverge = (config["model"], config["lr"], config["seed"], epoch) == ("elman", 0.3, 1, 2)
            base = 0.6 + 0.05 * epoch + (0.02 if config["model"] == "lstm" else 0) + 0.01 * config["seed"]
            metrics = {
                "epoch": epoch,
                "diverged": diverge,
                "train_loss": math.nan if diverge else 1.0 / epoch + config["lr"],
                "val_acc": math.nan if diverge else base + config["lr"] / 10,
                "synth_acc@t0.5": 0.9 - 0.1 * config["seed"],
                "synth_acc@t1": 0.7,
                "compl_acc@t0.5": 0.95,
                "compl_acc@t1": 0.8,
            }
            with tempfile.TemporaryDirectory() as d:
                Path(d, "state.json").write_text(json.dumps({"epoch": epoch}))
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
            if diverge:
                return

    def confirm(config: dict) -> None:
        tune.report({"epoch": EPOCHS + 1, "test_acc": 0.8 + 0.01 * config["seed"], "test_loss": 0.4, "diverged": False})

    name = lambda t: f"{t.config['model']}_lr{t.config['lr']}_seed{t.config['seed']}"  # noqa: E731
    sweep = {
        "model": tune.grid_search(["lstm", "elman"]),
        "lr": tune.grid_search([0.1, 0.3]),
        "seed": tune.grid_search([0, 1]),
        "epochs": EPOCHS,
        "data": {"max_len": 400},
    }
    tune.Tuner(
        trainable,
        param_space=sweep,
        run_config=tune.RunConfig(storage_path=str(storage), name="exp", verbose=0),
        tune_config=tune.TuneConfig(trial_dirname_creator=name),
    ).fit()
    final = {"model": "lstm", "lr": 0.3, "seed": tune.grid_search([0, 1]), "final": True}
    tune.Tuner(
        confirm,
        param_space=final,
        run_config=tune.RunConfig(storage_path=str(storage), name="exp-confirm", verbose=0),
        tune_config=tune.TuneConfig(trial_dirname_creator=name),
    ).fit()


@pytest.fixture(scope="session")
def tune_storage(tmp_path_factory) -> Path:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # bind 127.0.0.1 only
    import ray

    storage = tmp_path_factory.mktemp("tune")
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        _sweep(storage)
    finally:
        if started:
            ray.shutdown()
    return storage


@pytest.fixture(scope="session")
def df(tune_storage):
    return load(tune_storage / "exp")


def test_load_reads_every_epoch_config_and_status(df):
    statuses = df.drop_duplicates("trial").set_index("trial")["status"]
    assert statuses["lstm_lr0.3_seed1"] == "errored"
    assert statuses["elman_lr0.3_seed1"] == "diverged"
    assert (statuses.drop(["lstm_lr0.3_seed1", "elman_lr0.3_seed1"]) == "finished").all()
    assert len(statuses) == 8 and df["trial_id"].nunique() == 8
    assert len(df) == 6 * EPOCHS + 1 + 2  # errored reported 1 epoch, diverged 2
    assert {
        "model",
        "lr",
        "seed",
        "epochs",
        "data/max_len",
        "epoch",
        "val_acc",
        "train_loss",
        "synth_acc@t0.5",
        "training_iteration",
        "time_total_s",
    } <= set(df.columns)
    assert "config" not in df.columns
    assert df.loc[df.trial == "lstm_lr0.3_seed1", "error"].iloc[0] == "RuntimeError: boom"
    diverged = df[df.trial == "elman_lr0.3_seed1"].sort_values("epoch")
    assert diverged["diverged"].tolist() == [False, True] and math.isnan(diverged["train_loss"].iloc[-1])
    assert df.groupby("trial")["epoch"].max().max() == EPOCHS


def test_file_uri_reads_the_same(tune_storage, df):
    via_uri = load((tune_storage / "exp").as_uri())
    assert via_uri.drop(columns="experiment").equals(df.drop(columns="experiment"))


def test_aggregate_best_and_compare_on_the_sweep(df):
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


def test_confirmation_stage_loads_with_test_metrics(tune_storage):
    confirm = load(tune_storage / "exp-confirm")
    assert confirm["final"].all() and (confirm["status"] == "finished").all()
    assert confirm["test_acc"].tolist() == pytest.approx([0.80, 0.81])
    row = summary_table(confirm, by=["model", "lr"]).iloc[0]
    assert row["metric"] == "test_acc" and row["n"] == 2 and row["mean"] == pytest.approx(0.805)


def _mid_run_copy(exp: Path, copy: Path) -> Path:
    """What Ray 2.60 storage holds early in a run (seen when copying it mid-run): trial folders
    with params.json and checkpoints, an experiment state listing every trial as PENDING with no
    last result, and no result.json / progress.csv yet (the driver syncs them later).

    Made from the finished experiment rather than copied while Ray runs, so the test does not
    depend on when Ray happens to write which file (that race failed under load)."""
    shutil.copytree(exp, copy)
    for name in ("result.json", "progress.csv", "error.txt", "error.pkl"):
        for path in copy.glob(f"*/{name}"):
            path.unlink()
    for state_path in copy.glob("experiment_state-*.json"):
        state = json.loads(state_path.read_text())
        pending = []
        for trial_json, runtime_json in state["trial_data"]:
            trial, runtime = json.loads(trial_json), json.loads(runtime_json)
            trial["status"] = "PENDING"
            runtime["last_result"] = {}
            pending.append([json.dumps(trial), json.dumps(runtime)])
        state["trial_data"] = pending
        state_path.write_text(json.dumps(state))
    return copy


def test_copy_taken_mid_run_is_reported_empty_not_misread(tune_storage, tmp_path):
    copy = _mid_run_copy(tune_storage / "exp", tmp_path / "exp")
    assert len(list(copy.glob("*/params.json"))) == 8  # the trials are there, only unreported
    with pytest.raises(ResultsError, match="is empty: 8 trial.*syncs result.json"):
        load(copy)


def test_state_last_result_stands_in_for_a_missing_result_json(tune_storage, tmp_path):
    copy = tmp_path / "exp"
    shutil.copytree(tune_storage / "exp", copy)
    (copy / "lstm_lr0.1_seed1" / "result.json").unlink()
    (copy / "lstm_lr0.1_seed1" / "progress.csv").unlink()
    (copy / "elman_lr0.1_seed1" / "result.json").unlink()  # progress.csv is read instead
    part = load(copy)
    assert part.loc[part.trial == "elman_lr0.1_seed1", "epoch"].tolist() == [1, 2, 3]
    rows = part[part.trial == "lstm_lr0.1_seed1"]
    assert rows["epoch"].tolist() == [EPOCHS] and rows["status"].iloc[0] == "finished"
    assert set(part["status"]) <= set(STATUSES)


def test_interrupted_copy_without_state_and_with_a_truncated_line(tune_storage, tmp_path):
    copy = tmp_path / "exp"
    shutil.copytree(tune_storage / "exp", copy)
    for state in copy.glob("experiment_state-*.json"):
        state.unlink()
    result = copy / "lstm_lr0.1_seed1" / "result.json"
    text = result.read_text()
    result.write_text(text[: len(text) - 40])  # cut the last line mid-write
    with pytest.warns(ResultsWarning, match="truncated last line"):
        cut = load(copy)
    statuses = cut.drop_duplicates("trial").set_index("trial")["status"]
    assert statuses["lstm_lr0.1_seed1"] == "unknown"  # 2 of 3 epochs and no state: cannot tell
    assert statuses["lstm_lr0.3_seed1"] == "errored"  # from error.txt
    assert statuses["elman_lr0.3_seed1"] == "diverged"
    assert statuses["lstm_lr0.1_seed0"] == "finished"  # all `epochs` reported
    assert cut.loc[cut.trial == "lstm_lr0.1_seed1", "epoch"].max() == EPOCHS - 1


def test_bad_paths_give_one_line_errors(tune_storage, tmp_path):
    with pytest.raises(ResultsError, match="does not exist"):
        load(tmp_path / "missing")
    with pytest.raises(ResultsError, match="not a Ray Tune experiment folder.*holds experiment folders: exp, exp-confirm"):
        load(tune_storage)
    trial = tmp_path / "empty" / "lstm_lr0.1_seed0"
    trial.mkdir(parents=True)
    (trial / "params.json").write_text('{"model": "lstm"}')
    (trial / "result.json").write_text("")
    with pytest.raises(ResultsError, match="is empty: 1 trial"):
        load(tmp_path / "empty")


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
    root = EventAccumulator(str(tmp_path))
    root.Reload()
    assert "_hparams_/experiment" in root.PluginTagToContent("hparams")


def test_cli_prints_tables_and_comparisons_and_exits_2_on_bad_input(tune_storage, tmp_path, capsys):
    path = str(tune_storage / "exp")
    code = main(
        [
            path,
            "--format",
            "markdown",
            "--plot",
            str(tmp_path / "plots"),
            "--tensorboard",
            str(tmp_path / "tb"),
            "--export",
            str(tmp_path / "rows.parquet"),
            "--export",
            str(tmp_path / "rows.csv"),
            "--export",
            str(tmp_path / "report.md"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "| model | lr |" in out and "Comparisons (" in out and "lstm" in out
    assert (tmp_path / "plots" / "curves_val_acc.png").exists() and (tmp_path / "tb").is_dir()
    import pandas as pd

    assert len(pd.read_parquet(tmp_path / "rows.parquet")) == len(pd.read_csv(tmp_path / "rows.csv"))
    assert "Comparisons (" in (tmp_path / "report.md").read_text()
    assert main([path, "--metric", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "available metrics: train_loss, val_acc" in err


def test_module_list_and_the_console_script_run(tune_storage):
    done = subprocess.run(
        [sys.executable, "-m", "rnnbench.results", "list", str(tune_storage)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.splitlines()[2].split()[0] == "exp"
    script = Path(sys.executable).parent / "rnnbench-results"
    done = subprocess.run([str(script), str(tune_storage / "exp")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Best setting per model" in done.stdout


def test_load_through_an_fsspec_filesystem_matches_the_local_read(tune_storage, df):
    """A non-local store: the experiment copied into fsspec's in-memory filesystem, read through
    pyarrow's fsspec bridge, the way an s3fs or gcsfs filesystem would be passed in."""
    import fsspec
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    memory = fsspec.filesystem("memory")
    memory.put(str(tune_storage / "exp"), "/bucket/exp", recursive=True)
    remote = load("/bucket/exp", filesystem=PyFileSystem(FSSpecHandler(memory)))
    assert len(remote) == len(df)
    assert set(remote["trial"]) == set(df["trial"])
    local = df.set_index(["trial", "epoch"])["val_acc"].sort_index()
    assert remote.set_index(["trial", "epoch"])["val_acc"].sort_index().equals(local)
    assert (
        remote.drop_duplicates("trial").set_index("trial")["status"].sort_index()
        == df.drop_duplicates("trial").set_index("trial")["status"].sort_index()
    ).all()


# --- grouped trials: one Ray trial training several grid members together -----------------------


def _flat(row: dict, prefix: str = "") -> dict:
    """A result line flattened as Ray's CSV logger writes it: nested keys joined with "/"."""
    out = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _grouped_copy(exp: Path, out: Path, csv_only: tuple[str, ...] = ()) -> Path:
    """The fixture's experiment rewritten as grouped trials, in the on-disk format of a grouped
    trainable: each errored trial alone in its group (an error stops the whole group), the
    others grouped by model. A group's params.json holds the common config plus `members`
    (name and the fields where each differs); each result line holds Ray's keys, group-level
    seed means (to be ignored), and `members` with each still-running member's metrics. Groups
    named in `csv_only` keep only a progress.csv, flattened as Ray flattens it."""
    state_path = next(exp.glob("experiment_state-*.json"))
    state = json.loads(state_path.read_text())
    entries = {json.loads(t)["relative_logdir"]: (json.loads(t), json.loads(r)) for t, r in state["trial_data"]}
    groups: dict[str, list[str]] = {}
    for name, (entry, _) in sorted(entries.items()):
        alone = entry["status"] == "ERROR"
        groups.setdefault(f"group_{name}" if alone else f"group_{entry['config']['model']}", []).append(name)
    out.mkdir()
    trial_data = []
    for index, (group, names) in enumerate(groups.items()):
        configs = {n: json.loads((exp / n / "params.json").read_text()) for n in names}
        lines = {n: [json.loads(ln) for ln in (exp / n / "result.json").read_text().splitlines()] for n in names}
        first = configs[names[0]]
        common = {k: v for k, v in first.items() if all(c.get(k) == v for c in configs.values())}
        config = {**common, "members": [{"name": n, **{k: v for k, v in configs[n].items() if k not in common}} for n in names]}
        group_id = f"g{index:04d}"
        rows = []
        for epoch in range(1, max(len(v) for v in lines.values()) + 1):
            present = {n: v[epoch - 1] for n, v in lines.items() if len(v) >= epoch}
            ray_keys = {k: v for k, v in next(iter(present.values())).items() if k in RAY_KEYS}
            members = {n: {k: v for k, v in line.items() if k not in RAY_KEYS and k != "config"} for n, line in present.items()}
            accs = [m["val_acc"] for m in members.values()]
            rows.append(
                {
                    "epoch": epoch,
                    "val_acc": sum(accs) / len(accs),
                    "members": members,
                    **ray_keys,
                    "trial_id": group_id,
                    "config": config,
                }
            )
        folder = out / group
        folder.mkdir()
        (folder / "params.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        if group in csv_only:
            flat = [_flat({k: v for k, v in row.items() if k != "config"}) for row in rows]
            with open(folder / "progress.csv", "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(flat[0]))  # Ray: the first line's keys
                writer.writeheader()
                writer.writerows(flat)
        else:
            (folder / "result.json").write_text("".join(json.dumps(row) + "\n" for row in rows))
        for name in names:
            if (exp / name / "error.txt").exists():
                shutil.copy(exp / name / "error.txt", folder / "error.txt")
        entry, runtime = entries[names[0]]
        statuses = {entries[n][0]["status"] for n in names}
        entry = {
            **entry,
            "trial_id": group_id,
            "relative_logdir": group,
            "config": config,
            "status": "ERROR" if "ERROR" in statuses else "TERMINATED",
        }
        trial_data.append([json.dumps(entry), json.dumps({**runtime, "last_result": rows[-1]})])
    (out / state_path.name).write_text(json.dumps({**state, "trial_data": trial_data}))
    return out


RAY_KEYS = {
    "timestamp",
    "checkpoint_dir_name",
    "should_checkpoint",
    "done",
    "training_iteration",
    "trial_id",
    "date",
    "time_this_iter_s",
    "time_total_s",
    "pid",
    "hostname",
    "node_ip",
    "time_since_restore",
    "iterations_since_restore",
    "experiment_tag",
}


def _same_up_to_groups(grouped, df) -> None:
    """Equal frames, except the columns that name the Ray trial and its bookkeeping."""
    from rnnbench.results.columns import RAY_COLUMNS

    drop = ["group", "trial_id", *[c for c in RAY_COLUMNS if c in df.columns]]
    a = grouped.drop(columns=[c for c in drop if c in grouped]).sort_values(["trial", "epoch"]).reset_index(drop=True)
    b = df.drop(columns=drop).sort_values(["trial", "epoch"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert grouped.attrs["config_columns"] == df.attrs["config_columns"]
    assert grouped.attrs["metric_columns"] == df.attrs["metric_columns"]


@pytest.fixture(scope="session")
def grouped_exp(tune_storage, tmp_path_factory) -> Path:
    return _grouped_copy(tune_storage / "exp", tmp_path_factory.mktemp("grouped") / "exp")


def test_grouped_trials_load_as_one_trial_per_member(grouped_exp, df):
    grouped = load(grouped_exp)
    _same_up_to_groups(grouped, df)
    heads = grouped.drop_duplicates("trial").set_index("trial")
    assert heads.loc["elman_lr0.3_seed1", "group"] == "group_elman"
    assert heads.loc["elman_lr0.3_seed1", "trial_id"] == "g0000/elman_lr0.3_seed1"
    assert heads.loc["lstm_lr0.3_seed1", "group"] == "group_lstm_lr0.3_seed1"
    assert heads["group"].nunique() == 3 and "members" not in grouped.columns
    ungrouped = df.drop_duplicates("trial")
    assert (ungrouped["group"] == ungrouped["trial"]).all()


def test_grouped_trials_read_from_progress_csv_alone(tune_storage, df, tmp_path):
    copy = _grouped_copy(tune_storage / "exp", tmp_path / "exp", csv_only=("group_elman", "group_lstm"))
    assert not (copy / "group_elman" / "result.json").exists()
    assert "members/elman_lr0.3_seed1/val_acc" in (copy / "group_elman" / "progress.csv").read_text()
    _same_up_to_groups(load(copy), df)


def test_a_grouped_trials_state_last_result_stands_in_for_its_missing_files(tune_storage, tmp_path):
    copy = _grouped_copy(tune_storage / "exp", tmp_path / "exp")
    (copy / "group_lstm" / "result.json").unlink()  # what storage holds before the driver syncs it
    rows = load(copy).query("group == 'group_lstm'")
    assert sorted(rows["trial"]) == ["lstm_lr0.1_seed0", "lstm_lr0.1_seed1", "lstm_lr0.3_seed0"]
    assert set(rows["epoch"]) == {EPOCHS} and set(rows["status"]) == {"finished"}
    assert rows.set_index("trial").loc["lstm_lr0.3_seed0", "val_acc"] == pytest.approx(0.80)


def test_everything_downstream_reads_grouped_trials_as_ungrouped(grouped_exp, df, tmp_path):
    grouped = load(grouped_exp)
    pd.testing.assert_frame_equal(best(grouped), best(df))
    pd.testing.assert_frame_equal(summary_table(grouped), summary_table(df))
    pd.testing.assert_frame_equal(aggregate(grouped, by=("model", "lr", "epoch")), aggregate(df, by=("model", "lr", "epoch")))
    assert compare(grouped, "lstm", "elman").sentence() == compare(df, "lstm", "elman").sentence()
    runs = export_tensorboard(grouped, tmp_path / "tb-grouped")
    assert [r.name for r in runs] == [r.name for r in export_tensorboard(df, tmp_path / "tb")]
    plots = learning_curves(grouped, tmp_path / "grouped") + lr_grid(grouped, tmp_path / "grouped")
    assert [p.name for p in plots] == [p.name for p in learning_curves(df, tmp_path) + lr_grid(df, tmp_path)]


def test_the_sweeps_spec_file_sets_the_task_and_its_defaults(tune_storage, df, tmp_path):
    from rnnbench.results.columns import default_metric, default_per

    assert "task" not in df.attrs and default_metric(df) == "val_acc"  # inferred: imdb's objective
    copy = tmp_path / "exp"
    shutil.copytree(tune_storage / "exp", copy)
    (copy / "rnnbench_sweep.json").write_text(json.dumps({"task": "grammar", "base": {}, "axes": {}}))
    as_grammar = load(copy)
    assert as_grammar.attrs["task"] == "grammar"
    assert default_metric(as_grammar) == "synth_acc@t1" and default_per(as_grammar) == "model"  # no dataset column


def test_report_fits_120_columns_and_the_cli_lists_every_file_it_wrote(tune_storage, grouped_exp, tmp_path, capsys):
    from rnnbench.results.cli import report

    for df in (load(tune_storage / "exp"), load(grouped_exp), load(tune_storage / "exp-confirm")):
        text = report(df, by=["model", "lr"])
        assert max(map(len, text.splitlines())) <= 120, text
        for low, high in re.findall(r"\[(-?[\d.]+), (-?[\d.]+)\]", text):  # accuracy CIs
            assert 0 <= float(low) <= float(high) <= 1
    plots, tb, rows = tmp_path / "plots", tmp_path / "tb", tmp_path / "rows.csv"
    assert main([str(tune_storage / "exp"), "--plot", str(plots), "--tensorboard", str(tb), "--export", str(rows)]) == 0
    out = capsys.readouterr().out
    printed, _, files = out.partition("\nWrote:\n")
    assert max(map(len, printed.splitlines())) <= 120
    listed = {Path(line.strip()) for line in files.splitlines()}
    assert listed == {rows, tb, *plots.iterdir()} and all(p.exists() for p in listed)


def test_list_gives_one_line_per_experiment_folder(tune_storage, tmp_path, capsys):
    from rnnbench.results.listing import list_experiments

    storage = tmp_path / "storage"
    shutil.copytree(tune_storage / "exp", storage / "exp")
    shutil.copytree(tune_storage / "exp-confirm", storage / "exp-confirm")
    (storage / "exp-confirm" / "rnnbench_sweep.json").write_text(json.dumps({"task": "imdb"}))
    _grouped_copy(tune_storage / "exp", storage / "grouped")
    _mid_run_copy(tune_storage / "exp", storage / "midrun")  # every trial pending, nothing reported
    (storage / "notes").mkdir()  # not an experiment
    stamp = time.time() - 7200
    for path in (storage / "exp-confirm").rglob("*"):
        os.utime(path, (stamp, stamp))
    table = list_experiments(storage).set_index("experiment")
    assert list(table.index) == ["exp", "exp-confirm", "grouped", "midrun"]
    columns = ["task", "state", "done", "running", "errored", "total", "epochs"]
    assert table.loc["exp", columns].tolist() == ["", "errored", 7, 0, 1, 8, 21]
    assert table.loc["grouped", columns].tolist() == ["", "errored", 7, 0, 1, 8, 21]  # members, not Ray trials
    assert table.loc["exp-confirm", columns].tolist() == ["imdb", "finished", 2, 0, 0, 2, 2]
    assert table.loc["midrun", columns].tolist() == ["", "running", 0, 0, 0, 8, 0]  # files fresh: still running
    assert table.loc["exp", "planned"] == 24 and math.isnan(table.loc["exp-confirm", "planned"])
    assert abs(table.loc["exp-confirm", "last_change"].timestamp() - stamp) < 1
    size = sum(f.stat().st_size for f in (storage / "exp").rglob("*") if f.is_file())
    assert table.loc["exp", "size_mb"] == pytest.approx(size / 1e6)
    later = list_experiments(storage, now=time.time() + 3600).set_index("experiment")
    assert later.loc["midrun", "state"] == "interrupted"

    assert main(["list", str(storage)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("trials = done") and len(lines) == 2 + 4 and max(map(len, lines)) <= 120
    assert lines[2].split()[:4] == ["exp", "-", "errored", "7/0/1/8"]
    assert main(["list", str(tune_storage / "exp")]) == 2
    assert "it is an experiment itself" in capsys.readouterr().err
