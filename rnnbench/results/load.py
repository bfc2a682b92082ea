"""Read a Ray Tune experiment folder into one tidy DataFrame: one row per (trial, epoch).

Only files are read (experiment_state-*.json, and per trial params.json, result.json or
progress.csv, error.txt / error.pkl), through pyarrow's filesystem layer. So it works without a
Ray cluster on a finished, running, interrupted or copied experiment, on a confirmation stage,
and on any storage URI pyarrow understands (file://, s3://, gs://, hdfs://) or on a filesystem
passed in (e.g. an fsspec one wrapped in `pyarrow.fs.PyFileSystem(FSSpecHandler(fs))`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import posixpath
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs

from rnnbench import metrics as m
from rnnbench.errors import ResultsError, ResultsWarning
from rnnbench.results.columns import ID_COLUMNS, NOT_AVERAGED, RAY_COLUMNS

# Ray's Trial.status -> ours. A RUNNING trial in a copied or interrupted folder may be dead;
# only the files' owner can know, so we report what Ray last wrote.
_RAY_STATUS = {"TERMINATED": "finished", "ERROR": "errored", "RUNNING": "running", "PENDING": "pending", "PAUSED": "paused"}
_CONFIG_FIRST = ("model", "dataset", "lr", "seed")  # params.json sorts keys; these read best first
MEMBERS = "members"  # config and result key of a grouped trial (see _members)
STATUSES = ("finished", "running", "pending", "paused", "errored", "diverged", "unknown")

# Written into the experiment folder by the sweeps (rnnbench.sweep.runtime.write_spec, which
# imports Ray, so the name is repeated here): {"task": "imdb" | "grammar", ...}.
SPEC_FILE = "rnnbench_sweep.json"

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


@dataclass
class _Trial:
    """What one trial folder (and its entry in the experiment state, if any) says."""

    dirname: str
    state: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    has_error_file: bool = False
    found: bool = False  # a params.json, result.json or progress.csv exists
    member: str | None = None  # the grid member, when this is one member of a grouped Ray trial

    @property
    def name(self) -> str:
        """What the `trial` column says: the member's name, else the trial folder."""
        return self.member or self.dirname


