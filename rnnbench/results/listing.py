"""`rnnbench-results list STORAGE`: what is in a storage folder, one line per experiment: its task,
state, members by outcome, epochs finished, last change and size. Reads files only, like `load`."""

from __future__ import annotations

import os
import posixpath
from datetime import datetime

import pandas as pd
import pyarrow.fs as pafs

from rnnbench import record
from rnnbench.errors import ResultsError
from rnnbench.results.load import is_experiment, trial_overview

# fits 120 columns; "stopped" is the state to act on (continue it with --resume)
HEADER = "members = done (finished, diverged, pruned)/running/errored/total; epochs = finished/planned; stopped = not running"


def _state(statuses: pd.Series, running: bool) -> str:
    """running (a driver runs it), finished (every member done), errored (every member ended,
    some in an error), else stopped (continue it with --resume)."""
    if running:
        return "running"
    if len(statuses) and statuses.isin(record.DONE).all():
        return "finished"
    if statuses.isin((*record.DONE, "errored")).all() and statuses.eq("errored").any():
        return "errored"
    return "stopped"


def list_experiments(storage: str | os.PathLike, *, filesystem: pafs.FileSystem | None = None) -> pd.DataFrame:
    """One row per experiment folder directly under `storage`: experiment, task, state, member
    counts (done = finished, diverged or pruned; running; errored; total, which also counts
    pending, stopped and planned members), epochs finished and planned, last change (newest file mtime)
    and size in MB."""
    fs, root = record.open_fs(storage, filesystem)
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        raise ResultsError(f"{storage} is not a folder; pass the folder the sweeps' --storage pointed at")
    folders = sorted(
        i.path
        for i in fs.get_file_info(pafs.FileSelector(root))
        if i.type == pafs.FileType.Directory and is_experiment(fs, i.path)
    )
    if not folders:
        hint = "; it is an experiment itself: rnnbench-results " + os.fspath(storage) if is_experiment(fs, root) else ""
        raise ResultsError(f"no experiment folders in {storage} (none holds {record.SPEC} or {record.MEMBERS}/){hint}")
    rows = []
    for folder in folders:
        files = [i for i in fs.get_file_info(pafs.FileSelector(folder, recursive=True)) if i.type == pafs.FileType.File]
        changed = max((i.mtime for i in files if i.mtime is not None), default=None)
        members = trial_overview(folder, filesystem=fs)
        statuses = members["status"]
        spec = record.read_json(fs, posixpath.join(folder, record.SPEC))
        task = spec.get("task") if isinstance(spec, dict) else None
        rows.append(
            {
                "experiment": posixpath.basename(folder.rstrip("/")),
                "task": task if isinstance(task, str) else "",
                "state": _state(statuses, record.driver_alive(fs, folder)),
                "done": int(statuses.isin(record.DONE).sum()),
                "running": int(statuses.eq("running").sum()),
                "errored": int(statuses.eq("errored").sum()),
                "total": len(members),
                "epochs": int(members["epochs"].sum()),
                "planned": int(members["planned"].sum()) if len(members) and members["planned"].notna().all() else None,
                "last_change": datetime.fromtimestamp(changed.timestamp()) if changed is not None else None,
                "size_mb": sum(i.size or 0 for i in files) / 1e6,
            }
        )
    return pd.DataFrame(rows)


def render_listing(table: pd.DataFrame) -> str:
    """The listing as aligned text under a header that says what the counts are."""
    shown = pd.DataFrame(
        {
            "experiment": table["experiment"],
            "task": table["task"].replace("", "-"),
            "state": table["state"],
            "members": [f"{r.done}/{r.running}/{r.errored}/{r.total}" for r in table.itertuples()],
            "epochs": [f"{r.epochs}/{int(r.planned)}" if pd.notna(r.planned) else str(r.epochs) for r in table.itertuples()],
            "last change": table["last_change"].map(lambda t: t.strftime("%Y-%m-%d %H:%M") if pd.notna(t) else "-"),
            "MB": table["size_mb"].map(lambda x: f"{x:.1f}"),
        }
    )
    return HEADER + "\n" + shown.to_string(index=False)
