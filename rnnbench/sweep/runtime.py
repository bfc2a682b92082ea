"""Where a sweep runs and where it writes: starting or joining Ray, checking the cluster address
and the storage before anything starts, and the small spec file that makes --resume need only
--name."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import pyarrow.fs
import ray
from ray import tune

from rnnbench.errors import ConfigError
from rnnbench.sweep.storage import FAULTS, describe, probe, repair

SPEC_FILE = "rnnbench_sweep.json"  # the grid and base config, so --resume needs only --name


class SweepError(ConfigError):
    """A sweep cannot start (bad grid, unreachable cluster, unusable storage, nothing to resume)."""


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, with the fix, rather than after Ray's long connection retries."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as error:
        raise SweepError(
            f"cannot reach a Ray cluster at {address} ({error}); start one with `ray start --head` or fix --address / RAY_ADDRESS"
        ) from None


def start_ray(address: str | None, cpus_per_trial: float = 1, gpus_per_trial: float = 0) -> None:
    """Connect to `address` (or RAY_ADDRESS), else start a Ray on this machine's cores; the CLIs
    set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before Ray is imported, which binds it to 127.0.0.1.

    A trial asking for more than any node has would wait forever without a word: on a local Ray
    that is an error, on a cluster (whose autoscaler may still add such a node) a warning."""
    # every epoch checkpoints and only the newest is kept, which Tune warns about; it is intended
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        check_reachable(address)
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(address="local", include_dashboard=False, log_to_driver=False)
    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    if not any(r.get("CPU", 0) >= cpus_per_trial and r.get("GPU", 0) >= gpus_per_trial for r in nodes):
        largest = max(nodes, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)))
        message = (
            f"no node can hold one trial of {cpus_per_trial:g} CPUs and {gpus_per_trial:g} GPUs (the largest has "
            f"{largest.get('CPU', 0):g} CPUs, {largest.get('GPU', 0):g} GPUs); lower --cpus-per-trial / --gpus-per-trial"
        )
        if not address:
            ray.shutdown()
            raise SweepError(message)
        print(f"warning: {message}, or add such a node; trials wait until one joins", file=sys.stderr)


def gpus_per_trial(asked: float | None) -> float:
    """The GPUs a trial asks for: as given, else every GPU the running Ray sees (the caller shares
    them among the trials)."""
    if asked is not None:
        return asked
    return float(ray.cluster_resources().get("GPU", 0))


def experiment_path(storage: str, name: str) -> str:
    return storage.rstrip("/") + "/" + name


def local_storage(storage: str) -> Path | None:
    """The local folder behind `storage`, or None for a remote URI such as s3://."""
    if "://" not in storage:
        return Path(storage).expanduser().resolve()
    return Path(storage[len("file://") :]) if storage.startswith("file://") else None


def normalize_storage(storage: str) -> str:
    """Ray wants absolute local paths; URIs pass unchanged."""
    folder = local_storage(storage)
    return str(folder) if folder is not None and "://" not in storage else storage


def check_storage(storage: str) -> None:
    """Make sure results can be written there before any trial starts."""
    folder = local_storage(storage)
    if folder is None:
        try:
            pyarrow.fs.FileSystem.from_uri(storage)
        except Exception as error:  # noqa: BLE001 - pyarrow raises several kinds here
            raise SweepError(f"storage {storage} is not usable ({error}); pass another --storage") from None
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SweepError(f"storage {folder} is not writable ({error.strerror}); pass a writable --storage") from None
    error = probe(folder)
    if error is not None:
        raise SweepError(f"storage {folder} is not writable ({error.strerror}); pass a writable --storage")


def experiment_exists(path: str) -> bool:
    return tune.Tuner.can_restore(path)


def filesystem(path: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The pyarrow filesystem behind a local path or a storage URI, and the path inside it."""
    return pyarrow.fs.FileSystem.from_uri(path) if "://" in path else (pyarrow.fs.LocalFileSystem(), path)


def write_spec(path: str, spec: dict[str, Any]) -> None:
    """Write the spec whole or not at all (a temp file renamed over it): a full disk must not
    leave a cut spec that --resume cannot read."""
    fs, folder = filesystem(path)
    fs.create_dir(folder, recursive=True)
    tmp = f"{folder}/.{SPEC_FILE}.tmp-{uuid.uuid4().hex}"
    try:
        with fs.open_output_stream(tmp) as out:
            out.write(json.dumps(spec, indent=1).encode())
        fs.move(tmp, f"{folder}/{SPEC_FILE}")
    finally:
        with contextlib.suppress(OSError):
            fs.delete_file(tmp)


def read_spec(path: str) -> dict[str, Any]:
    fs, folder = filesystem(path)
    try:
        with fs.open_input_stream(f"{folder}/{SPEC_FILE}") as stream:
            return json.loads(stream.read())
    except (FileNotFoundError, OSError):
        raise SweepError(f"{path} was not made by an rnnbench sweep (no {SPEC_FILE}); resume it with Ray Tune directly") from None


def stored_run(path: str) -> tuple[dict[str, Any], bool]:
    """The spec of the experiment to resume, and whether Ray holds any state of it yet. A driver
    killed after writing the spec but before Ray's first experiment checkpoint leaves only the
    spec: the run then starts over from it. Files a full disk left cut are repaired first."""
    folder = local_storage(path)
    if folder is not None and folder.is_dir():
        try:
            repair(folder)
        except OSError as error:
            if error.errno not in FAULTS:
                raise
            raise SweepError(describe(folder.parent, error.errno)) from None
    started = experiment_exists(path)
    try:
        return read_spec(path), started
    except SweepError:
        if started:
            raise
    raise SweepError(
        f"no experiment to resume at {path} (nothing of it was written there); check --storage and --name, "
        "or run the same command without --resume"
    )
