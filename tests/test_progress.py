"""Progress within an epoch: every training loop tells its `on_batch` hook of each batch, and a
sweep's status line shows how far its running trials are into their epoch (posted by the trials
to the driver's board actor, never as Tune results)."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnbench import results
from rnnbench.data.batching import make_batches
from rnnbench.errors import ConfigError
from rnnbench.sweep.progress import STATUS_EVERY_S, Progress, best_setting, status_every_s
from rnnbench.train.autoregressor import GrammarConfig, GrammarRun
from rnnbench.train.classifier import ClassifierConfig, ClassifierRun, load_data
from rnnbench.train.group import GroupRun
from rnnbench.train.members import SerialGroup

EPOCHS = 2
ROOT = Path(__file__).resolve().parents[1]


class Recorder:
    """An `on_batch` hook that keeps every (done, total) it hears."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))

    def epochs(self) -> list[list[tuple[int, int]]]:
        """The calls cut into epochs: an epoch ends where `done` reaches `total`."""
        cut, current = [], []
        for done, total in self.calls:
            current.append((done, total))
            if done == total:
                cut.append(current)
                current = []
        assert not current, f"an epoch's count stopped short of its total: {current[-1]}"
        return cut


def assert_counts_every_batch(recorder: Recorder, batches: int) -> None:
    """Each epoch counts 1, 2, ..., batches of `batches`."""
    assert recorder.epochs() == [[(i, batches) for i in range(1, batches + 1)]] * EPOCHS


def batches_per_epoch(config, lengths: np.ndarray) -> int:
    """How many batches an epoch of these sequences has (the count does not depend on the order)."""
    return len(make_batches(config.batching, lengths, config.batch_size, np.random.default_rng(0)))


@pytest.fixture(scope="module")
def classifier_config(tiny_imdb) -> ClassifierConfig:
    return ClassifierConfig(
        model="elman", data=str(tiny_imdb), embed_dim=8, hidden_dim=8, batch_size=16, epochs=EPOCHS, device="cpu"
    )


@pytest.fixture(scope="module")
def tiny_data(classifier_config):
    return load_data(classifier_config)


def test_classifier_loop_counts_every_batch_of_every_epoch(classifier_config, tiny_data):
    run, recorder = ClassifierRun(classifier_config, tiny_data), Recorder()
    run.on_batch = recorder
    list(run.epochs())
    assert_counts_every_batch(recorder, batches_per_epoch(classifier_config, tiny_data.train.lengths))


def test_grammar_loop_counts_every_batch_of_every_epoch():
    config = GrammarConfig(n=600, epochs=EPOCHS, num_samples=4, max_len=20, device="cpu")
    run, recorder = GrammarRun(config), Recorder()
    run.on_batch = recorder
    list(run.epochs())
    assert_counts_every_batch(recorder, batches_per_epoch(config, run.data.train.lengths))


def test_fused_group_counts_every_step_of_every_epoch(classifier_config, tiny_data):
    configs = [dataclasses.replace(classifier_config, lr=lr, seed=seed) for lr, seed in ((0.1, 0), (0.3, 1))]
    group, recorder = GroupRun(configs, tiny_data), Recorder()
    group.on_batch = recorder
    list(group.epochs())
    assert_counts_every_batch(recorder, batches_per_epoch(classifier_config, tiny_data.train.lengths))


def test_serial_group_counts_its_members_in_turn(classifier_config, tiny_data):
    """Two members of B batches each: the group's epoch counts 1 ... 2B of 2B."""
    runs = [ClassifierRun(dataclasses.replace(classifier_config, seed=seed), tiny_data) for seed in (0, 1)]
    group, recorder = SerialGroup(runs), Recorder()
    group.on_batch = recorder
    list(group.epochs())
    assert_counts_every_batch(recorder, 2 * batches_per_epoch(classifier_config, tiny_data.train.lengths))


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_a_bad_status_interval_is_a_one_line_error(value, monkeypatch):
    monkeypatch.setenv(STATUS_EVERY_S, value)
    with pytest.raises(ConfigError, match=f"{STATUS_EVERY_S} must be a number of seconds >= 0, got '{value}'"):
        status_every_s()


