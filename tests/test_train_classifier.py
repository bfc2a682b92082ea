"""The classifier loop: it learns, it is deterministic, and a checkpoint continues exactly."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch

from rnnbench import metrics as M
from rnnbench.errors import ConfigError
from rnnbench.train.classifier import ClassifierConfig, ClassifierRun, load_data

TIMING = {M.EPOCH_S, M.TOKENS_PER_S}
SMALL = dict(embed_dim=32, hidden_dim=32, batch_size=16)


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if k not in TIMING} for m in history]


@pytest.mark.parametrize("model", ["mlp", "elman", "lstm", "gru"])
def test_each_model_learns_the_tiny_set(tiny_imdb, model):
    config = ClassifierConfig(model=model, lr=0.3, epochs=6, data=str(tiny_imdb), **SMALL)
    history = list(ClassifierRun(config).epochs())
    assert [m[M.EPOCH] for m in history] == list(range(1, 7))
    assert history[-1][M.VAL_ACC] >= 0.85
    assert not any(m[M.DIVERGED] for m in history)
    assert history[-1][M.TRAIN_LOSS_SUM] < history[0][M.TRAIN_LOSS_SUM]


def test_same_seed_same_metrics_other_seed_other_metrics(tiny_imdb):
    config = ClassifierConfig(model="lstm", epochs=2, data=str(tiny_imdb), **SMALL)
    first = without_timing(list(ClassifierRun(config).epochs()))
    again = without_timing(list(ClassifierRun(config).epochs()))
    other = without_timing(list(ClassifierRun(dataclasses.replace(config, seed=1)).epochs()))
    assert first == again
    assert first != other


@pytest.mark.parametrize("batching", ["bucket", "random"])
def test_checkpoint_and_continue_equals_uninterrupted(tiny_imdb, tmp_path, batching):
    config = ClassifierConfig(model="elman", epochs=3, batching=batching, data=str(tiny_imdb), **SMALL)
    straight = ClassifierRun(config)
    uninterrupted = without_timing(list(straight.epochs()))

    first = ClassifierRun(config)
    head = without_timing([first.run_epoch()])
    first.save(tmp_path / "epoch1.pt")
    del first
    resumed = ClassifierRun.restore(tmp_path / "epoch1.pt")
    tail = without_timing(list(resumed.epochs()))
    assert head + tail == uninterrupted
    for name, weight in straight.model.state_dict().items():
        if straight.device.type == "cpu":
            assert torch.equal(weight, resumed.model.state_dict()[name]), name
        else:  # CUDA accumulates sparse embedding gradients in no fixed order: equal up to rounding
            torch.testing.assert_close(weight, resumed.model.state_dict()[name], rtol=1e-5, atol=1e-6, msg=name)


def test_continue_a_validation_model_on_the_official_test_split(tiny_imdb, tmp_path):
    config = ClassifierConfig(model="mlp", epochs=2, data=str(tiny_imdb), **SMALL)
    run = ClassifierRun(config)
    list(run.epochs())
    run.save(tmp_path / "val.pt")
    confirm = ClassifierRun.restore(tmp_path / "val.pt", dataclasses.replace(config, final=True, epochs=4))
    assert confirm.data.vocab == run.data.vocab  # the model's own vocabulary, not a new one
    assert (len(confirm.data.train), len(confirm.data.eval)) == (200, 200)
    history = list(confirm.epochs())
    assert [m[M.EPOCH] for m in history] == [3, 4]
    assert M.TEST_ACC in history[-1] and M.VAL_ACC not in history[-1]


def test_divergence_stops_the_loop_cleanly(tiny_imdb):
    config = ClassifierConfig(model="mlp", lr=1e12, epochs=5, data=str(tiny_imdb), **SMALL)
    history = list(ClassifierRun(config).epochs())
    assert history[-1][M.DIVERGED] is True
    assert len(history) < 5


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(model="transformer"), "unknown model"),
        (dict(lr=0), "lr must be > 0"),
        (dict(lr=-0.1), "lr must be > 0"),
        (dict(epochs=0), "epochs must be > 0"),
        (dict(batch_size=-1), "batch_size must be > 0"),
        (dict(batching="sorted"), "unknown batching"),
        (dict(seed=-1), "seed must be >= 0"),
        (dict(order_seed=-1), "order_seed must be >= 0"),
    ],
)
def test_bad_config_is_refused_before_training(bad, message):
    with pytest.raises(ConfigError, match=message):
        ClassifierConfig(**bad)


def test_cli_prints_one_line_per_epoch_and_one_line_errors(tiny_imdb, tmp_path):
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "rnnbench.train",
            "imdb",
            "--model",
            "mlp",
            "--epochs",
            "2",
            "--embed-dim",
            "16",
            "--hidden-dim",
            "16",
            "--data",
            str(tiny_imdb),
            "--save",
            str(tmp_path / "r.pt"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    rows = [line.split() for line in ok.stdout.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
    assert [row[0] for row in rows] == ["1", "2"]  # one table row per epoch
    more = subprocess.run(
        [sys.executable, "-m", "rnnbench.train", "imdb", "--resume", str(tmp_path / "r.pt"), "--epochs", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert more.returncode == 0, more.stderr
    assert [line.split()[0] for line in more.stdout.splitlines() if line.split()[:1] and line.split()[0].isdigit()] == ["3"]
    for args, expected in [
        (["--model", "transformer"], "invalid choice: 'transformer'"),
        (["--lr", "0"], "lr must be > 0"),
        (["--data", str(tmp_path)], "not an aclImdb"),
    ]:
        bad = subprocess.run(
            [sys.executable, "-m", "rnnbench.train", "imdb", "--data", str(tiny_imdb), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )  # a later --data wins
        assert bad.returncode == 2
        error_lines = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
        assert len(error_lines) == 1 and expected in error_lines[0]


def test_real_data_loop_learns(real_imdb, real_cache, monkeypatch):
    """On 2,000 real reviews a small MLP learns sentiment: its training loss falls every epoch and
    it ends clearly above the majority class on the held-out 500 (seen: 0.64 against 0.506)."""
    monkeypatch.setenv("RNNBENCH_CACHE", str(real_cache))
    config = ClassifierConfig(model="mlp", lr=0.3, epochs=3, subset=2000, data=str(real_imdb), **SMALL)
    data = load_data(config)
    assert (len(data.train), len(data.eval)) == (2000, 500)
    history = list(ClassifierRun(config, data).epochs())
    losses = [m[M.TRAIN_LOSS] for m in history]
    assert losses[0] > losses[1] > losses[2]
    assert history[-1][M.VAL_ACC] > history[-1][M.CHANCE_ACC] + 0.08, history[-1]
