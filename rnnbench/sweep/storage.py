"""Where an experiment lives: checking its storage before anything starts, its spec file, and the
one line for a storage that fails mid-run. No Ray and no torch here, so the CLIs' checks answer
in well under a second."""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import sys
import uuid
from pathlib import Path
from typing import Any

from rnnbench import record
from rnnbench.errors import ConfigError

# errno -> what the storage is, and what to do before resuming
FAULTS = {
    errno.ENOSPC: ("is full", "free space"),
    errno.EDQUOT: ("is over its quota", "free space"),
    errno.EROFS: ("is read-only", "make it writable"),
    errno.EACCES: ("is not writable", "restore write permission"),
    errno.EPERM: ("is not writable", "restore write permission"),
}
# exit codes (sweep/summary.py): a member errored; interrupted by Ctrl-C; by SIGTERM (128 + 15)
ERRORED, INTERRUPTED, TERMINATED = 1, 130, 143
PROBE_BYTES = 1 << 20  # a write a nearly full disk still fails, small enough to cost nothing


def describe(storage: str, code: int) -> str:
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


def local_folder(storage: str) -> Path | None:
    """The local folder behind `storage`, or None for a remote URI such as s3://."""
    if "://" not in storage:
        return Path(storage).expanduser().resolve()
    return Path(storage[len("file://") :]) if storage.startswith("file://") else None


def normalize_storage(storage: str) -> str:
    """Absolute local paths; URIs pass unchanged."""
    folder = local_folder(storage)
    return str(folder) if folder is not None and "://" not in storage else storage


def refuse_file(storage: str) -> None:
    """A local storage that is a file, or lies under one, can never hold an experiment: refused
    first, writing nothing, before any data is loaded."""
    folder = local_folder(storage)
    existing = next((path for path in (folder, *folder.parents) if path.exists()), None) if folder else None
    if existing is not None and not existing.is_dir():
        where = "is a file" if existing == folder else f"lies under the file {existing}"
        raise ConfigError(f"storage {folder} {where}, not a folder; pass a folder as --storage")


def check_storage(storage: str) -> None:
    """Make sure the record can be written there before any trial starts."""
    folder = local_folder(storage)
    if folder is None:
        record.open_fs(storage)
        return
    refuse_file(storage)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"storage {folder} is not writable ({error.strerror}); pass a writable --storage") from None
    error = probe(folder)
    if error is not None:
        raise ConfigError(f"storage {folder} is not writable ({error.strerror}); pass a writable --storage")


def read_spec(path: str) -> dict[str, Any] | None:
    """The stored spec; None when the experiment never wrote anything (a --resume then starts it)."""
    fs, root = record.open_fs(path)
    spec = record.read_json(fs, f"{root}/{record.SPEC}")
    if spec is None and record.member_names(fs, root):
        raise ConfigError(f"{path} has members but no readable {record.SPEC}; it was not made by an rnnbench sweep")
    return spec


def resume_command() -> str:
    """The command that continues this run: the same one, with --resume."""
    return shlex.join([sys.executable, *sys.argv, *([] if "--resume" in sys.argv else ["--resume"])])
