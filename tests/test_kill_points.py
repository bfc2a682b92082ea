"""A sweep SIGKILLed at exact points of its writes, each kill followed by a --resume killed at the
next point, and a last --resume without kills: every member still ends with each epoch exactly
once, and with the metrics an uninterrupted run without Ray computes.

The kill points (tests/killpoints.py) are calls of our own functions, wherever they run: a
member's state file (before / after it is written), its row (before / after it is appended),
the pruning of its old states (in Ray's workers), Ray's start, Optuna's `tell` and the closing
summary (in the driver). After each kill the killed driver's Ray folder is deleted: the record
alone is the experiment. Chains: the grammar grid (every point), the grouped grammar grid (a kill
between two members' writes of one epoch), the seed-aware search, the IMDB grid's confirmation
stage, and a seeded random chain.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from killpoints import DEADLINE_S, ROOT, WRITE_POINTS, Reached, killed_at
from recorded import assert_every_epoch_once_as_computed, raw_rows

from rnnbench import record
from rnnbench.sweep.study import study_values

pytestmark = pytest.mark.slow

SMALL = ["--n", "2000", "--epochs", "3", "--max-concurrent", "1"]  # one trial at a time: the passes come in one order
GRID = ["--datasets", "brackets", "--lrs", "0.5", "--seeds", "0", "1", "--group", "none", *SMALL]  # a trial per member
METRIC = "synth_acc@t1"  # the grammar task's objective


def short_tmp() -> Iterator[Path]:
    """A TMPDIR for the sweeps: Ray's session folder and the driver's temporary Ray experiment
    folder go there, apart from other users' Ray (and short: Ray's socket paths must fit 107 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="kp-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


tmpdir_short = pytest.fixture(short_tmp)
module_tmpdir_short = pytest.fixture(short_tmp, scope="module", name="module_tmpdir_short")


