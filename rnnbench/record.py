"""The experiment record: the files an experiment *is*, in one layout that pandas alone can read.

    <exp>/spec.json                          what the experiment is: task, kind (grid, search or
                                             confirm), the base config, the grid's axes, grouping and
                                             planned members; what --resume compares flags against
    <exp>/driver.json                        while a driver runs the experiment: its host, pid and
                                             last heartbeat (removed when it ends)
    <exp>/study.journal                      a search's Optuna study (optuna.load_study can open it)
    <exp>/members/<member>/member.json       the member's name, its trial, its full loop config
    <exp>/members/<member>/rows.jsonl        one JSON object per finished epoch, {"epoch": n, metric:
                                             value, ...}, appended; readers keep the last line of an
                                             epoch and skip a torn line
    <exp>/members/<member>/state-<n>.pt      the member's full training state after epoch n (a solo
                                             run's checkpoint: `TrainingRun.restore` reads it); the
                                             newest two are kept, each written whole or not at all
    <exp>/members/<member>/error.txt         why the member's last attempt failed, while unfinished
    <exp>/members/<member>/pruned.json       {"epoch": n}: a search's pruner stopped it there (done)

A member resumes from its newest state whose epoch has a row (a rule about these files alone); Ray
schedules the members but keeps nothing here that a rerun could not rebuild. Everything goes
through pyarrow's filesystem layer, so the same code writes a local folder, an NFS mount or an
object store URI. This module imports neither torch nor Ray.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import socket
import time
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from rnnbench.errors import ResultsError

SPEC = "spec.json"
DRIVER = "driver.json"
STUDY = "study.journal"
MEMBERS = "members"
MEMBER = "member.json"
ROWS = "rows.jsonl"
ERROR = "error.txt"
PRUNED = "pruned.json"  # the search's pruner stopped the member's configuration at this epoch
STATE = re.compile(r"state-(\d+)\.pt")
KEPT_STATES = 2
# finished: reached its planned epochs; diverged: stopped early, its loss not finite; pruned: a
# search's pruner stopped its configuration early; errored: its last attempt failed; running /
# pending: unfinished, with / without an epoch, while a driver runs the experiment; stopped:
# unfinished, and no driver runs it (continue with --resume)
STATUSES = ("finished", "diverged", "pruned", "errored", "running", "pending", "stopped")
DONE = ("finished", "diverged", "pruned")
HEARTBEAT_S = 120  # a driver on another host that has not written its heartbeat for this long is gone


def open_fs(path: str | os.PathLike, filesystem: pafs.FileSystem | None = None) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the path inside it, for a local path, a storage URI or an explicit fs."""
    text = os.fspath(path)
    if filesystem is not None:
        return filesystem, text
    if "://" in text:
        try:
            return pafs.FileSystem.from_uri(text)
        except (pa.ArrowException, ValueError, OSError) as error:
            raise ResultsError(f"cannot open storage URI {text}: {error}") from None
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(text))


def read_bytes(fs: pafs.FileSystem, path: str) -> bytes | None:
    """The file's content, or None when it does not exist."""
    try:
        with fs.open_input_stream(path) as stream:
            return stream.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def write_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Replace `path` with `data` whole or not at all (a temp file moved over it): a crash or a
    full disk leaves the old file as it was."""
    folder = posixpath.dirname(path)
    fs.create_dir(folder, recursive=True)
    tmp = posixpath.join(folder, f".{posixpath.basename(path)}.tmp-{uuid.uuid4().hex}")
    try:
        if isinstance(fs, pafs.LocalFileSystem):
            with open(tmp, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        else:
            with fs.open_output_stream(tmp) as out:
                out.write(data)
        fs.move(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            fs.delete_file(tmp)


def read_json(fs: pafs.FileSystem, path: str) -> Any:
    """A JSON file's content; None when missing or unreadable."""
    data = read_bytes(fs, path)
    try:
        return None if data is None else json.loads(data)
    except ValueError:
        return None


def write_json(fs: pafs.FileSystem, path: str, value: Any) -> None:
    write_atomic(fs, path, json.dumps(value, indent=1).encode())


def member_folder(root: str, name: str) -> str:
    return posixpath.join(root, MEMBERS, name)


def member_names(fs: pafs.FileSystem, root: str) -> list[str]:
    """Every member folder of the experiment, sorted."""
    found = fs.get_file_info(pafs.FileSelector(posixpath.join(root, MEMBERS), allow_not_found=True))
    return sorted(i.base_name for i in found if i.type == pafs.FileType.Directory and not i.base_name.startswith("."))


def append_row(fs: pafs.FileSystem, folder: str, row: dict[str, Any]) -> None:
    """Add one epoch's row. Each line starts with a newline, so a line a crash cut short is ended
    by the next write and read as one bad line, never glued to the next epoch's. Object stores
    cannot append: there the file is rewritten whole."""
    line = b"\n" + json.dumps(row).encode()
    path = posixpath.join(folder, ROWS)
    if isinstance(fs, pafs.LocalFileSystem):
        os.makedirs(folder, exist_ok=True)
        with open(path, "ab") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())
    else:
        write_atomic(fs, path, (read_bytes(fs, path) or b"") + line)


