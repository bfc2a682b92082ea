"""An Optuna study whose every trial is one configuration evaluated on S seeds.

Optuna's model is one trial = one objective run. Here one Optuna trial stands for S Ray trials
(the seeds) that run in parallel, so this module keeps the bookkeeping in the study itself:
each seed's per-epoch curve is a user attribute of the Optuna trial; once every seed has reached
an epoch, the seed-mean is reported as that epoch's intermediate value (so the pruner judges the
mean, never one lucky or unlucky seed); once every seed has finished, the study is told the
seed-mean score, with its std and the per-seed values as user attributes. Keeping it all in the
storage (SQLite next to the Ray experiment) means a crashed driver loses nothing, and
`optuna.load_study(...).trials_dataframe()` shows the whole search. Knows nothing of Ray.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from rnnbench.errors import ConfigError

STUDY_FILE = "optuna.db"
SPEC_ATTR = "rnnbench_search"  # study user attribute: what the search is, checked on --resume
BUDGET_ATTR = "budget"  # study user attribute: configurations the study may hold in all
DEADLINE_ATTR = "deadline"  # study user attribute: no new configuration after this Unix time
SEED_PREFIX = "seed_"  # trial user attribute seed_<s>: that seed's metric, one value per epoch
DONE_PREFIX = "done_"  # trial user attribute done_<s>: that seed's Ray trial has ended


@dataclass(frozen=True)
class SearchSpace:
    """What Optuna varies: lr log-uniformly in [lr_low, lr_high]; batch size and hidden size from
    lists of choices, or fixed by the base config when None."""

    lr_low: float = 1e-3
    lr_high: float = 3.0
    batch_sizes: tuple[int, ...] | None = None
    hidden_dims: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.lr_low <= 0:
            raise ConfigError(f"--lr-range must be > 0 for a log-uniform search, got low {self.lr_low:g}")
        if self.lr_low > self.lr_high:
            raise ConfigError(f"--lr-range is inverted ({self.lr_low:g} > {self.lr_high:g}); give LOW HIGH")
        if self.lr_low == self.lr_high:
            raise ConfigError(f"--lr-range is empty ({self.lr_low:g} to {self.lr_high:g}); give LOW < HIGH")
        for flag, choices in (("batch-sizes", self.batch_sizes), ("hidden-dims", self.hidden_dims)):
            if choices is not None and (not choices or min(choices) < 1):
                raise ConfigError(f"--{flag} needs one or more positive integers, got {list(choices)}")

    def distributions(self) -> dict[str, BaseDistribution]:
        """Optuna distributions keyed by the config field they set."""
        out: dict[str, BaseDistribution] = {"lr": FloatDistribution(self.lr_low, self.lr_high, log=True)}
        if self.batch_sizes:
            out["batch_size"] = CategoricalDistribution(sorted(set(self.batch_sizes)))
        if self.hidden_dims:
            out["hidden_dim"] = CategoricalDistribution(sorted(set(self.hidden_dims)))
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SearchSpace":
        tuples = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**tuples)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def storage_url(experiment: str | Path) -> str:
    """SQLite file inside the Ray experiment folder, so the two travel together."""
    return f"sqlite:///{Path(experiment) / STUDY_FILE}"


def sampler_for(kind: str, seed: int, startup: int) -> optuna.samplers.BaseSampler:
    """TPE (random for the first `startup` configurations) or plain random search, seeded."""
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"unknown sampler {kind!r}; use tpe or random")


def pruner_for(kind: str, startup: int) -> optuna.pruners.BasePruner:
    """Median rule on the seed-mean curve once `startup` configurations completed, or none."""
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {kind!r}; use median or none")


class SeedStudy:
    """One Optuna study of S-seed configurations. Picklable: Ray pickles the searcher and the
    scheduler that hold one, so only the storage address and settings are kept, and the study
    is reopened on first use."""

    def __init__(self, url: str, name: str, num_seeds: int, direction: str, how: str, sampler: dict[str, Any], pruner: str):
        self.url, self.name, self.num_seeds, self.direction, self.how = url, name, num_seeds, direction, how
        self.sampler, self.pruner = sampler, pruner
        self._study: optuna.Study | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_study": None}

    @property
    def study(self) -> optuna.Study:
        """The study, opened with a sampler seeded from the sampler seed plus the configurations
        already in the study: reproducible, yet a resumed search does not replay its first draws."""
        if self._study is None:
            done = len(optuna.load_study(study_name=self.name, storage=self.url).get_trials(deepcopy=False))
            sampler = sampler_for(self.sampler["kind"], self.sampler["seed"] + done, self.sampler["startup"])
            self._study = optuna.load_study(
                study_name=self.name, storage=self.url, sampler=sampler, pruner=pruner_for(self.pruner, self.sampler["startup"])
            )
        return self._study

    # --- handing out configurations ---

    def can_ask(self, now: float) -> bool:
        """Whether the budget (configurations in the study, all sessions together) and the
        deadline still allow a new configuration."""
        attrs = self.study.user_attrs
        deadline = attrs.get(DEADLINE_ATTR)
        return len(self.study.get_trials(deepcopy=False)) < attrs[BUDGET_ATTR] and (deadline is None or now < deadline)

    def ask(self, space: SearchSpace) -> tuple[int, dict[str, Any]]:
        trial = self.study.ask(space.distributions())
        return trial.number, dict(trial.params)

    def running(self) -> dict[int, dict[str, Any]]:
        """Configurations asked but not yet told: number → params."""
        return {t.number: dict(t.params) for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}

    # --- results of the seeds ---

    def record(self, number: int, seed: int, epoch: int, value: float) -> bool:
        """Store one seed's value at one epoch; report the seed-mean of every epoch all seeds have
        reached; return False once the configuration is pruned or already decided (stop the seed)."""
        trial = self._live(number)
        if trial is None:
            return False
        curve = list(trial.user_attrs.get(f"{SEED_PREFIX}{seed}", []))
        curve[epoch - 1 :] = [float(value)]
        trial.set_user_attr(f"{SEED_PREFIX}{seed}", curve)
        return self._report(trial)

    def finish_seed(self, number: int, seed: int) -> None:
        """A seed's Ray trial ended (all epochs, or diverged early). Its last value stands for the
        epochs it did not run; with every seed ended, the configuration is told its score."""
        trial = self._live(number)
        if trial is None:
            return
        trial.set_user_attr(f"{DONE_PREFIX}{seed}", True)
        if self._report(trial) and all(trial.user_attrs.get(f"{DONE_PREFIX}{s}") for s in range(self.num_seeds)):
            self._tell(trial)

    def fail(self, number: int) -> None:
        """A seed errored: the configuration has no honest seed-mean, so it is told FAIL."""
        self.study.tell(number, state=TrialState.FAIL, skip_if_finished=True)

    def _live(self, number: int) -> optuna.Trial | None:
        frozen = self.study.get_trials(deepcopy=False)[number]
        if frozen.state != TrialState.RUNNING:
            return None
        return optuna.Trial(self.study, frozen._trial_id)  # Optuna offers no public number → Trial

    def _curves(self, trial: optuna.Trial) -> list[list[float]] | None:
        """Every seed's curve, a finished seed's padded with its last value; None until each
        seed has reported at least once."""
        attrs = trial.user_attrs
        curves = [attrs.get(f"{SEED_PREFIX}{s}") for s in range(self.num_seeds)]
        if not all(curves):
            return None
        longest = max(len(c) for c in curves)
        return [c + c[-1:] * (longest - len(c)) if attrs.get(f"{DONE_PREFIX}{s}") else c for s, c in enumerate(curves)]

    def _report(self, trial: optuna.Trial) -> bool:
        """Report seed-means not yet reported; True unless the pruner stops the configuration."""
        curves = self._curves(trial)
        if curves is None:
            return True
        reported = set(trial.study.get_trials(deepcopy=False)[trial.number].intermediate_values)
        for epoch in range(1, min(len(c) for c in curves) + 1):
            if epoch in reported:
                continue
            trial.report(statistics.fmean(c[epoch - 1] for c in curves), epoch)
            if trial.should_prune():
                self.study.tell(trial, state=TrialState.PRUNED)
                return False
        return True

    def _tell(self, trial: optuna.Trial) -> None:
        """Score = the seed-mean curve's best epoch ("peak") or last epoch ("final"), the rule
        rnnbench.results.best uses; std and the seeds' values at that epoch go along."""
        curves = self._curves(trial)
        means = [statistics.fmean(values) for values in zip(*curves)]
        sign = 1 if self.direction == "maximize" else -1
        finite = [e for e, v in enumerate(means) if math.isfinite(v)]
        if self.how == "final" or not finite:
            epoch = len(means) - 1
        else:
            epoch = max(finite, key=lambda e: sign * means[e])
        values = [c[epoch] for c in curves]
        trial.set_user_attr("epoch", epoch + 1)
        trial.set_user_attr("std", statistics.stdev(values) if len(values) > 1 else float("nan"))
        trial.set_user_attr("seed_values", values)
        if math.isfinite(means[epoch]):
            self.study.tell(trial, means[epoch])
        else:
            self.study.tell(trial, state=TrialState.FAIL)  # a diverged loss has no mean to compare