@dataclasses.dataclass
class Experiment:
    """A sweep script with its first and its --resume arguments, run with its own TMPDIR."""

    script: str
    fresh: list[str]
    resume: list[str]
    path: Path
    tmp: Path

    def argv(self, args: list[str]) -> list[str]:
        return [sys.executable, str(ROOT / "sweeps" / self.script), *args]

    def next_args(self) -> list[str]:
        """The same command again while nothing was recorded (a kill before the spec), else its --resume form."""
        return self.resume if (self.path / record.SPEC).exists() else self.fresh

    def run(self, args: list[str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.argv(self.next_args() if args is None else args),
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
            cwd=ROOT,
            env={**os.environ, "TMPDIR": str(self.tmp)},
        )

    def kill(self, point: str, n: int, log: Path) -> Reached:
        reached = killed_at(point, n, self.argv(self.next_args()), log, env={"TMPDIR": str(self.tmp)})
        forgotten = forget_ray(self.tmp)
        if point in WRITE_POINTS:  # the hook reached Ray's workers: the pass was counted in one
            assert reached.in_ray_worker, reached
            assert forgotten == 1  # Ray's state of the killed run was there, and is gone now
        else:
            assert reached.in_driver, reached
        return reached

    def chain(self, points: list[tuple[str, int, str]], logs: Path) -> tuple[list[Reached], subprocess.CompletedProcess]:
        """Kill a run at each (point, pass, where) in turn, each the --resume of the one before
        (`where`: a part of what the pass wrote, e.g. `seed0/state-2.pt`, so the kill is where
        the test says), then resume once more without kills, which must end with exit 0."""
        logs.mkdir()
        reached = []
        for i, (point, n, where) in enumerate(points):
            reached.append(self.kill(point, n, logs / f"{i}-{point}.err"))
            assert where in reached[-1].what, (reached[-1], reached[-1].stderr[-3000:])
        done = self.run()
        assert done.returncode == 0, done.stderr[-3000:]
        return reached, done


def forget_ray(tmp: Path) -> int:
    """Delete what a killed driver left of Ray's experiment state (its temporary folder, which the
    driver deletes when it ends): a --resume must not need it. How many there were."""
    folders = list(tmp.glob("rnnbench-ray-*"))
    for folder in folders:
        shutil.rmtree(folder)
    return len(folders)


def grammar_grid(tmp_path: Path, tmp: Path, *extra: str) -> Experiment:
    storage, name = tmp_path / "runs", "g"
    where = ["--storage", str(storage), "--name", name]
    # --max-concurrent is how this run goes, not part of the experiment: each resume repeats it
    return Experiment(
        "grammar_grid.py", [*GRID, *extra, *where], [*where, "--max-concurrent", "1", "--resume"], storage / name, tmp
    )


def record_files(path: Path) -> list[str]:
    """The experiment folder's entries, members' files by kind (state files as state-<n>.pt)."""
    names = sorted(p.name for p in path.iterdir())
    for member in sorted((path / record.MEMBERS).iterdir()):
        names += sorted({"state-<n>.pt" if record.STATE.fullmatch(p.name) else p.name for p in member.iterdir()})
    return names


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# --- the chains ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grammar_chain(tmp_path_factory, module_tmpdir_short) -> tuple[Experiment, list[Reached], subprocess.CompletedProcess]:
    """The grammar grid (2 one-member trials x 3 epochs, one trial at a time) killed at every point.
    A fresh run writes, per epoch of seed0 then of seed1: state, row, prune."""
    tmp_path = tmp_path_factory.mktemp("grid")
    experiment = grammar_grid(tmp_path, module_tmpdir_short)
    points = [
        ("ray-start", 1, ""),  # before anything is recorded: the next run starts afresh
        ("after-state", 2, "seed0/state-2.pt"),  # seed0's state 2 without its row: resumes from 1
        ("before-row", 2, "seed0 epoch 3"),  # state 2 again and its row, then state 3 without its row
        ("after-row", 2, "seed1 epoch 1"),  # seed0 finishes; seed1's first row, its states not pruned
        ("before-state", 2, "seed1/state-3.pt"),  # seed1's epoch 2 recorded, epoch 3 trained
        ("after-prune", 1, "seed1"),  # seed1's last epoch recorded, not yet reported to Tune
        ("summary", 1, ""),  # everything recorded: no trial runs, killed in the report
    ]
    return experiment, *experiment.chain(points, tmp_path / "logs")


def test_grammar_grid_survives_a_kill_at_every_point(grammar_chain):
    experiment, reached, done = grammar_chain
    assert [r.point for r in reached] == [
        "ray-start",
        "after-state",
        "before-row",
        "after-row",
        "before-state",
        "after-prune",
        "summary",
    ]
    df = assert_every_epoch_once_as_computed(experiment.path)
    assert len(df) == 2 * 3
    assert "resuming: 2 of 2 trials done" in done.stderr  # the run after the summary's kill trained nothing
    assert len(raw_rows(experiment.path, "brackets_lr0.5_seed0")) == 3  # no epoch recorded twice: each kill cut one


def test_ray_state_is_not_kept_and_resuming_a_finished_experiment_does_nothing(grammar_chain):
    """Ray's experiment folder is a temporary one, deleted at the end (the chain deleted a killed
    driver's): the experiment folder holds the record alone. A --resume of the finished
    experiment trains nothing, changes no file and exits 0."""
    experiment, _, _ = grammar_chain
    assert record_files(experiment.path) == [record.MEMBERS, record.SPEC, *[record.MEMBER, record.ROWS, "state-<n>.pt"] * 2]
    assert not list(experiment.tmp.glob("rnnbench-ray-*"))  # the last run removed its own
    before = snapshot(experiment.path)
    again = experiment.run(experiment.resume)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming: 2 of 2 trials done (kept), 0 to train" in again.stderr
    assert snapshot(experiment.path) == before
    assert not list(experiment.tmp.glob("rnnbench-ray-*"))


def test_grouped_grid_survives_kills_between_members_writes(tmp_path, tmpdir_short):
    """--group seeds: one trial trains seed0 and seed1 in turn; per epoch it writes seed0's state,
    seed1's state, seed0's row (and prune), seed1's row (and prune). Kills fall between the two
    members' writes of one epoch, so one member is an epoch ahead of the other: both resume from
    the epoch they share, and the member ahead trains its epoch again (a repeated raw row, the
    same metrics)."""
    experiment = grammar_grid(tmp_path, tmpdir_short, "--group", "seeds")
    points = [
        ("after-state", 1, "seed0/state-1.pt"),  # seed0's state 1 only: both start over
        ("before-row", 2, "seed1 epoch 1"),  # seed0's row 1 written, seed1's not: both start over again
        ("after-row", 3, "seed0 epoch 2"),  # seed0's row 2 written, seed1's not: both from epoch 1
        ("before-state", 4, "seed1/state-3.pt"),  # epoch 2 recorded for both; seed0's state 3 without its row, seed1's none
    ]
    experiment.chain(points, tmp_path / "logs")
    df = assert_every_epoch_once_as_computed(experiment.path)
    assert len(df) == 2 * 3 and set(df["group"]) == {"brackets_lr0.5_seed0-1"}
    assert [r["epoch"] for r in raw_rows(experiment.path, "brackets_lr0.5_seed0")] == [1, 1, 2, 2, 3]
    assert [r["epoch"] for r in raw_rows(experiment.path, "brackets_lr0.5_seed1")] == [1, 2, 3]


def test_search_survives_kills(tmp_path, tmpdir_short):
    """The seed-aware search (2 configurations x 2 seeds x 3 epochs) killed between its seeds'
    rows, before Optuna is told a finished configuration's score, in a later configuration's
    epoch and in its report: Optuna ends told every configuration's seed-mean, and the folder
    holds the record and the study alone."""
    storage, name = tmp_path / "runs", "s"
    where = ["--task", "grammar", "--storage", str(storage), "--name", name]
    fresh = [*where, "--dataset", "brackets", *SMALL, "--num-seeds", "2", "--budget", "2", "--pruner", "none"]
    experiment = Experiment("search.py", fresh, [*where, "--max-concurrent", "1", "--resume"], storage / name, tmpdir_short)
    points = [
        ("after-row", 2, "seed1 epoch 1"),  # c000's first epoch recorded for both seeds
        ("tell", 1, ""),  # c000 finished and recorded, Optuna not told yet
        ("before-state", 2, "c001"),  # c001 recorded its first state
        ("summary", 1, ""),  # every configuration recorded and told: killed in the report
    ]
    experiment.chain(points, tmp_path / "logs")
    df = assert_every_epoch_once_as_computed(experiment.path)
    assert len(df) == 2 * 2 * 3
    told = study_values(experiment.path)
    curves = df.groupby(["group", "epoch"])[METRIC].mean()
    assert set(told) == set(df["group"]) and len(told) == 2
    for group, value in told.items():
        assert value == pytest.approx(curves.loc[group].max())
    assert sorted(p.name for p in experiment.path.iterdir()) == [record.MEMBERS, record.SPEC, record.STUDY]


def test_confirmation_stage_survives_kills(tiny_imdb, tmp_path, tmpdir_short):
    """The IMDB grid's --confirm stage, its two seeds in one fused trial (--group seeds, as a GPU's
    `all` grouping makes), continued from the first stage's states for 5 more epochs, killed
    before its first state, with both members' first states but no row, and between the two
    members' first rows; it ends as an uninterrupted confirmation would: epochs 3-7, each once."""
    storage, name = tmp_path / "runs", "c"
    first = [
        "--data",
        str(tiny_imdb),
        "--models",
        "mlp",
        "--lrs",
        "0.1",
        "--seeds",
        "0",
        "1",
        "--epochs",
        "2",
        "--group",
        "seeds",
    ]
    first += ["--embed-dim", "16", "--hidden-dim", "16", "--max-concurrent", "1", "--storage", str(storage), "--name", name]
    stage = Experiment("imdb_grid.py", first, [], storage / name, tmpdir_short)
    done = stage.run(first)
    assert done.returncode == 0, done.stderr[-3000:]
    confirm = ["--storage", str(storage), "--name", name, "--confirm", "--max-concurrent", "1"]
    experiment = Experiment("imdb_grid.py", confirm, [*confirm, "--resume"], storage / f"{name}-confirm", tmpdir_short)
    points = [
        ("before-state", 1, "seed0/state-3.pt"),  # nothing of the stage's own yet
        ("after-state", 2, "seed1/state-3.pt"),  # states without rows: both restart from the first stage
        ("before-row", 2, "seed1 epoch 3"),  # seed0's row 3 written, seed1's not: both restart from the first stage
        ("after-row", 4, "seed1 epoch 4"),  # epoch 4 recorded for both
    ]
    experiment.chain(points, tmp_path / "logs")
    df = assert_every_epoch_once_as_computed(experiment.path)
    assert len(df) == 2 * 5 and sorted(df["epoch"].unique()) == [3, 4, 5, 6, 7]
    assert [r["epoch"] for r in raw_rows(experiment.path, "mlp_lr0.1_seed0")] == [3, 3, 4, 5, 6, 7]


# --- a random chain, reproducible ------------------------------------------------------------------

SEED = int(os.environ.get("RNNBENCH_KILL_SEED", "20261204"))  # another seed explores other chains
KILLS = 3


def reachable(experiment: Experiment, planned: int) -> int:
    """A lower bound on the passes the next run makes at each write point: every member-epoch not
    yet recorded is trained, and writes its state, its row and its pruning, at least once."""
    fs, root = record.open_fs(str(experiment.path))
    return planned - sum(len(record.read_rows(fs, record.member_folder(root, name))) for name in record.member_names(fs, root))


def test_a_seeded_random_chain_of_kills(tmp_path, tmpdir_short):
    """Kill points and pass counts drawn from a seeded random.Random (the same each run, but not
    the hand-picked ones above), on the grouped grid: each drawn pass surely comes (see
    `reachable`)."""
    rng = random.Random(SEED)
    experiment = grammar_grid(tmp_path, tmpdir_short, "--group", "seeds")
    (tmp_path / "logs").mkdir()
    planned = 2 * 3
    drawn = []
    for i in range(KILLS):
        left = reachable(experiment, planned)
        point = rng.choice([*(WRITE_POINTS if left else ()), "ray-start", "summary"])
        n = rng.randint(1, left) if point in WRITE_POINTS else 1
        drawn.append((point, n))
        experiment.kill(point, n, tmp_path / "logs" / f"{i}-{point}.err")
    done = experiment.run()
    assert done.returncode == 0, (SEED, drawn, done.stderr[-3000:])
    df = assert_every_epoch_once_as_computed(experiment.path)
    assert len(df) == planned, (SEED, drawn)