def parse_rows(data: bytes | None) -> list[dict[str, Any]]:
    """The rows of a rows.jsonl, one per epoch (the last line of an epoch wins), by epoch; lines
    that do not parse (a torn last line) are skipped."""
    rows: dict[int, dict[str, Any]] = {}
    for line in (data or b"").decode("utf-8", "replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int):
            rows[row["epoch"]] = row
    return [rows[epoch] for epoch in sorted(rows)]


def read_rows(fs: pafs.FileSystem, folder: str) -> list[dict[str, Any]]:
    return parse_rows(read_bytes(fs, posixpath.join(folder, ROWS)))


def state_path(folder: str, epoch: int) -> str:
    return posixpath.join(folder, f"state-{epoch}.pt")


def state_epochs(fs: pafs.FileSystem, folder: str) -> list[int]:
    """The epochs of the member's state files, oldest first."""
    found = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    return sorted(int(m[1]) for i in found if (m := STATE.fullmatch(i.base_name)))


def resume_epoch(fs: pafs.FileSystem, folder: str) -> int | None:
    """The newest epoch whose state is complete and whose row reached storage; None: start over.
    (A state without its row is an epoch whose row a crash lost: resuming past it would lose it.)"""
    rows = {row["epoch"] for row in read_rows(fs, folder)}
    usable = [epoch for epoch in state_epochs(fs, folder) if epoch in rows]
    return usable[-1] if usable else None


def prune_states(fs: pafs.FileSystem, folder: str) -> None:
    """Keep the newest KEPT_STATES states: with two, a crash between a member's state and its row
    still leaves the epoch before, which has both. Temp files a crash left mid-write go too (the
    member's one writer is the caller)."""
    found = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    old = [state_path(folder, epoch) for epoch in state_epochs(fs, folder)[:-KEPT_STATES]]
    for path in old + [i.path for i in found if i.base_name.startswith(".") and ".tmp-" in i.base_name]:
        with contextlib.suppress(FileNotFoundError):
            fs.delete_file(path)


def is_done(rows: list[dict[str, Any]], epochs: int) -> bool:
    """A member is done when it reached its planned epochs or diverged (it cannot go on)."""
    return bool(rows) and (rows[-1]["epoch"] >= epochs or rows[-1].get("diverged") is True)


def write_driver(fs: pafs.FileSystem, root: str, started: float) -> None:
    """Mark the experiment as run by this process (and refresh the heartbeat)."""
    write_json(
        fs,
        posixpath.join(root, DRIVER),
        {"host": socket.gethostname(), "pid": os.getpid(), "started": started, "beat": time.time()},
    )


def remove_driver(fs: pafs.FileSystem, root: str) -> None:
    with contextlib.suppress(OSError):
        fs.delete_file(posixpath.join(root, DRIVER))


def driver_alive(fs: pafs.FileSystem, root: str, now: float | None = None) -> bool:
    """Whether a driver is running the experiment: its process is alive (same host), or its
    heartbeat is recent (another host). A killed driver leaves its file behind; that is "stopped"."""
    driver = read_json(fs, posixpath.join(root, DRIVER))
    if not isinstance(driver, dict):
        return False
    if driver.get("host") == socket.gethostname():
        try:
            os.kill(int(driver["pid"]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, another user's
            return True
        except (ValueError, KeyError, TypeError):
            return False
        return True
    return (time.time() if now is None else now) - float(driver.get("beat", 0)) < HEARTBEAT_S


def member_status(rows: list[dict[str, Any]], epochs: int | None, error: str | None, running: bool, pruned: bool = False) -> str:
    """One of STATUSES, from a member's rows, planned epochs, error file, pruned marker and
    whether a driver runs the experiment."""
    if any(row.get("diverged") is True for row in rows):
        return "diverged"
    if rows and epochs is not None and rows[-1]["epoch"] >= epochs:
        return "finished"
    if pruned:
        return "pruned"
    if error is not None:
        return "errored"
    if running:
        return "running" if rows else "pending"
    return "stopped"


def read_member(fs: pafs.FileSystem, root: str, name: str) -> dict[str, Any]:
    """What one member folder holds: `name`, `group`, `config` (from member.json), `rows`,
    `error` (the last line of error.txt, or None) and `pruned` (whether pruned.json exists)."""
    folder = member_folder(root, name)
    info = read_json(fs, posixpath.join(folder, MEMBER))
    info = info if isinstance(info, dict) else {}
    error = read_bytes(fs, posixpath.join(folder, ERROR))
    lines = [line.strip() for line in (error or b"").decode("utf-8", "replace").splitlines() if line.strip()]
    return {
        **info,
        "name": name,
        "group": info.get("group", name),
        "config": info.get("config") if isinstance(info.get("config"), dict) else {},
        "rows": read_rows(fs, folder),
        "error": (lines[-1] if lines else "error") if error is not None else None,
        "pruned": read_bytes(fs, posixpath.join(folder, PRUNED)) is not None,
    }