def create_study(url: str, name: str, direction: str, spec: dict[str, Any]) -> None:
    """A new study that records what it searches (SPEC_ATTR), so --resume can check it."""
    study = optuna.create_study(storage=url, study_name=name, direction=direction)
    study.set_user_attr(SPEC_ATTR, spec)


def stored_spec(url: str, name: str) -> dict[str, Any]:
    """The search an existing study was made for; ConfigError if it is not one of ours."""
    try:
        study = optuna.load_study(study_name=name, storage=url)
    except KeyError:
        raise ConfigError(f"{url} holds no study named {name!r}; it was not made by this search (pass another --name)") from None
    spec = study.user_attrs.get(SPEC_ATTR)
    if not isinstance(spec, dict):
        raise ConfigError(f"the study {name!r} in {url} was not made by rnnbench's search (no {SPEC_ATTR} attribute); pass another --name")
    return spec


def set_limits(url: str, name: str, budget: int, deadline: float | None) -> None:
    """This session's limits: `budget` configurations in the study in all, none new after `deadline`."""
    study = optuna.load_study(study_name=name, storage=url)
    study.set_user_attr(BUDGET_ATTR, budget)
    study.set_user_attr(DEADLINE_ATTR, deadline)


def stored_budget(url: str, name: str) -> int | None:
    """The budget the last session set, which a resumed search keeps unless --budget is given."""
    return optuna.load_study(study_name=name, storage=url).user_attrs.get(BUDGET_ATTR)
