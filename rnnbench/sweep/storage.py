"""Storage that fills up or turns read-only mid-run: stop within seconds with one line, and leave
what `--resume` needs to finish with nothing lost.

What Ray 2.60 does by itself (measured with a 2-4 MB tmpfs as --storage, filled or remounted
read-only after the first or second epoch; tests/test_storage_faults.py replays it):
- The worker's checkpoint upload fails, the trial errors and Tune retries it (max_failures) against
  the same storage; the driver's sync of its staging folder to the storage only logs its failures.
- That sync rewrites each file in place (open, truncate, write). On a full disk it left
  experiment_state-*.json, the search state, and every trial's result.json, progress.csv,
  params.json/.pkl and error.txt/.pkl truncated, most of them empty, and the checkpoint being
  uploaded with empty files. Read-only storage refuses the open and keeps every file whole.
- With the retries spent, building the ResultGrid unpickles the empty error.pkl: the driver dies
  with a traceback (EOFError or UnpicklingError) minutes later.
- The supported ways to stop do not fit: a tune.Stopper whose stop_all() is True (or
  request_stop_experiment) ends every unfinished trial as TERMINATED, so a resume would skip it;
  SIGINT / SIGUSR1 keep the trials unfinished but run one more forced sync into the broken storage
  and still build the ResultGrid.
- With the experiment state cut, a resume finds no state, restarts the experiment from the search
  state alone, and fails in the trial namer (KeyError: 'members').

So StorageGuard, a driver-side Tune callback, raises StorageError from inside Tune's loop: tune.run
stops the trials and re-raises without another sync, and the CLI prints the one line, exit 1. It
learns of the fault when a trial fails (it probes the storage) and from the driver's own failed
syncs, which reach nothing but Ray's loggers: a filter on Ray's console handler probes when a record
carries ENOSPC, EDQUOT, EROFS, EACCES or EPERM, and keeps those tracebacks off the console.

A full disk truncates Ray's files however quickly the run stops, so the guard also keeps an atomic
copy (temp file + rename) of what Ray staged on the driver, refreshed after every experiment-state
save, under BACKUP in the experiment folder: each trial's result.json and progress.csv first, then
the experiment and search state in one bundle, so the bundle never names an epoch the logs lack.
`repair`, run by --resume before Ray reads anything, puts whole files back (see its docstring).
Checkpoints need nothing: Ray registers one only after its upload succeeded, and the trial that
resumes from the previous one writes over the half-uploaded folder.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import logging
import os
import pickle
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.fs
from ray import tune

from rnnbench.errors import StorageError
from rnnbench.sweep.summary import resume_command

# errno -> what the storage is, and what to do before resuming
FAULTS = {
    errno.ENOSPC: ("is full", "free space"),
    errno.EDQUOT: ("is over its quota", "free space"),
    errno.EROFS: ("is read-only", "make it writable"),
    errno.EACCES: ("is not writable", "restore write permission"),
    errno.EPERM: ("is not writable", "restore write permission"),
}
BACKUP = ".rnnbench_backup"  # a dot folder: neither Ray nor rnnbench.results takes it for a trial
BUNDLE = "experiment.json"  # in BACKUP: the root state files Ray staged, base64 by name
STATE_PREFIX = "experiment_state-"
PROBE_BYTES = 1 << 20  # a write a nearly full disk still fails, small enough to cost nothing


def fault_errno(error: BaseException | None) -> int | None:
    """The storage errno (one of FAULTS) in an exception, its causes, or a Ray task error's cause."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in FAULTS:
            return error.errno
        error = getattr(error, "cause", None) or error.__cause__ or error.__context__
    return None


def describe(storage: str | os.PathLike, code: int) -> str:
    """The one line for a storage fault: what is wrong, and how to go on."""
    what, fix = FAULTS[code]
    return f"storage {storage} {what} ({os.strerror(code)}); {fix}, then continue with: {resume_command()}"


