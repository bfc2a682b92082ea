"""Read an experiment's record (rnnbench.record) into one tidy DataFrame: one row per (member, epoch).

Only the record's files are read, through pyarrow's filesystem layer, so it works without Ray or
torch on a finished, running, stopped or copied experiment, on a confirmation stage, and on
any storage URI pyarrow understands (file://, s3://, gs://, hdfs://) or a filesystem passed in
(e.g. an fsspec one wrapped in `pyarrow.fs.PyFileSystem(FSSpecHandler(fs))`).
"""

from __future__ import annotations

import os
import posixpath
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd
import pyarrow.fs as pafs

from rnnbench import metrics as m
from rnnbench import record
from rnnbench.errors import ResultsError
from rnnbench.results.columns import ID_COLUMNS
from rnnbench.sweep.members import NAME, group_name
from rnnbench.tasks import RESTORE_FROM

STATUSES = record.STATUSES
_CONFIG_FIRST = ("model", "dataset", "lr", "seed")  # read best first; the rest follow as the loop's config has them

# Metrics in the order tables and plots should show them; other reported keys follow, sorted.
_METRIC_ORDER = (
    m.TRAIN_LOSS,
    m.TRAIN_LOSS_SUM,
    m.TRAIN_ACC,
    m.VAL_LOSS,
    m.VAL_ACC,
    m.TEST_LOSS,
    m.TEST_ACC,
    m.LOSS_PER_TOKEN,
    m.GRAD_NORM,
    m.EPOCH_S,
    m.TOKENS_PER_S,
)


def load(path: str | os.PathLike, *, filesystem: pafs.FileSystem | None = None, threads: int = 8) -> pd.DataFrame:
    """All finished epochs of all members of one experiment, as one DataFrame.

    Columns: `experiment`, `trial` (the member), `group` (the trial that trains it), `status`
    (one of STATUSES), `error` (last line of error.txt), the member's config (`restore_from` too
    when it continues an earlier experiment), `epoch`, `diverged`, then every reported metric.
    A member with no epoch yet, planned members without a folder included, keeps one row with
    epoch <NA>, so it is still counted. `df.attrs` names the experiment, the config and metric
    columns, and the `task` its spec.json records. Members are read on `threads` threads, since
    remote stores (and even local disks) serve files in parallel.
    """
    spec, members = read_experiment(path, filesystem=filesystem, threads=threads)
    if not any(member["rows"] for member in members):
        raise ResultsError(f"experiment {path} is empty: {len(members)} member(s), none has finished an epoch yet")
    df = _frame(members, experiment=posixpath.basename(os.fspath(path).rstrip("/")))
    if isinstance(spec.get("task"), str):
        df.attrs["task"] = spec["task"]
    return df


def trial_overview(path: str | os.PathLike, *, filesystem: pafs.FileSystem | None = None, threads: int = 8) -> pd.DataFrame:
    """One row per member, planned ones included: `trial`, `group`, `status`, `epochs` (finished)
    and `planned` (the config's `epochs`, <NA> if none). Unlike `load` it also answers for an
    experiment none of whose members has finished an epoch."""
    _, members = read_experiment(path, filesystem=filesystem, threads=threads)
    planned = [member["config"].get("epochs") for member in members]
    return pd.DataFrame(
        {
            "trial": [member["name"] for member in members],
            "group": [member["group"] for member in members],
            "status": [member["status"] for member in members],
            "epochs": [len(member["rows"]) for member in members],
            "planned": pd.array([e if isinstance(e, int) else None for e in planned], dtype="Int64"),
        }
    )


def is_experiment(fs: pafs.FileSystem, folder: str) -> bool:
    """A folder holding spec.json or a members/ folder (an experiment whose spec was lost still is one)."""
    spec, members = fs.get_file_info([posixpath.join(folder, record.SPEC), posixpath.join(folder, record.MEMBERS)])
    return spec.type == pafs.FileType.File or members.type == pafs.FileType.Directory


