"""Tune trainables: they adapt the plain loops to Ray Tune and nothing more. A config dict comes
in; one result with a checkpoint goes out per epoch; after a crash the trial resumes from
`tune.get_checkpoint()`."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from rnnbench.train.autoregressor import GrammarConfig, GrammarRun
from rnnbench.train.classifier import ClassifierConfig, ClassifierRun
from rnnbench.train.common import load_checkpoint

STATE_FILE = "state.pt"


def config_of(cls: type, config: dict[str, Any]) -> Any:
    """The loop's dataclass from a trial's config dict (Ray may add keys of its own)."""
    names = {field.name for field in dataclasses.fields(cls)}
    return cls(**{key: value for key, value in config.items() if key in names})


def use_trial_resources() -> None:
    """One torch thread per CPU the trial was given, or trials packed on a node oversubscribe it."""
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))


def run_and_report(run: Any) -> None:
    """Resume from Tune's checkpoint if there is one, then train and report every epoch with a
    checkpoint holding everything the next epoch needs (model, optimizer, RNG, epoch)."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            run.load_state_dict(load_checkpoint(Path(folder) / STATE_FILE))
    for metrics in run.epochs():
        with tempfile.TemporaryDirectory() as folder:
            run.save(Path(folder) / STATE_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def train_classifier(config: dict[str, Any], data: Any = None) -> None:
    """Tune trainable for one IMDB classifier trial; `data` arrives through the object store.

    With `restore_from` in the config (the confirmation stage), training continues from that
    checkpoint of an earlier experiment, with this config's split, lr and epoch count."""
    use_trial_resources()
    classifier_config = config_of(ClassifierConfig, config)
    if config.get("restore_from") and tune.get_checkpoint() is None:
        with tune.Checkpoint(config["restore_from"]).as_directory() as folder:
            run = ClassifierRun.restore(Path(folder) / STATE_FILE, classifier_config, data)
    else:
        run = ClassifierRun(classifier_config, data)
    run_and_report(run)


def train_grammar(config: dict[str, Any], data: Any = None) -> None:
    """Tune trainable for one grammar trial. Each seed draws its own words (cheap, and part of
    the seed-to-seed variation a sweep measures), so nothing comes through the object store."""
    use_trial_resources()
    run_and_report(GrammarRun(config_of(GrammarConfig, config)))
