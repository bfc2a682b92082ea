"""Ray Tune glue: everything between the plain training loops and a finished experiment folder.

grid.py         members, their grouping into trials, trial names, progress line, run_grid
trainable.py    the one trainable: a group of members, reported and checkpointed per epoch
runtime.py      start or join Ray, check the address and storage, the sweep spec file
recovery.py     on resume, fall back from a checkpoint Ray's saved state names but already deleted
cli.py          the command line of the grid scripts in sweeps/
confirm.py      the classification grid's confirmation stage on the official test split
search.py       seed-aware Optuna search on stock Ray Tune pieces (sweeps/search.py)
summary.py      the closing report
"""
