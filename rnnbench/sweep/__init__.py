"""Ray Tune glue: everything between the plain training loops and an experiment's record
(rnnbench.record). Ray schedules; the record is ours.

members.py      grid members, their grouping into trials, names; no Ray
trainable.py    the one trainable: a group of members, each writing its own states and rows
runner.py       the one pipeline (Sweep -> Ray's start, the Tuner over unfinished members, summary)
progress.py     the status line
storage.py      checking the storage, the spec file, exit codes; no Ray
cli.py          the command line of the grid scripts in sweeps/
search.py       the seed-aware search's command line; study.py its Optuna study and Tune searcher
confirm.py      the classification grid's confirmation stage on the official test split
summary.py      the closing report and the exit code
"""