def open_experiment(path: str | os.PathLike, filesystem: pafs.FileSystem | None = None) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the path inside it, for a local path, a storage URI or an explicit fs."""
    text = os.fspath(path)
    if filesystem is not None:
        return filesystem, text
    if "://" in text:
        try:
            return pafs.FileSystem.from_uri(text)
        except (pa.ArrowException, ValueError, OSError) as exc:
            raise ResultsError(f"cannot open storage URI {text}: {exc}") from None
    return pafs.LocalFileSystem(), os.path.abspath(text)


def load(path: str | os.PathLike, *, filesystem: pafs.FileSystem | None = None, threads: int = 8) -> pd.DataFrame:
    """All reported epochs of all trials of one experiment, as one DataFrame.

    Columns: `experiment`, `trial` (the trial folder), `group` (the Ray trial folder that trained
    it), `trial_id`, `status` (one of STATUSES), `error` (last line of error.txt), every config
    value (nested dicts as `outer/inner`), `epoch`, every reported metric, then Ray's bookkeeping
    keys. A grouped Ray trial (several grid members trained together, see `_members`) becomes one
    trial per member: `trial` = the member's name, `group` = the Ray trial folder, `trial_id` =
    `<ray trial id>/<member>`, status "diverged" for a member that diverged, else the group's;
    everything downstream then treats members exactly like ungrouped trials. A trial with no reported epoch
    yet keeps one row with epoch <NA>, so it is still counted. If an epoch was reported twice
    (a trial resumed from an older checkpoint), the later report wins.
    `df.attrs` records which columns are config and which are metrics, and `task` when the
    experiment's spec file (SPEC_FILE, written by the sweeps) names it.
    Reads run on `threads` threads, since remote stores (and even local disks) serve files in
    parallel; JSON lines are parsed a whole file at a time.
    """
    fs, root, trials = _read_experiment(path, filesystem, threads)
    if not any(t.rows for t in trials):
        raise ResultsError(
            f"experiment {path} is empty: {len(trials)} trial(s), none has reported "
            "an epoch yet (a running sweep's driver syncs result.json to storage "
            "only every few minutes)"
        )
    df = _to_frame(trials, experiment=posixpath.basename(root.rstrip("/")))
    task = read_task(fs, posixpath.join(root, SPEC_FILE))
    if task is not None:
        df.attrs["task"] = task
    return df


def trial_overview(path: str | os.PathLike, *, filesystem: pafs.FileSystem | None = None, threads: int = 8) -> pd.DataFrame:
    """One row per trial (grouped trials as their members, as in `load`): `trial`, `group`,
    `status`, `epochs` (distinct epochs reported) and `planned` (the config's `epochs`, <NA> if
    none). Unlike `load` it also answers for an experiment none of whose trials has reported."""
    _, _, trials = _read_experiment(path, filesystem, threads)
    return pd.DataFrame(
        {
            "trial": [t.name for t in trials],
            "group": [t.dirname for t in trials],
            "status": [_status(t) for t in trials],
            "epochs": [len(_epochs(t)) for t in trials],
            "planned": pd.array(
                [t.config.get("epochs") if isinstance(t.config.get("epochs"), int) else None for t in trials], dtype="Int64"
            ),
        }
    )


def _read_experiment(
    path: str | os.PathLike, filesystem: pafs.FileSystem | None, threads: int
) -> tuple[pafs.FileSystem, str, list[_Trial]]:
    """The filesystem, the folder, and every trial in it (grouped trials as their members,
    sorted by name); ResultsError if the folder is missing or holds no trial."""
    fs, root = open_experiment(path, filesystem)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise ResultsError(f"{path} does not exist")
    if info.type != pafs.FileType.Directory:
        raise ResultsError(f"{path} is a file, not a Ray Tune experiment folder")
    listing = fs.get_file_info(pafs.FileSelector(root))
    trials = _discover(fs, root, listing)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(lambda t: _read_trial(fs, root, t), trials))
    trials = [t for t in trials if t.found or t.state is not None]
    if not trials:
        raise ResultsError(_not_an_experiment(fs, path, listing))
    return fs, root, sorted((member for t in trials for member in _members(t)), key=lambda t: t.name)


def read_task(fs: pafs.FileSystem, path: str) -> str | None:
    """The task the sweep recorded in its spec file (defaults then follow the task registry);
    None if there is no spec (e.g. an experiment run with Ray Tune directly)."""
    data = _read_optional(fs, path)
    if data is None:
        return None
    try:
        task = json.loads(data).get("task")
    except (ValueError, AttributeError) as exc:
        warnings.warn(f"{path}: unreadable ({exc}); defaults inferred from the columns", ResultsWarning, stacklevel=3)
        return None
    return task if isinstance(task, str) else None


def _discover(fs: pafs.FileSystem, root: str, listing: list[pafs.FileInfo]) -> list[_Trial]:
    """Trial folders from the latest experiment state plus every sub-folder (a copied or
    interrupted experiment may have trials the state does not list yet)."""
    states = sorted(
        i.base_name
        for i in listing
        if i.type == pafs.FileType.File and i.base_name.startswith("experiment_state") and i.base_name.endswith(".json")
    )
    by_dir: dict[str, _Trial] = {}
    if states:
        for entry in _read_state(fs, posixpath.join(root, states[-1])):
            name = entry.get("relative_logdir") or entry.get("trial_id")
            if name:
                by_dir[name] = _Trial(dirname=name, state=entry)
    for i in listing:
        if i.type == pafs.FileType.Directory and not i.base_name.startswith((".", "driver_artifacts")):
            by_dir.setdefault(i.base_name, _Trial(dirname=i.base_name))
    return [by_dir[k] for k in sorted(by_dir)]


def _read_state(fs: pafs.FileSystem, path: str) -> list[dict[str, Any]]:
    """Trial entries (trial_id, status, relative_logdir, config, last_result) of an
    experiment_state file.

    Ray stores each trial as a pair of JSON strings (the trial, its run metadata); a state file
    caught mid-write is skipped with a warning and the trial folders are read without it.
    """
    try:
        state = json.loads(_read(fs, path))
        entries = []
        for trial_json, runtime_json in state["trial_data"]:
            entry = json.loads(trial_json)
            entry["last_result"] = json.loads(runtime_json).get("last_result")
            entries.append(entry)
        return entries
    except (ValueError, KeyError, IndexError, TypeError, OSError) as exc:
        warnings.warn(f"{path}: unreadable experiment state ({exc}); reading trial folders only", ResultsWarning, stacklevel=3)
        return []


def _read(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as f:
        return f.read()


def _read_optional(fs: pafs.FileSystem, path: str) -> bytes | None:
    try:
        return _read(fs, path)
    except FileNotFoundError:
        return None


def _read_trial(fs: pafs.FileSystem, root: str, trial: _Trial) -> None:
    """Fill one trial's config, rows and error from its folder (runs on a worker thread)."""
    base = posixpath.join(root, trial.dirname)
    params = _read_optional(fs, posixpath.join(base, "params.json"))
    if params is not None:
        trial.found = True
        try:
            trial.config = json.loads(params)
        except ValueError:
            warnings.warn(f"{base}/params.json is unreadable; config taken from the results", ResultsWarning, stacklevel=2)
    result = _read_optional(fs, posixpath.join(base, "result.json"))
    if result is not None:
        trial.found = True
        trial.rows = parse_json_lines(result, f"{base}/result.json")
    else:
        progress = _read_optional(fs, posixpath.join(base, "progress.csv"))
        if progress is not None:
            trial.found = True
            trial.rows = _parse_progress(progress)
    last = (trial.state or {}).get("last_result")
    if not trial.rows and isinstance(last, dict) and last:
        # While a sweep runs, Ray 2.60 keeps result.json in the driver's staging folder and
        # syncs it to storage later; the state's last result is then all storage holds.
        trial.rows = [dict(last)]
    if not trial.config:
        trial.config = (trial.state or {}).get("config") or next(
            (r["config"] for r in trial.rows if isinstance(r.get("config"), dict)), {}
        )
    error = _read_optional(fs, posixpath.join(base, "error.txt"))
    pickled = error is None and _read_optional(fs, posixpath.join(base, "error.pkl")) is not None
    trial.has_error_file = error is not None or pickled
    if error is not None:
        lines = [ln for ln in error.decode("utf-8", "replace").splitlines() if ln.strip()]
        trial.error = lines[-1].strip() if lines else "error"
    elif pickled:
        trial.error = "error (see error.pkl)"


