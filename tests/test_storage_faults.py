"""Storage that fills up or turns read-only mid-run: a real Ray and a real tmpfs as --storage, so
these tests need root (mount); they skip, saying so, without it.

Each fault hits at a known point: the run is paused (tests/killpoints.py) in the Ray worker right
after the first member's second row is appended, with one trial at a time, the fault is made,
and the run goes on into the next write. The driver must end with one `error:` line naming the
storage problem and the resume command, no traceback, exit 1; after the fix, --resume must finish
every member with each epoch once and the metrics of an uninterrupted run (CPU determinism). A
full disk may tear the last line of a rows.jsonl: that line is skipped and its epoch trained again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from killpoints import DEADLINE_S, ROOT, Paused, wait_for
from recorded import assert_every_epoch_once_as_computed, raw_rows

from rnnbench import record
from rnnbench.sweep.study import study_values

pytestmark = pytest.mark.slow

GRID = [
    "--datasets",
    "brackets",
    "--lrs",
    "0.5",
    "--seeds",
    "0",
    "1",
    "--epochs",
    "3",
    "--n",
    "2000",
    "--max-concurrent",
    "1",
    "--group",
    "none",
]
FIRST = "brackets_lr0.5_seed0"


@pytest.fixture
def tmpfs(tmp_path) -> Iterator[Path]:
    """A 4 MB tmpfs (the grid needs about 1 MB), unmounted whatever happens."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "storage"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)]).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount)], check=True)


