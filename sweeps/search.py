"""A seed-aware learning-rate search, the alternative to the full grid: Optuna (TPE, seeded)
suggests a configuration, one Ray Tune trial trains its S seeds together and reports their mean;
a stock scheduler (median stopping rule or ASHA) stops configurations whose seed-mean falls behind.

    python sweeps/search.py --task grammar --dataset ndfa --budget 10      # 10 lrs x 3 seeds
    python sweeps/search.py --task grammar --dataset ndfa --resume         # after a crash
    python sweeps/search.py --task imdb --batch-sizes 32 64 --compare-grid results/imdb_grid

Results load like a grid's: rnnbench.results.load(<storage>/<name>) has one row per seed and epoch,
`group` naming the configuration. The Optuna study is in the experiment's study.journal:
optuna.load_study(study_name="search", storage=rnnbench.sweep.study.journal(<storage>/<name>)).
"""

import sys

from rnnbench.sweep.search import main

if __name__ == "__main__":
    sys.exit(main(__doc__))
