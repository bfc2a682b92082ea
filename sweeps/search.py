"""A seed-aware learning-rate search, the alternative to the full grid: Optuna (TPE, seeded)
suggests a configuration, S seeds of it run in parallel as Ray Tune trials, Optuna is told their
mean; the median pruner stops all seeds of a configuration whose seed-mean falls behind.

    python sweeps/search.py --task grammar --dataset ndfa --budget 10      # 10 lrs x 3 seeds
    python sweeps/search.py --task grammar --dataset ndfa --resume --budget 20   # 10 more
    python sweeps/search.py --task imdb --model lstm --batch-sizes 32 64 --compare-grid results/imdb_grid

The study lives in <storage>/<name>/optuna.db beside the Ray experiment:
    optuna.load_study(study_name=NAME, storage="sqlite:///<storage>/<name>/optuna.db").trials_dataframe()
Results load like a grid's: rnnbench.results.load(<storage>/<name>) has an `optuna_trial` column.
"""

import sys

from rnnbench.sweep.search_cli import main

if __name__ == "__main__":
    sys.exit(main(__doc__))