def parse_json_lines(data: bytes, where: str) -> list[dict[str, Any]]:
    """Parse a result.json (one JSON object a line, NaN and Infinity allowed as Ray writes them).

    The whole file is parsed in one `json.loads` call (several times faster than line by line);
    only if that fails is it read line by line, skipping broken lines with a warning: the last
    line of a running or killed trial is often cut off mid-write.
    """
    lines = data.decode("utf-8", "replace").splitlines()
    try:
        return json.loads("[" + ",".join(lines) + "]")
    except ValueError:
        pass
    rows = []
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            what = "truncated last line" if i == last else f"unreadable line {i + 1}"
            warnings.warn(f"{where}: skipped {what}", ResultsWarning, stacklevel=2)
    return [r for r in rows if isinstance(r, dict)]


def _parse_progress(data: bytes) -> list[dict[str, Any]]:
    """Rows of a progress.csv, for trials whose result.json is missing (JSON logger disabled).

    Ray flattens a grouped trial's nested `members` as `members/<name>/<metric>` columns; they
    are nested back, leaving out a member whose values on a line are all empty (it had stopped)."""
    frame = pd.read_csv(io.BytesIO(data))
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith("config/")])
    rows = frame.to_dict("records")
    prefix = MEMBERS + "/"
    flat = [c for c in frame.columns if c.startswith(prefix)]
    if not flat:
        return rows
    for row in rows:
        members: dict[str, dict[str, Any]] = {}
        for column in flat:
            value = row.pop(column)
            name, _, metric = column[len(prefix) :].rpartition("/")
            if not (isinstance(value, float) and math.isnan(value)):
                members.setdefault(name, {})[metric] = value
        row[MEMBERS] = members
    return rows