@pytest.mark.slow  # a whole sweep on a real Ray: the fast tier has one such run per CLI
def test_status_lines_show_the_running_trials_share_of_their_epoch(tmp_path):
    """A status line at every step of Tune's loop (interval 0): while the one trial trains its
    epoch of 20,000 words (625 batches, seconds on a CPU), the lines show its share of it, which
    only grows; no Tune result is added for it, and Ray's own console output stays out."""
    grid = ["--datasets", "brackets", "--lrs", "1.0", "--seeds", "0", "--epochs", "1", "--n", "20000", "--num-samples", "10"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "sweeps" / "grammar_grid.py"), *grid, "--storage", str(tmp_path), "--name", "p"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, STATUS_EVERY_S: "0"},
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    shares = [int(share) for share in re.findall(r"member-epochs 0/1 \| .* \| (\d+)% into their epoch", done.stderr)]
    assert shares, done.stderr[-3000:]
    assert shares == sorted(shares) and 0 <= shares[0] and shares[-1] <= 100
    assert "member-epochs 1/1" in done.stderr
    assert max(len(line) for line in done.stderr.splitlines() if "member-epochs" in line or "best so far" in line) <= 100
    assert len(results.load(tmp_path / "p")) == 1  # one row for the one epoch, none for the batches
    output = done.stdout + done.stderr
    assert "driver_artifacts" not in output and "tensorboard --logdir" not in output
    assert "Configuration for experiment" not in output


def member(epoch: int, value: float, setting: str, diverged: bool = False) -> dict:
    return {"setting": setting, "epoch": epoch, "acc": value, "diverged": diverged}


def test_the_status_lines_best_is_the_summarys_rule_and_never_a_diverged_member():
    """Best = the setting whose seed-mean curve scores best by --how; a diverged member's value
    (here a spurious 0.99) never counts."""
    progress = Progress("acc", "max", "peak", total=8, every_s=0)
    progress.observe("t1", {"members": {"a_seed0": member(1, 0.9, "a"), "a_seed1": member(1, 0.5, "a")}})
    progress.observe("t1", {"members": {"a_seed0": member(2, 0.6, "a"), "a_seed1": member(2, 0.6, "a")}})
    progress.observe("t2", {"members": {"b_seed0": member(1, 0.65, "b"), "b_seed1": member(1, 0.99, "b", diverged=True)}})
    assert best_setting(progress.curves, 1, "peak") == ("a", 0.7, 2)  # a's epoch 1 mean beats b's 0.65
    assert best_setting(progress.curves, 1, "final") == ("b", 0.65, 1)  # a ends at 0.6
    assert progress.done() == 2 + 2 + 1 + 1


def test_the_eta_learns_from_the_epochs_finished_in_this_run():
    """A driven clock: 2 member-epochs from before a resume, then 2 in 60 s of this run; 6 of 10 are
    left, so 180 s at this run's pace; the pace follows the epochs as they finish."""
    now = [1000.0]
    progress = Progress("acc", "max", "peak", total=10, done_before=2, every_s=0, clock=lambda: now[0])
    assert progress.eta_s(now[0]) is None  # nothing finished in this run yet: no pace to go by
    now[0] += 60
    progress.observe("t", {"members": {"m0": member(1, 0.5, "a"), "m1": member(1, 0.5, "a")}})
    assert progress.eta_s(now[0]) == pytest.approx(180)
    now[0] += 20  # two more in the next 20 s: 4 in 80 s, 4 left -> 80 s
    progress.observe("t", {"members": {"m0": member(2, 0.5, "a"), "m1": member(2, 0.5, "a")}})
    assert progress.eta_s(now[0]) == pytest.approx(80)


def test_the_eta_follows_the_pace_of_the_later_half_of_the_run():
    """Cheap members first (10 member-epochs in 100 s), then 2 in the next 100 s: of 30, 18 are
    left, at the later half's 50 s each: 900 s, where the whole run's pace (200 s / 12) says 300 s."""
    now = [0.0]
    progress = Progress("acc", "max", "peak", total=30, every_s=0, clock=lambda: now[0])
    now[0] = 100.0
    progress.observe("t", {"members": {f"m{i}": member(1, 0.5, "a") for i in range(10)}})
    now[0] = 200.0
    progress.observe("t", {"members": {f"m{i}": member(2, 0.5, "a") for i in range(2)}})
    assert progress.eta_s(now[0]) == pytest.approx(18 * 50)


class Trial:
    def __init__(self, status: str) -> None:
        self.status, self.trial_id, self.last_result = status, status, {}


def test_the_status_line_fits_100_columns_with_a_long_setting_name():
    now = [0.0]
    progress = Progress("synth_acc@t1", "max", "peak", total=1200, every_s=0, clock=lambda: now[0])
    now[0] = 60.0
    long_name = "brackets_lr0.0123456789_momentum0.9_embed_dim32_hidden_dim16_layers2_" * 2
    progress.observe("t", {"members": {"m": member(1, 0.5, long_name) | {"synth_acc@t1": 0.5}}})
    lines = progress.line([Trial("RUNNING")] * 120 + [Trial("PENDING")] * 1000, now[0]).splitlines()
    assert len(lines) == 2 and "ETA" in lines[0] and "best so far: synth_acc@t1 0.5000" in lines[1]
    assert max(len(line) for line in lines) <= 100 and lines[1].endswith("...")
