"""`rnnbench-results list STORAGE`: what is in a storage folder, one line per experiment: its task,
state, trials by outcome, epochs reported, last change and size. Reads files only, like `load`."""

from __future__ import annotations

import os
import posixpath
import time
from datetime import datetime

import pandas as pd
import pyarrow.fs as pafs

from rnnbench.errors import ResultsError
from rnnbench.results.load import SPEC_FILE, open_experiment, read_task, trial_overview

# An experiment with unfinished trials whose files changed this recently is taken to be running;
# one left longer is "interrupted" (its driver was stopped or died). Ray rewrites the experiment
# state every few seconds to minutes while a sweep runs, so a quiet quarter hour means it stopped.
RUNNING_WITHIN_S = 15 * 60
_DONE = ("finished", "diverged")


def _is_experiment(fs: pafs.FileSystem, folder: str) -> bool:
    names = fs.get_file_info(pafs.FileSelector(folder))
    return any(i.base_name.startswith("experiment_state") or i.base_name == SPEC_FILE for i in names)


def _state(statuses: pd.Series, quiet_s: float, running_within_s: float) -> str:
    """finished (every trial finished or diverged), errored (every trial ended, some in an
    error), else running or interrupted, told apart by how long the files have been quiet."""
    if statuses.isin(_DONE).all() and len(statuses):
        return "finished"
    if statuses.isin((*_DONE, "errored")).all() and len(statuses):
        return "errored"
    return "running" if quiet_s < running_within_s else "interrupted"


def list_experiments(
    storage: str | os.PathLike,
    *,
    filesystem: pafs.FileSystem | None = None,
    running_within_s: float = RUNNING_WITHIN_S,
    now: float | None = None,
) -> pd.DataFrame:
    """One row per experiment folder directly under `storage`: experiment, task, state, trial
    counts (done = finished or diverged, running, errored, total, which also counts pending and
    unknown trials; grouped trials count their members), epochs reported and planned, last change
    (newest file mtime) and size in MB. `now` (a Unix time) is when "running" is judged from."""
    fs, root = open_experiment(storage, filesystem)
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        raise ResultsError(f"{storage} is not a folder; pass the folder the sweeps' --storage pointed at")
    folders = sorted(
        i.path
        for i in fs.get_file_info(pafs.FileSelector(root))
        if i.type == pafs.FileType.Directory and _is_experiment(fs, i.path)
    )
    if not folders:
        hint = "; it is an experiment itself: rnnbench-results " + os.fspath(storage) if _is_experiment(fs, root) else ""
        raise ResultsError(f"no experiment folders in {storage} (none holds an experiment_state-*.json or {SPEC_FILE}){hint}")
    now = time.time() if now is None else now
    rows = []
    for folder in folders:
        files = [i for i in fs.get_file_info(pafs.FileSelector(folder, recursive=True)) if i.type == pafs.FileType.File]
        changed = max(i.mtime.timestamp() for i in files if i.mtime is not None)
        try:
            trials = trial_overview(folder, filesystem=fs)
        except ResultsError:  # an experiment that has not created a trial folder yet
            trials = pd.DataFrame({"status": [], "epochs": [], "planned": []})
        statuses = trials["status"]
        rows.append(
            {
                "experiment": posixpath.basename(folder.rstrip("/")),
                "task": read_task(fs, posixpath.join(folder, SPEC_FILE)) or "",
                "state": _state(statuses, now - changed, running_within_s),
                "done": int(statuses.isin(_DONE).sum()),
                "running": int(statuses.eq("running").sum()),
                "errored": int(statuses.eq("errored").sum()),
                "total": len(trials),
                "epochs": int(trials["epochs"].sum()),
                "planned": int(trials["planned"].sum()) if len(trials) and trials["planned"].notna().all() else None,
                "last_change": datetime.fromtimestamp(changed),
                "size_mb": sum(i.size or 0 for i in files) / 1e6,
            }
        )
    return pd.DataFrame(rows)


def render_listing(table: pd.DataFrame) -> str:
    """The listing as aligned text under a header that says what the trial counts are."""
    shown = pd.DataFrame(
        {
            "experiment": table["experiment"],
            "task": table["task"].replace("", "-"),
            "state": table["state"],
            "trials": [f"{r.done}/{r.running}/{r.errored}/{r.total}" for r in table.itertuples()],
            "epochs": [f"{r.epochs}/{int(r.planned)}" if pd.notna(r.planned) else str(r.epochs) for r in table.itertuples()],
            "last change": table["last_change"].map(lambda t: t.strftime("%Y-%m-%d %H:%M")),
            "MB": table["size_mb"].map(lambda x: f"{x:.1f}"),
        }
    )
    header = (
        "trials = done (finished or diverged) / running / errored / total; epochs = reported / planned; last change = newest file"
    )
    return header + "\n" + shown.to_string(index=False)