@pytest.fixture
def tmpdir_short() -> Iterator[Path]:
    """The sweeps' TMPDIR (Ray's session and the driver's temporary Ray folder), off the tmpfs."""
    folder = Path(tempfile.mkdtemp(prefix="sf-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def grammar_grid(*args: str | Path) -> list[str]:
    return [sys.executable, str(ROOT / "sweeps" / "grammar_grid.py"), *map(str, args)]


def search(*args: str | Path) -> list[str]:
    return [sys.executable, str(ROOT / "sweeps" / "search.py"), *map(str, args)]


def fill(storage: Path) -> Path:
    """Write zeros until the storage refuses one more byte."""
    filler = storage / "filler"
    with open(filler, "wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(bytes(1 << 16))
    assert os.statvfs(storage).f_bavail == 0
    return filler


def fault_mid_run(storage: Path, tmp: Path, log: Path, fault: Callable[[], None]) -> tuple[int, str, float]:
    """Run the grid, make `fault` once the first member's second row is appended (the run paused
    there), let it go on; the driver's exit code, its stderr and the seconds it ran after the fault."""
    argv = grammar_grid(*GRID, "--storage", storage, "--name", "s")
    with Paused("after-row", 2, argv, log, env={"TMPDIR": str(tmp)}) as run:
        assert run.reached.in_ray_worker and run.reached.what.endswith(f"{FIRST} epoch 2"), run.reached
        fault()
        faulted = time.monotonic()
        run.release()
        code, err = run.wait()
        return code, err, time.monotonic() - faulted


def assert_one_line(err: str, problem: str, script: str = "grammar_grid.py") -> None:
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and problem in errors[0] and errors[0].endswith("--resume"), err[-3000:]
    assert "continue with: " in errors[0] and script in errors[0], errors[0]
    assert "Traceback" not in err, err[-3000:]


def resume(storage: Path, tmp: Path) -> None:
    """--resume the grid: it must finish every member with each epoch once, as an uninterrupted run."""
    done = subprocess.run(
        grammar_grid("--storage", storage, "--name", "s", "--max-concurrent", "1", "--resume"),
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(assert_every_epoch_once_as_computed(storage / "s")) == 2 * 3


def tear_last_line(rows: Path) -> None:
    """Cut the file in the middle of its last line, as a crash in the middle of an append would."""
    data = rows.read_bytes()
    start = data.rindex(b"\n")
    rows.write_bytes(data[: start + (len(data) - start) // 2])


def test_full_storage_stops_the_run_and_resume_finishes_it(tmpfs, tmpdir_short, tmp_path):
    filler = []
    code, err, after = fault_mid_run(tmpfs, tmpdir_short, tmp_path / "run.err", lambda: filler.append(fill(tmpfs)))
    assert code == 1, err[-3000:]
    assert after < 120  # it does not hang
    assert_one_line(err, f"error: storage {tmpfs} is full (No space left on device); free space")
    filler[0].unlink()
    # the fault hit epoch 3's state: the first member's record holds epochs 1 and 2; tear epoch 2's row
    rows = tmpfs / "s" / record.MEMBERS / FIRST / record.ROWS
    assert [r["epoch"] for r in raw_rows(tmpfs / "s", FIRST)] == [1, 2]
    tear_last_line(rows)
    assert [r["epoch"] for r in record.read_rows(*record.open_fs(str(rows.parent)))] == [1]  # the torn line is skipped
    resume(tmpfs, tmpdir_short)
    lines = rows.read_bytes().split(b"\n")
    assert len(lines) == 5 and lines[0] == b"" and lines[2].startswith(b'{"') and not lines[2].endswith(b"}")  # kept, ended
    assert [r["epoch"] for r in raw_rows(tmpfs / "s", FIRST)] == [1, 2, 3]  # epoch 2 trained again, once


def remount_read_only(storage: Path) -> None:
    """`mount -o remount,ro` refuses (busy) while a file on it is open for writing, as the
    driver's heartbeat may hold one at any moment: try again until none does."""
    wait_for(
        lambda: subprocess.run(["mount", "-o", "remount,ro", str(storage)], capture_output=True).returncode == 0,
        f"{storage} remounted read-only",
        deadline_s=60,
    )


def test_read_only_storage_stops_the_run_and_resume_finishes_it(tmpfs, tmpdir_short, tmp_path):
    code, err, after = fault_mid_run(tmpfs, tmpdir_short, tmp_path / "run.err", lambda: remount_read_only(tmpfs))
    assert code == 1, err[-3000:]
    assert after < 120
    assert_one_line(err, f"error: storage {tmpfs} is read-only (Read-only file system); make it writable")
    subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], check=True)
    resume(tmpfs, tmpdir_short)


def test_full_storage_stops_a_search_and_resume_finishes_it(tmpfs, tmpdir_short, tmp_path):
    """The same for the seed-aware search (a stock scheduler and a searcher that expect the
    objective in every result): one line, exit 1, and --resume finishes it, Optuna told every
    configuration's seed-mean."""
    where = ["--task", "grammar", "--storage", tmpfs, "--name", "s", "--max-concurrent", "1"]
    argv = search(*where, "--dataset", "brackets", "--n", "2000", "--epochs", "3", "--num-seeds", "2", "--budget", "2")
    with Paused("after-row", 2, argv, tmp_path / "run.err", env={"TMPDIR": str(tmpdir_short)}) as run:
        assert run.reached.in_ray_worker and run.reached.what.endswith("seed1 epoch 1"), run.reached
        filler = fill(tmpfs)
        run.release()
        code, err = run.wait()
    assert code == 1, err[-3000:]
    assert_one_line(err, f"error: storage {tmpfs} is full (No space left on device); free space", "search.py")
    filler.unlink()
    done = subprocess.run(
        search(*where, "--resume"),
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmpdir_short)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    df = assert_every_epoch_once_as_computed(tmpfs / "s")
    assert len(df) == 2 * 2 * 3
    told = study_values(tmpfs / "s")
    curves = df.groupby(["group", "epoch"])["synth_acc@t1"].mean()
    assert set(told) == set(df["group"]) and all(value == pytest.approx(curves.loc[g].max()) for g, value in told.items())


def test_the_spec_file_is_replaced_whole_or_not_at_all(tmpfs):
    """A spec rewritten on a full disk keeps its old content, not a cut file --resume cannot read."""
    fs, root = record.open_fs(str(tmpfs / "s"))
    record.write_json(fs, f"{root}/{record.SPEC}", {"task": "grammar", "axes": {}})
    fill(tmpfs)
    with pytest.raises(OSError):
        record.write_json(fs, f"{root}/{record.SPEC}", {"task": "grammar", "axes": {"lr": [0.1] * 100_000}})
    assert record.read_json(fs, f"{root}/{record.SPEC}") == {"task": "grammar", "axes": {}}
    assert sorted(p.name for p in (tmpfs / "s").iterdir()) == [record.SPEC]  # no temp file left behind
