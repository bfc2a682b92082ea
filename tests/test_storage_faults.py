"""Storage that fills up or turns read-only mid-run (rnnbench/sweep/storage.py): a real Ray and a
real tmpfs as --storage, so these tests need root (mount); they skip, saying so, without it.

Each fault hits at a known point: once the first trial's second epoch is checkpointed on the
storage, with one trial at a time, so two trials' epochs are still to come. The driver must end
with one `error:` line naming the storage and no traceback, exit 1; after the fix, --resume must
finish every member with one row per epoch and the metrics of a clean run (CPU determinism).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from rnnbench import results
from rnnbench.sweep.runtime import SPEC_FILE, read_spec, write_spec
from rnnbench.sweep.storage import BACKUP

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
GRID = ["--datasets", "brackets", "--lrs", "0.5", "--seeds", "0", "1", "--epochs", "4", "--n", "300", "--max-concurrent", "1"]
METRICS = ["train_loss_sum", "loss_per_token", "held_out_loss_per_token", "synth_acc@t0", "synth_acc@t1", "compl_acc@t0.5"]


def grammar_grid(*args: str | Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "sweeps" / "grammar_grid.py"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def epochs_table(path: Path) -> pd.DataFrame:
    df = results.load(path)
    return df[["trial", "epoch", "status", *METRICS]].sort_values(["trial", "epoch"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> pd.DataFrame:
    """The grid run on ordinary storage: the rows a faulted and resumed run must end with."""
    storage = tmp_path_factory.mktemp("clean")
    done = grammar_grid(*GRID, "--storage", storage, "--name", "s")
    assert done.returncode == 0, done.stderr[-3000:]
    return epochs_table(storage / "s")


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


def fill(storage: Path) -> Path:
    """Write zeros until the storage refuses one more byte."""
    filler = storage / "filler"
    with open(filler, "wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(bytes(1 << 16))
    assert os.statvfs(storage).f_bavail == 0
    return filler


def fault_mid_run(storage: Path, fault: Callable[[], None]) -> tuple[int, str, float]:
    """Start the grid, apply `fault` once the first trial's second epoch is checkpointed, and
    return the driver's exit code, its stderr and the seconds it ran on after the fault."""
    driver = subprocess.Popen(
        [sys.executable, str(ROOT / "sweeps" / "grammar_grid.py"), *GRID, "--storage", str(storage), "--name", "s"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,  # its own process group: the driver and its Ray, killed together if it hangs
    )
    try:
        deadline = time.monotonic() + 240
        while not list(storage.glob("s/*/checkpoint_000001/score.json")) and driver.poll() is None:
            assert time.monotonic() < deadline, "no second epoch checkpointed within 240 s"
            time.sleep(0.05)
        assert driver.poll() is None, "the run ended before the fault point:\n" + driver.stderr.read()[-3000:]
        fault()
        faulted = time.monotonic()
        _, err = driver.communicate(timeout=240)
        return driver.returncode, err, time.monotonic() - faulted
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, 9)
            driver.wait()


def assert_one_line(err: str, problem: str) -> None:
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and problem in errors[0] and errors[0].endswith("--resume"), err[-3000:]
    assert "Traceback" not in err, err[-3000:]


def assert_resumes_to_the_clean_rows(storage: Path, clean: pd.DataFrame) -> None:
    resumed = grammar_grid("--storage", storage, "--name", "s", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    df = epochs_table(storage / "s")
    assert not df.duplicated(["trial", "epoch"]).any()
    assert set(df["status"]) == {"finished"}
    pd.testing.assert_frame_equal(df, clean)


def cut_like_a_full_disk(experiment: Path) -> None:
    """What Ray's sync into a full disk did to every file of its own it reached (measured, Ray
    2.60): rewritten in place and left cut, most of them empty. Whether the last sync reaches
    a file is a matter of timing, so the test cuts them all, mid-line."""
    ray_files = [*experiment.glob("*.json"), *experiment.glob("*/*.json"), *experiment.glob("*/*.csv")]
    ray_files += [*experiment.glob("*/params.pkl"), *experiment.glob("*/error.*")]
    cut = [p for p in ray_files if p.name != SPEC_FILE and BACKUP not in p.parts]  # not ours: written whole
    assert any(p.name.startswith("experiment_state") for p in cut) and any(p.name == "result.json" for p in cut)
    for path in cut:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def test_full_storage_stops_the_run_and_resume_finishes_it(tmpfs, clean):
    filler = []
    code, err, after = fault_mid_run(tmpfs, lambda: filler.append(fill(tmpfs)))
    assert code == 1, err[-3000:]
    assert after < 120  # it does not hang: measured 4-9 s on a loaded 2-core VM
    assert_one_line(err, f"error: storage {tmpfs} is full (No space left on device); free space")
    filler[0].unlink()
    cut_like_a_full_disk(tmpfs / "s")
    assert_resumes_to_the_clean_rows(tmpfs, clean)


def remount_read_only(storage: Path) -> None:
    """`mount -o remount,ro` refuses (busy) while a file on it is open for writing, as one of Ray's
    may be at any moment: try again until no writer holds one."""
    deadline = time.monotonic() + 60
    while (done := subprocess.run(["mount", "-o", "remount,ro", str(storage)], capture_output=True, text=True)).returncode:
        assert time.monotonic() < deadline, f"could not remount {storage} read-only: {done.stderr.strip()}"
        time.sleep(0.01)


def test_read_only_storage_stops_the_run_and_resume_finishes_it(tmpfs, clean):
    code, err, after = fault_mid_run(tmpfs, lambda: remount_read_only(tmpfs))
    assert code == 1, err[-3000:]
    assert after < 120
    assert_one_line(err, f"error: storage {tmpfs} is read-only (Read-only file system); make it writable")
    subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], check=True)
    assert_resumes_to_the_clean_rows(tmpfs, clean)


def test_the_spec_file_is_replaced_whole_or_not_at_all(tmpfs):
    """A spec rewritten on a full disk keeps its old content, not a cut file --resume cannot read."""
    write_spec(str(tmpfs / "s"), {"task": "grammar", "axes": {}})
    fill(tmpfs)
    with pytest.raises(OSError):
        write_spec(str(tmpfs / "s"), {"task": "grammar", "axes": {"lr": [0.1] * 100_000}})
    assert read_spec(str(tmpfs / "s")) == {"task": "grammar", "axes": {}}
    assert sorted(p.name for p in (tmpfs / "s").iterdir()) == [SPEC_FILE]  # no temp file left behind