def probe(folder: Path) -> OSError | None:
    """Write, sync and remove a file in `folder`; the error if that fails, else None."""
    path = folder / f".rnnbench-probe-{uuid.uuid4().hex}"
    try:
        with open(path, "wb") as out:
            out.write(bytes(PROBE_BYTES))
            out.flush()
            os.fsync(out.fileno())
    except OSError as error:
        return error
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    return None


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` whole or not at all: a full disk leaves the old file as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


class StorageGuard(tune.Callback):
    """Stops the experiment with StorageError when its local storage is full, read-only or
    unwritable, and keeps the atomic copy of Ray's staged files that `repair` restores from.

    It sits in RunConfig(callbacks=...), which Tune pickles into tuner.pkl, so a restored run is
    guarded too. Storage that is not a local path (s3://...) is left to Ray: objects there are
    written whole, and no errno says "full"."""

    def __init__(self) -> None:
        self.fault: str | None = None  # the one line, once the storage is known to be faulty
        self._storage: Any = None  # Ray's StorageContext of the experiment, learned from a trial
        self._quiet: logging.Filter | None = None
        self._staged_at = 0  # mtime of the staged experiment state last copied
        self._copied: dict[Path, tuple[int, int]] = {}  # staged log -> (mtime, size) last copied

    def setup(self, **info: Any) -> None:
        self._quiet = _QuietStorageFaults(self)
        for handler in logging.getLogger("ray").handlers:
            handler.addFilter(self._quiet)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._learn(trials)
        self.check()  # the step ends with a stop, before Tune starts the retry against the same storage

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._learn(trials)
        self.check()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        """The one place to raise: Tune wraps an error raised while it handles a trial's result or
        failure into a TuneError holding the traceback as text, but not one raised here."""
        self._learn(trials)
        if self.fault is None and self._folder is not None:
            try:
                self._back_up()
            except OSError:
                self.check()
        if self.fault is not None:
            raise StorageError(self.fault)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Runs after Tune's last sync (or as it stops on an error): copy that state too."""
        if self.fault is None and self._folder is not None:
            with contextlib.suppress(OSError):
                self._back_up()
        if self.fault is None:  # else the run is ending: Ray's last words about it stay off the console
            for handler in logging.getLogger("ray").handlers:
                handler.removeFilter(self._quiet)

    def check(self) -> bool:
        """Probe the storage once a write may have failed; remember a fault. True if faulty."""
        if self.fault is None and self._folder is not None:
            error = probe(self._folder)
            if error is not None and error.errno in FAULTS:
                self.fault = describe(self._storage.storage_fs_path, error.errno)
        return self.fault is not None

    @property
    def _folder(self) -> Path | None:
        """The experiment folder, when the storage is a local path."""
        if self._storage is None or not isinstance(self._storage.storage_filesystem, pyarrow.fs.LocalFileSystem):
            return None
        return Path(self._storage.experiment_fs_path)

    def _learn(self, trials: list) -> None:
        if self._storage is None and trials:
            self._storage = trials[0].storage

    def _back_up(self) -> None:
        """Copy what Ray staged since its last experiment-state save: logs first, state last."""
        staging = Path(self._storage.experiment_driver_staging_path)
        states = sorted(staging.glob(f"{STATE_PREFIX}*.json"))
        if not states or states[-1].stat().st_mtime_ns == self._staged_at:
            return
        staged_at = states[-1].stat().st_mtime_ns
        backup = self._folder / BACKUP
        for log in sorted([*staging.glob("*/result.json"), *staging.glob("*/progress.csv")]):
            stat = log.stat()
            if self._copied.get(log) != (stat.st_mtime_ns, stat.st_size):
                write_atomic(backup / log.relative_to(staging), log.read_bytes())
                self._copied[log] = (stat.st_mtime_ns, stat.st_size)
        root = {
            p.name: base64.b64encode(p.read_bytes()).decode()
            for p in staging.iterdir()
            if p.is_file() and p.suffix in (".json", ".pkl") and not p.name.startswith(".")
        }
        write_atomic(backup / BUNDLE, json.dumps(root).encode())
        self._staged_at = staged_at


class _QuietStorageFaults(logging.Filter):
    """On Ray's console handler: a record carrying a storage errno (a failed trial, a failed sync
    of the experiment state, which Ray only logs) makes the guard probe; once the fault is known,
    this record and every later one (the other trials' failures, Ray's "unhandled error" of
    their results as Tune stops them) stay off the console: the run ends with its own one line."""

    def __init__(self, guard: StorageGuard):
        super().__init__()
        self.guard = guard

    def filter(self, record: logging.LogRecord) -> bool:
        if self.guard.fault is not None:
            return False
        # Ray's syncer logs a failure as text from inside its except block, with no exc_info
        error = record.exc_info[1] if record.exc_info else sys.exc_info()[1]
        return fault_errno(error) is None or not self.guard.check()


def repair(folder: Path) -> None:
    """Make an experiment stopped by a storage fault resumable, before Ray reads any of it.

    - result.json / progress.csv of every trial: the longer of Ray's file and the backup copy, cut
      to whole lines (both are prefixes of the same append-only log; Ray appends to what it finds,
      so a cut last line would swallow the next epoch's line).
    - experiment state: the newest of Ray's state files and the backup bundle whose every trial
      has its last reported epoch in its result.json (a missing checkpoint is left to
      rnnbench.sweep.recovery), else the newest that parses (what Ray itself would take). The bundle comes with the search state
      saved with it; Ray's newer state files that lost are removed, as Ray reads the newest. With
      none readable, the state files go and the sweep starts over from its spec file.
    - params.json / params.pkl that are missing or unreadable: written again from the trial's config
      in that state (Ray rewrites them only for trials that run again, not for finished ones).
    - error.txt / error.pkl and TensorBoard event files are left as they are: Ray forgets a resumed
      trial's error files and never reads a finished one's, and TensorBoard skips a cut record.
    """
    backup = folder / BACKUP
    for trial_dir in sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")):
        _keep_longest(trial_dir / "result.json", backup / trial_dir.name / "result.json", _whole_json_lines)
        _keep_longest(trial_dir / "progress.csv", backup / trial_dir.name / "progress.csv", _whole_lines)
    candidates = [_ray_state(folder, p) for p in folder.glob(f"{STATE_PREFIX}*.json")]
    candidates.append(_backup_state(backup / BUNDLE))
    readable = sorted((c for c in candidates if c is not None), key=lambda c: c.order, reverse=True)
    chosen = next((c for c in readable if c.consistent(folder)), readable[0] if readable else None)
    for path in folder.glob(f"{STATE_PREFIX}*.json"):
        if chosen is None or path.name > chosen.name:
            for file in _session_files(folder, path.name):  # Ray would read its search state
                file.unlink()
    if chosen is None:
        # Without tuner.pkl the sweep is not "started" and runs again from its spec file; with it,
        # Ray would restart the experiment from the search state alone (a KeyError in the namer)
        (folder / "tuner.pkl").unlink(missing_ok=True)
        return
    for name, data in chosen.files.items():
        if not (folder / name).is_file() or (folder / name).read_bytes() != data:
            write_atomic(folder / name, data)
    chosen.restore_params(folder)


class _State:
    """One candidate experiment state: its file name, content, and the files saved with it."""

    def __init__(self, name: str, files: dict[str, bytes], from_backup: bool):
        self.name, self.files = name, files
        self.state = json.loads(files[name])
        self.trials = [(json.loads(t), json.loads(m)) for t, m in self.state["trial_data"]]
        # newest session first, then the latest save of it; Ray's own file wins a tie
        self.order = (name, self.state["runner_data"]["_iteration"], not from_backup)

    def consistent(self, folder: Path) -> bool:
        """Every trial's last reported epoch is in its result.json. A checkpoint the state names
        but storage lacks is not a reason to roll every trial back to an older state: Ray deletes
        it in the normal run (num_to_keep) before the newer state is written, and
        rnnbench.sweep.recovery.CheckpointFallback repairs just that trial."""
        for trial, meta in self.trials:
            last = meta.get("last_result") or {}
            if "training_iteration" not in last:
                continue
            trial_dir = folder / trial.get("relative_logdir", "")
            reported = {row.get("training_iteration") for row in _rows(trial_dir / "result.json")}
            if last["training_iteration"] not in reported:
                return False
        return True

    def restore_params(self, folder: Path) -> None:
        for trial, _ in self.trials:
            trial_dir = folder / trial.get("relative_logdir", "")
            if not trial_dir.is_dir() or "config" not in trial:
                continue
            if not _readable(trial_dir / "params.json", json.loads):
                write_atomic(trial_dir / "params.json", json.dumps(trial["config"], indent=2, sort_keys=True).encode())
            if not _readable(trial_dir / "params.pkl", pickle.loads):
                write_atomic(trial_dir / "params.pkl", pickle.dumps(trial["config"]))


def _session_files(folder: Path, state_name: str) -> list[Path]:
    """An experiment-state file and the search state saved with it (same session timestamp)."""
    session = state_name[len(STATE_PREFIX) : -len(".json")]
    return [p for p in folder.iterdir() if p.is_file() and p.name.endswith((f"{session}.json", f"{session}.pkl"))]


def _ray_state(folder: Path, path: Path) -> _State | None:
    """Ray's state file with the search state of its session, if all are whole."""
    return _parsed(path.name, {p.name: p.read_bytes() for p in _session_files(folder, path.name)}, from_backup=False)


def _backup_state(bundle: Path) -> _State | None:
    try:
        files = {name: base64.b64decode(data) for name, data in json.loads(bundle.read_bytes()).items()}
    except (OSError, ValueError):
        return None
    names = sorted(n for n in files if n.startswith(STATE_PREFIX))
    return _parsed(names[-1], files, from_backup=True) if names else None


def _parsed(name: str, files: dict[str, bytes], from_backup: bool) -> _State | None:
    # the search state is a pickle whatever its suffix (basic-variant-state-*.json is one)
    if not all(_loads_ok(data, json.loads) or _loads_ok(data, pickle.loads) for data in files.values()):
        return None
    try:
        return _State(name, files, from_backup)
    except (ValueError, KeyError, TypeError):
        return None


def _loads_ok(data: bytes, loads: Callable[[bytes], Any]) -> bool:
    try:
        loads(data)
    except Exception:  # noqa: BLE001 - a cut pickle or JSON file fails in many ways
        return False
    return True


def _readable(path: Path, loads: Callable[[bytes], Any]) -> bool:
    return path.is_file() and _loads_ok(path.read_bytes(), loads)


def _whole_lines(data: bytes) -> bytes:
    return data[: data.rfind(b"\n") + 1]


def _whole_json_lines(data: bytes) -> bytes:
    """The longest start of a result.json made of whole lines that each parse."""
    end = 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n") or not _loads_ok(line, json.loads):
            break
        end += len(line)
    return data[:end]


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _whole_json_lines(path.read_bytes()).splitlines()] if path.is_file() else []


def _keep_longest(path: Path, copy: Path, whole: Callable[[bytes], bytes]) -> None:
    """Make `path` the longer whole-line start of itself and of its backup `copy`."""
    ours = whole(path.read_bytes()) if path.is_file() else b""
    saved = whole(copy.read_bytes()) if copy.is_file() else b""
    best = saved if len(saved) > len(ours) else ours
    if path.is_file() or best:
        if not path.is_file() or path.read_bytes() != best:
            write_atomic(path, best)
