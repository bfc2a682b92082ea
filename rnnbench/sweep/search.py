"""Ray Tune glue for a seed-aware Optuna search: a Searcher that hands out every configuration
Optuna suggests as S seed trials, and a scheduler that feeds each epoch to the SeedStudy and
stops all seeds of a configuration the pruner rejects.

Ray's own OptunaSearch assumes one trial per suggestion and its Repeater averages seeds without
spread and without seed-aware early stopping; this keeps Optuna's ask/tell in our hands instead.
The searcher and the scheduler share no memory, only the study's storage, so both survive
Ray's pickling and a driver restart unchanged.
"""

from __future__ import annotations

import pickle
import time
from typing import Any, Callable

from ray import tune
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter, SearchGenerator, Searcher

from rnnbench import metrics as M
from rnnbench.sweep.seed_study import SearchSpace, SeedStudy
from rnnbench.sweep.grid import run_grid, trial_namer

OPTUNA_TRIAL = "optuna_trial"  # config key (and results column): the Optuna trial a seed belongs to
SEED = "seed"
NAME_KEYS = (OPTUNA_TRIAL, "lr", SEED)


class SeedSearcher(Searcher):
    """Asks Optuna for a configuration and returns it S times, with seeds 0..S-1, before asking
    again. Configurations the study holds as running but Ray never got (asked just before a
    crash, after Ray's last experiment checkpoint) are handed out first."""

    def __init__(self, seeds: SeedStudy, space: SearchSpace):
        super().__init__()
        self.seeds, self.space = seeds, space
        self.handed: set[int] = set()  # configurations Ray has trials of
        self.queue: list[tuple[int, dict[str, Any], int]] = []  # (number, params, next seed) to hand out
        self.adopted = False

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # the space and the objective are the study's, not Tune's param_space

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if not self.adopted:
            self.queue += [(n, p, 0) for n, p in sorted(self.seeds.running().items()) if n not in self.handed]
            self.adopted = True
        if not self.queue:
            if not self.seeds.can_ask(time.time()):
                return Searcher.FINISHED
            self.queue.append((*self.seeds.ask(self.space), 0))
        number, params, seed = self.queue[0]
        self.handed.add(number)
        if seed + 1 < self.seeds.num_seeds:
            self.queue[0] = (number, params, seed + 1)
        else:
            self.queue.pop(0)
        return {**params, OPTUNA_TRIAL: number, SEED: seed}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Nothing to do: the SeedScheduler sees every result with the trial's config."""

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as out:
            pickle.dump({"handed": self.handed, "queue": self.queue}, out)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as stream:
            state = pickle.load(stream)
        self.handed, self.queue, self.adopted = state["handed"], state["queue"], False


class ResumableSearch(SearchGenerator):
    """Ray restores a search's "finished" flag with its state, so a resumed search that had used
    its budget would never ask again. The SeedSearcher knows the budget (it is in the study), so
    the flag is cleared and the searcher decides."""

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self._finished = False


class SeedScheduler(FIFOScheduler):
    """Runs trials in order, like FIFO, and passes each epoch's metric to the SeedStudy; STOP when
    the configuration was pruned (on the seed-mean) or already decided."""

    def __init__(self, seeds: SeedStudy, metric: str):
        super().__init__()
        self.seeds, self.study_metric = seeds, metric

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        number, seed = trial.config[OPTUNA_TRIAL], trial.config[SEED]
        value = result.get(self.study_metric)
        if value is None:
            return TrialScheduler.CONTINUE
        keep = self.seeds.record(number, seed, int(result[M.EPOCH]), value)
        return TrialScheduler.CONTINUE if keep else TrialScheduler.STOP

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self.seeds.finish_seed(trial.config[OPTUNA_TRIAL], trial.config[SEED])

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self.seeds.fail(trial.config[OPTUNA_TRIAL])


def run_search(
    trainable: Callable,
    base: dict[str, Any],
    seeds: SeedStudy,
    space: SearchSpace,
    *,
    metric: str,
    name: str,
    storage: str,
    epochs: int,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    max_concurrent: int | None = None,
    resume: bool = False,
    data: Any = None,
) -> tune.ResultGrid:
    """Run (or resume) the search at `storage/name` until the study's budget or deadline is
    reached and every configuration handed out has its S seeds finished."""
    searcher: Searcher = SeedSearcher(seeds, space)
    if max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
    return run_grid(
        trainable, base, name=name, storage=storage, namer=trial_namer(NAME_KEYS), metric=metric,
        epochs=epochs, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial, resume=resume, data=data,
        search_alg=ResumableSearch(searcher), scheduler=SeedScheduler(seeds, metric),
        num_samples=-1,
    )
