"""Ray Tune glue: everything between the plain training loops and a finished experiment folder.

    trainables.py   the loops as Tune trainables (report + checkpoint per epoch, resume)
    runtime.py      start or join Ray, check the address and storage, the sweep spec file
    grid.py         Task (what a script varies), trial names, progress line, run_grid
    grid_cli.py     the command line shared by sweeps/imdb_grid.py and sweeps/grammar_grid.py
    tasks.py        the IMDB and grammar Tasks, the confirmation stage, the closing summary
    seed_study.py   an Optuna study whose trials are configurations evaluated over S seeds
    search.py       the Ray side of that search: seed searcher and seed-mean pruning scheduler
    search_cli.py   the command line of sweeps/search.py; search_report.py its closing report
"""
