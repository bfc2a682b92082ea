"""The search's Optuna study, kept in Optuna's own journal storage in the experiment folder, and
the Tune searcher that asks it for configurations and tells it their scores."""

from __future__ import annotations

import os
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from ray.tune.search import Searcher

from rnnbench import record
from rnnbench.record import STUDY
from rnnbench.sweep.members import MEMBERS, NAME, SCORE

STUDY_NAME = "search"
optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what the search does


def configuration_name(number: int, params: dict[str, Any]) -> str:
    """`c003_lr0.0123`: the Optuna trial number (unique) and the values (readable)."""
    return "_".join([f"c{number:03d}", *(f"{k}{v:.3g}" for k, v in params.items())])


def configuration(trial: Any) -> str:
    """A configuration's Tune trial name: its members' names without the seed."""
    return trial.config[MEMBERS][0][NAME].rsplit("_seed", 1)[0]


def journal(path: str | os.PathLike) -> optuna.storages.JournalStorage:
    """The Optuna storage of the search at `path` (a local or mounted folder)."""
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(f"{path}/{STUDY}"))


def open_study(path: str, spec: dict[str, Any], mode: str) -> optuna.Study:
    """The search's Optuna study (created on first use); `optuna.load_study(study_name="search",
    storage=journal(path))` opens it from anywhere."""
    sampler = (
        optuna.samplers.RandomSampler(seed=spec["sampler_seed"])
        if spec["sampler"] == "random"
        else optuna.samplers.TPESampler(seed=spec["sampler_seed"], n_startup_trials=spec["startup_trials"])
    )
    direction = "maximize" if mode == "max" else "minimize"
    return optuna.create_study(
        study_name=STUDY_NAME, storage=journal(path), direction=direction, sampler=sampler, load_if_exists=True
    )


class StudySearcher(Searcher):
    """Tune's side of the Optuna study: each configuration Optuna asks for becomes one trial that
    trains `num_seeds` seeds as members; its score (the seed-mean by `how`) is told back.

    On a resumed search the configurations the study still holds as running (a killed driver's)
    are handed out first, under the same names, so their members continue from their own states."""

    def __init__(self, path: str, spec: dict[str, Any], mode: str):
        super().__init__(metric=SCORE, mode=mode)
        self.path, self.spec = path, spec
        self.study: Any = None
        self.asked: dict[str, tuple[int, list[str]]] = {}  # Tune trial id -> (Optuna trial number, member names)
        self.again: list[Any] = []

    def distributions(self) -> dict[str, Any]:
        low, high = self.spec["lr_range"]
        space: dict[str, Any] = {"lr": FloatDistribution(low, high, log=True)}
        if self.spec["batch_sizes"]:
            space["batch_size"] = CategoricalDistribution(self.spec["batch_sizes"])
        if self.spec["hidden_dims"]:
            space["hidden_dim"] = CategoricalDistribution(self.spec["hidden_dims"])
        return space

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.study is None:  # opened on first use, in the driver
            self.study = open_study(self.path, self.spec, self.mode)
            self.again = [t for t in self.study.trials if t.state == optuna.trial.TrialState.RUNNING]
        if self.again:
            number, params = self.again[0].number, self.again.pop(0).params
        elif len(self.study.trials) < self.spec["budget"]:
            trial = self.study.ask(self.distributions())
            number, params = trial.number, trial.params
        else:
            return Searcher.FINISHED
        prefix = configuration_name(number, params)
        members = [{NAME: f"{prefix}_seed{s}", **params, "seed": s} for s in range(self.spec["num_seeds"])]
        self.asked[trial_id] = (number, [m[NAME] for m in members])
        return {MEMBERS: members}

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the study lives in its journal, written by every ask and tell."""

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore: a resumed search opens the journal (see `suggest`)."""

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        """A configuration that ended (finished or stopped by the pruner) is told its score, and
        its members that the pruner stopped are marked so in the record (done, not unfinished);
        one that errored or hit a storage fault stays running in the study, so --resume retries it."""
        number, names = self.asked.pop(trial_id, (None, []))
        if number is None or error or not result or SCORE not in result:
            return
        fs, root = record.open_fs(self.path)
        for name in names:
            folder = record.member_folder(root, name)
            if not record.is_done(record.read_rows(fs, folder), self.spec["base"]["epochs"]):
                record.write_json(fs, f"{folder}/{record.PRUNED}", {"epoch": result.get("epoch")})
        self.study.tell(number, result[SCORE])


def study_values(path: str | os.PathLike) -> dict[str, float]:
    """Optuna's value of each completed configuration, by its trial name (the `group` column of
    `results.load(path)`), from the study in the experiment's journal."""
    study = optuna.load_study(study_name=STUDY_NAME, storage=journal(path))
    return {configuration_name(t.number, t.params): t.value for t in study.trials if t.value is not None}
