"""The two experiment kinds as sweep Tasks: IMDB classifiers and grammar language models.

Each says which loop and config a trial runs, which grid axes its script offers, how data is
loaded once for all trials, and what summary closes the run."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pyarrow.fs
from ray import tune

from rnnbench import metrics as M
from rnnbench import results
from rnnbench.data.imdb import ImdbData
from rnnbench.results.cli import report
from rnnbench.results.columns import default_metric, default_per
from rnnbench.sweep.grid import Task, run_grid, trial_namer
from rnnbench.sweep.runtime import SweepError, experiment_exists, filesystem, read_spec, start_ray, write_spec
from rnnbench.sweep.trainables import STATE_FILE, train_classifier, train_grammar
from rnnbench.train.autoregressor import GrammarConfig
from rnnbench.train.classifier import ClassifierConfig, load_data
from rnnbench.train.common import load_checkpoint

CONFIRM_EPOCHS = 5


def summarize(path: str, metrics: tuple[str, ...] = ()) -> None:
    """The closing report, the same as `python -m rnnbench.results PATH`: per cell (model, lr),
    best and final accuracy over seeds (mean ± std, 95% CI, n, diverged), then the best lr per
    model and how the models compare."""
    df = results.load(path)
    for metric in metrics or (default_metric(df),):
        print(report(df, metric=metric, per=default_per(df)), end="\n\n")


# --- IMDB --------------------------------------------------------------------------------------


def load_imdb_data(base: ClassifierConfig, axes: dict[str, list]) -> ImdbData:
    """Tokenized once in the driver; Ray ships the arrays to every trial through its object store."""
    return load_data(base)


def _finished_trials(df: Any, path: str) -> Any:
    unfinished = df.loc[~df["status"].isin(["finished", "diverged"]), "trial"].unique()
    if len(unfinished):
        raise SweepError(
            f"the first stage at {path} is not finished ({len(unfinished)} trials are not, e.g. {unfinished[0]}); "
            "complete it with --resume first"
        )
    return df


def confirm_imdb(path: str, args: Any) -> None:
    """The study's confirmation stage: for each model take the lr with the best mean final
    validation accuracy across seeds, and continue every seed's last checkpoint for 5 more
    epochs on the official train/test split, as the experiment <name>-confirm."""
    if not experiment_exists(path):
        raise SweepError(f"no first stage at {path} to confirm; run the grid first (same --storage and --name)")
    spec = read_spec(path)
    df = _finished_trials(results.load(path), path)
    table = results.best(df, metric=M.VAL_ACC, per="model", how="final")
    chosen = df[df.set_index(["model", "lr"]).index.isin(list(zip(table["model"], table["lr"])))]
    trials = chosen.drop_duplicates("trial")
    restore = {_last_checkpoint(path, row.trial): {"model": row.model, "lr": float(row.lr), "seed": int(row.seed)}
               for row in trials.itertuples()}
    base = ClassifierConfig(**spec["base"])
    confirm_base = dataclasses.replace(base, final=True, epochs=base.epochs + CONFIRM_EPOCHS)
    with tune.Checkpoint(next(iter(restore))).as_directory() as folder:  # fetched if on remote storage
        vocab = tuple(load_checkpoint(os.path.join(folder, STATE_FILE))["vocab"])
    data = load_data(confirm_base, vocab=vocab)
    param_space = {
        **dataclasses.asdict(confirm_base),
        "parent_experiment": path,
        "restore_from": tune.grid_search(sorted(restore)),
        **{key: tune.sample_from(_lookup(restore, key)) for key in ("model", "lr", "seed")},
    }
    name = os.path.basename(path.rstrip("/")) + "-confirm"
    storage = path.rstrip("/").rsplit("/", 1)[0]
    confirm_path = f"{storage}/{name}"
    resume = args.resume and experiment_exists(confirm_path)
    if experiment_exists(confirm_path) and not resume:
        raise SweepError(f"confirmation experiment {confirm_path} already exists; pass --resume to continue it")
    start_ray(args.address, args.cpus_per_trial, args.gpus_per_trial)
    if not resume:
        write_spec(confirm_path, {"task": "imdb", "base": dataclasses.asdict(confirm_base), "axes": {}, "parent": path})
    print(f"confirming {len(restore)} trials ({', '.join(f'{r.model} lr {r.lr:g}' for r in table.itertuples())}) in {confirm_path}")
    run_grid(
        train_classifier, param_space, name=name, storage=storage, namer=_parent_trial_name, metric=M.TEST_ACC,
        epochs=CONFIRM_EPOCHS, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent, resume=resume, data=data,
    )
    summarize(confirm_path)


def _lookup(restore: dict[str, dict[str, Any]], key: str) -> Any:
    """The model, lr or seed of the first-stage trial whose checkpoint a confirm trial continues."""
    return lambda config: restore[config["restore_from"]][key]


def _parent_trial_name(trial: Any) -> str:
    """A confirmation trial is named after the first-stage trial it continues. (Its model, lr and
    seed are still placeholders when Tune names it, so they cannot be read here.)"""
    return trial.config["restore_from"].rstrip("/").split("/")[-2]


def _last_checkpoint(path: str, trial: str) -> str:
    """The newest checkpoint folder of a trial (only the last is kept), as a path or URI."""
    fs, folder = filesystem(f"{path}/{trial}")
    found = sorted(
        info.base_name for info in fs.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True))
        if info.base_name.startswith("checkpoint_")
    )
    if not found:
        raise SweepError(f"trial {trial} of {path} has no checkpoint to continue; rerun the first stage with --resume")
    return f"{path}/{trial}/{found[-1]}"


IMDB = Task(
    name="imdb",
    config_cls=ClassifierConfig,
    trainable=train_classifier,
    axes={"models": ("model", str), "lrs": ("lr", float), "seeds": ("seed", int)},
    namer=trial_namer(("model", "lr", "seed")),
    metric=M.VAL_ACC,
    load_data=load_imdb_data,
    summarize=summarize,
    confirm=confirm_imdb,
)


# --- grammars ----------------------------------------------------------------------------------


GRAMMAR = Task(
    name="grammar",
    config_cls=GrammarConfig,
    trainable=train_grammar,
    axes={"datasets": ("dataset", str), "lrs": ("lr", float), "seeds": ("seed", int)},
    namer=trial_namer(("dataset", "lr", "seed")),
    metric=M.synth_acc(0.0),
    load_data=lambda base, axes: None,
    summarize=lambda path: summarize(path, (M.synth_acc(0.25), M.synth_acc(1.0))),
)