def _members(trial: _Trial) -> list[_Trial]:
    """A grouped Ray trial (one trial training several grid members together) as one trial per
    member; any other trial as itself.

    A grouped trial's config holds the common fields plus `members`: [{"name": ..., <the fields
    where this member differs>}, ...]; each result line holds `members`: {name: that member's
    metrics}. A member's rows are its own metrics plus the group line's Ray bookkeeping; the
    group-level metrics (seed means and the like) are left out, since every number in the frame
    must belong to one trained model. A member missing from a line had stopped (diverged)."""
    members = trial.config.get(MEMBERS)
    if not isinstance(members, list):
        return [trial]
    common = _flatten({k: v for k, v in trial.config.items() if k != MEMBERS})
    out = []
    for member in members:
        name = str(member["name"])
        rows = []
        for row in trial.rows:
            own = row.get(MEMBERS)
            if isinstance(own, dict) and isinstance(own.get(name), dict):
                rows.append({**{k: row[k] for k in (*RAY_COLUMNS, "trial_id") if k in row}, **own[name]})
        config = {**common, **_flatten({k: v for k, v in member.items() if k != "name"})}
        out.append(dataclasses.replace(trial, member=name, config=config, rows=rows))
    return out


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config dicts as `outer/inner` columns (Ray's own convention); lists become tuples
    so a column of them can still be grouped on."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "/"))
        else:
            out[name] = tuple(value) if isinstance(value, list) else value
    return out


def _not_an_experiment(fs: pafs.FileSystem, path: str | os.PathLike, listing: list[pafs.FileInfo]) -> str:
    """The error for a folder with no trials; names experiments one level down, if any (the
    usual slip is passing the storage path instead of storage/name)."""
    inner = []
    for i in listing:
        if i.type == pafs.FileType.Directory:
            names = fs.get_file_info(pafs.FileSelector(i.path))
            if any(n.base_name.startswith("experiment_state") for n in names):
                inner.append(i.base_name)
    hint = f"; it holds experiment folders: {', '.join(sorted(inner))}" if inner else ""
    return (
        f"{path} is not a Ray Tune experiment folder (no experiment_state-*.json and no trial "
        f"folder with params.json, result.json or progress.csv){hint}"
    )


def _epochs(trial: _Trial) -> set[int]:
    """The distinct epochs a trial reported (Ray's training_iteration where no epoch was sent)."""
    found = set()
    for row in trial.rows:
        epoch = row.get(m.EPOCH, row.get("training_iteration"))
        if isinstance(epoch, (int, float)) and not (isinstance(epoch, float) and math.isnan(epoch)):
            found.add(int(epoch))
    return found


def _status(trial: _Trial) -> str:
    """ "diverged" if any report says so; else Ray's recorded status when there is one; else what
    the files imply: an error file, or a last report marked done or reaching the config's epochs."""
    if any(row.get(m.DIVERGED) == True for row in trial.rows):  # noqa: E712 - also matches numpy and pandas bools
        return "diverged"
    if trial.state is not None and trial.state.get("status") in _RAY_STATUS:
        return _RAY_STATUS[trial.state["status"]]
    if trial.has_error_file:
        return "errored"
    epochs = trial.config.get("epochs")
    done = any(row.get("done") == True for row in trial.rows)  # noqa: E712 - a True, not any truthy value
    if done or (isinstance(epochs, (int, float)) and max(_epochs(trial), default=0) >= epochs):
        return "finished"
    return "unknown"


def _to_frame(trials: list[_Trial], experiment: str) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for index, trial in enumerate(trials):
        for row in trial.rows:
            row.pop("config", None)
            row["_t"] = index
        rows.extend(trial.rows or [{"_t": index}])
    frame = pd.DataFrame.from_records(rows)
    if m.EPOCH not in frame:
        frame[m.EPOCH] = frame.get("training_iteration")
    elif "training_iteration" in frame:
        frame[m.EPOCH] = frame[m.EPOCH].fillna(frame["training_iteration"])
    frame[m.EPOCH] = pd.to_numeric(frame[m.EPOCH]).astype("Int64")
    frame = frame.drop_duplicates(subset=["_t", m.EPOCH], keep="last")
    frame[m.DIVERGED] = frame[m.DIVERGED].eq(True) if m.DIVERGED in frame else False

    reported = [c for c in frame.columns if c != "_t"]
    configs = [_flatten(t.config) for t in trials]
    clash = set(reported) | set(ID_COLUMNS)
    configs = [{(f"config/{k}" if k in clash else k): v for k, v in c.items()} for c in configs]
    ids = frame.groupby("_t")["trial_id"].first() if "trial_id" in frame else pd.Series(dtype=object)
    ray_ids = [(t.state or {}).get("trial_id") or ids.get(i) or t.dirname for i, t in enumerate(trials)]
    head = pd.DataFrame(
        {
            "experiment": experiment,
            "trial": [t.name for t in trials],
            "group": [t.dirname for t in trials],
            "trial_id": [f"{rid}/{t.member}" if t.member else rid for rid, t in zip(ray_ids, trials)],
            "status": [_status(t) for t in trials],
            "error": [t.error for t in trials],
        }
    )
    config = pd.DataFrame.from_records(configs, index=range(len(trials)))
    first = [c for c in _CONFIG_FIRST if c in config.columns]
    config = config[first + [c for c in config.columns if c not in first]]
    head = pd.concat([head, config], axis=1)

    frame = frame.drop(columns=[c for c in ("trial_id",) if c in frame])
    order = [c for c in _METRIC_ORDER if c in frame]
    extra = sorted(c for c in frame.columns if c not in order and c not in RAY_COLUMNS and c not in NOT_AVERAGED and c != "_t")
    ray = [c for c in RAY_COLUMNS if c in frame]
    metric_cols = [
        c for c in order + extra if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]
    body = frame[[m.EPOCH, m.DIVERGED] + order + extra + ray].reset_index(drop=True)
    df = pd.concat([head.iloc[frame["_t"].to_numpy()].reset_index(drop=True), body], axis=1)
    df.attrs = {"experiment": experiment, "config_columns": list(config.columns), "metric_columns": metric_cols}
    return df