def read_experiment(
    path: str | os.PathLike, *, filesystem: pafs.FileSystem | None = None, threads: int = 8
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The experiment's spec ({} without one) and every member, by name, as `record.read_member`
    gives it plus its `status`; planned members without a folder have their planned config."""
    fs, root = record.open_fs(path, filesystem)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise ResultsError(f"{path} does not exist")
    if info.type != pafs.FileType.Directory:
        raise ResultsError(f"{path} is a file, not an experiment folder")
    if not is_experiment(fs, root):
        inner = [i.base_name for i in fs.get_file_info(pafs.FileSelector(root)) if i.type == pafs.FileType.Directory]
        inner = sorted(name for name in inner if is_experiment(fs, posixpath.join(root, name)))
        hint = f"; it holds experiment folders: {', '.join(inner)}" if inner else ""
        raise ResultsError(f"{path} is not an experiment folder (no {record.SPEC} and no {record.MEMBERS}/ folder){hint}")
    spec = record.read_json(fs, posixpath.join(root, record.SPEC))
    spec = spec if isinstance(spec, dict) else {}
    planned = _planned(spec)
    found = set(record.member_names(fs, root))
    running = record.driver_alive(fs, root)

    def read(name: str) -> dict[str, Any]:
        member = record.read_member(fs, root, name) if name in found else {NAME: name, "rows": [], "error": None, "pruned": False}
        if not member.get("config") and name in planned:  # no member.json yet: as planned
            member.update(planned[name])
        epochs = member["config"].get("epochs")
        epochs = epochs if isinstance(epochs, int) else None
        member["status"] = record.member_status(member["rows"], epochs, member["error"], running, member["pruned"])
        return member

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return spec, list(pool.map(read, sorted(found | set(planned))))


def _planned(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The members spec.json plans (grid and confirmation stage), by name: their trial's name and
    config (the base overridden by the member's values)."""
    base = spec.get("base") if isinstance(spec.get("base"), dict) else {}
    out = {}
    for group in spec.get("groups") or []:
        for member in group:
            values = {k: v for k, v in member.items() if k not in (NAME, RESTORE_FROM)}
            restore = {RESTORE_FROM: member[RESTORE_FROM]} if RESTORE_FROM in member else {}
            out[member[NAME]] = {"group": group_name(group), "config": {**base, **values}, **restore}
    return out


def _frame(members: list[dict[str, Any]], experiment: str) -> pd.DataFrame:
    rows = [{**row, "_m": i} for i, member in enumerate(members) for row in member["rows"] or [{}]]
    body = pd.DataFrame.from_records(rows)
    body[m.EPOCH] = pd.to_numeric(body[m.EPOCH]).astype("Int64")
    body[m.DIVERGED] = body[m.DIVERGED].eq(True) if m.DIVERGED in body else False
    order = [c for c in _METRIC_ORDER if c in body]
    extra = sorted(c for c in body if c not in (*order, m.EPOCH, m.DIVERGED, "_m"))

    head = pd.DataFrame(
        {
            "experiment": experiment,
            "trial": [member[NAME] for member in members],
            "group": [member["group"] for member in members],
            "status": [member["status"] for member in members],
            "error": [member["error"] for member in members],
        }
    )
    clash = {*body.columns, *ID_COLUMNS}  # a config key named like a metric or an id column keeps a prefix
    configs = [
        {
            (f"config/{k}" if k in clash else k): tuple(v) if isinstance(v, list) else v  # tuples can be grouped on
            for k, v in {**member["config"], **({RESTORE_FROM: member[RESTORE_FROM]} if RESTORE_FROM in member else {})}.items()
        }
        for member in members
    ]
    config = pd.DataFrame.from_records(configs, index=range(len(members)))
    first = [c for c in _CONFIG_FIRST if c in config]
    config = config[first + [c for c in config if c not in first]]
    head = pd.concat([head, config], axis=1).iloc[body["_m"].to_numpy()].reset_index(drop=True)

    df = pd.concat([head, body[[m.EPOCH, m.DIVERGED, *order, *extra]]], axis=1)
    numeric = [c for c in order + extra if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    df.attrs = {"experiment": experiment, "config_columns": list(config.columns), "metric_columns": numeric}
    return df
