"""Trial groups give each member the answers it gets alone: the same per-epoch metrics as a solo
ClassifierRun (to float rounding), a diverged member leaves while the others go on, a checkpoint
continues exactly, and a member's checkpoint is a solo run's checkpoint (both ways)."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnbench import metrics as M
from rnnbench.data.batching import static_width
from rnnbench.errors import ConfigError
from rnnbench.train.classifier import ClassifierConfig, ClassifierRun, load_data
from rnnbench.train.group import GroupRun, group_key

TIMING = {M.EPOCH_S, M.TOKENS_PER_S}
SMALL = dict(embed_dim=32, hidden_dim=32, batch_size=16, epochs=2, device="cpu")
LOSS_RTOL = 1e-5  # bmm instead of addmm, a different sum order: losses agree to rounding, not bitwise


def untimed(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in TIMING}


def assert_same_answers(group: dict, solo: dict) -> None:
    """Same keys; same divergence and accuracies; losses equal to LOSS_RTOL (or both non-finite)."""
    assert list(group) == list(solo)
    for key, value in untimed(solo).items():
        if isinstance(value, float) and key.endswith("loss") or key == M.TRAIN_LOSS_SUM:
            if math.isfinite(value):
                assert group[key] == pytest.approx(value, rel=LOSS_RTOL), key
            else:
                assert not math.isfinite(group[key]), key
        else:
            assert group[key] == value, key


@pytest.fixture(scope="module")
def tiny_data(tiny_imdb):
    return load_data(ClassifierConfig(data=str(tiny_imdb)))


def three(tiny_imdb, model: str, **overrides) -> list[ClassifierConfig]:
    """Three members: two that learn, one whose lr makes it diverge in the first epoch."""
    base = ClassifierConfig(model=model, data=str(tiny_imdb), **{**SMALL, **overrides})
    return [dataclasses.replace(base, lr=lr, seed=seed) for lr, seed in ((0.1, 0), (0.3, 1), (1e12, 2))]


@pytest.mark.parametrize("model", ["mlp", "elman", "lstm", "gru"])
def test_a_member_gets_the_metrics_it_gets_alone(tiny_imdb, tiny_data, model):
    configs = three(tiny_imdb, model)
    grouped = list(GroupRun(configs, tiny_data).epochs())
    for member, config in enumerate(configs):
        alone = list(ClassifierRun(config, tiny_data).epochs())
        in_group = [epoch[member] for epoch in grouped if member in epoch]
        assert len(in_group) == len(alone)
        for group_metrics, solo_metrics in zip(in_group, alone):
            assert_same_answers(group_metrics, solo_metrics)
    assert [sorted(epoch) for epoch in grouped] == [[0, 1, 2], [0, 1]]


def test_momentum_members_get_the_metrics_they_get_alone(tiny_imdb, tiny_data):
    """Momentum makes the group's embedding gradients dense; a plain-SGD member beside it is unaffected."""
    base = ClassifierConfig(model="elman", data=str(tiny_imdb), **SMALL)
    configs = [dataclasses.replace(base, lr=0.05, momentum=0.9), dataclasses.replace(base, lr=0.3, seed=1)]
    grouped = list(GroupRun(configs, tiny_data).epochs())
    for member, config in enumerate(configs):
        for epoch, solo_metrics in enumerate(ClassifierRun(config, tiny_data).epochs()):
            assert_same_answers(grouped[epoch][member], solo_metrics)


def test_a_diverged_member_stops_and_the_others_go_on(tiny_imdb, tiny_data):
    configs = three(tiny_imdb, "mlp", epochs=3)
    run = GroupRun(configs, tiny_data)
    history = list(run.epochs())
    assert history[0][2][M.DIVERGED] is True and not math.isfinite(history[0][2][M.TRAIN_LOSS_SUM])
    assert [sorted(epoch) for epoch in history] == [[0, 1, 2], [0, 1], [0, 1]]
    assert not any(epoch[m][M.DIVERGED] for epoch in history for m in (0, 1))
    assert history[-1][1][M.VAL_ACC] > 0.8  # the lr-0.3 member learned the tiny set beside it
    assert run.active == [0, 1] and run.model.members == 2
    frozen = run.member_state_dict(2)
    assert frozen["diverged"] is True and frozen["epoch"] == 1


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_save_restore_continue_equals_uninterrupted(tiny_imdb, tiny_data, tmp_path, momentum):
    configs = three(tiny_imdb, "elman", epochs=3, momentum=momentum)
    straight = GroupRun(configs, tiny_data)
    uninterrupted = [{m: untimed(v) for m, v in epoch.items()} for epoch in straight.epochs()]

    first = GroupRun(configs, tiny_data)
    head = [{m: untimed(v) for m, v in first.run_epoch().items()}]
    first.save(tmp_path / "group.pt")
    del first
    resumed = GroupRun.restore(tmp_path / "group.pt", data=tiny_data)
    assert resumed.epoch == 1 and resumed.active == [0, 1]
    tail = [{m: untimed(v) for m, v in epoch.items()} for epoch in resumed.epochs()]
    assert json.dumps(head + tail) == json.dumps(uninterrupted)  # bit for bit (NaNs included)
    for name, weight in straight.model.state_dict().items():
        assert torch.equal(weight, resumed.model.state_dict()[name]), name


def test_member_checkpoints_are_solo_checkpoints_both_ways(tiny_imdb, tiny_data):
    configs = three(tiny_imdb, "lstm")[:2]
    group = GroupRun(configs, tiny_data)
    group.run_epoch()
    solo = ClassifierRun(configs[1], tiny_data)
    solo.load_state_dict(group.member_state_dict(1))  # group → solo
    assert_same_answers(group.run_epoch()[1], solo.run_epoch())

    solos = [ClassifierRun(config, tiny_data) for config in configs]
    for run in solos:
        run.run_epoch()
    regrouped = GroupRun(configs, tiny_data)
    regrouped.load_state_dict({"members": [run.state_dict() for run in solos]})  # solo → group
    continued = regrouped.run_epoch()
    for member, run in enumerate(solos):
        assert_same_answers(continued[member], run.run_epoch())


def test_group_key_and_configs_that_cannot_share_a_group(tiny_imdb, tiny_data):
    base = ClassifierConfig(data=str(tiny_imdb), **SMALL)
    assert group_key(base) == group_key(dataclasses.replace(base, lr=3.0, seed=7, momentum=0.5))
    assert group_key(base) != group_key(dataclasses.replace(base, batch_size=8))
    with pytest.raises(ConfigError, match="configs 0 and 1 cannot share a group: hidden_dim differs .32 vs 64."):
        GroupRun([base, dataclasses.replace(base, hidden_dim=64)], tiny_data)
    with pytest.raises(ConfigError, match="at least one config"):
        GroupRun([], tiny_data)


def test_gpu_script_runs_tiny_on_the_cpu(tmp_path):
    """benchmarks/gpu_group.py end to end on generated data, so it is known to work before a GPU run."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_group", "--device", "cpu", "--tiny", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "gpu_group.json").read_text())
    packing = [r for r in results["packing"] if r["status"] == "ok"]
    assert {(r["model"], r["members"]) for r in packing} == {(m, k) for m in ("mlp", "elman", "lstm") for k in (1, 2)}
    assert all(r["member_epochs_per_s"] > 0 for r in packing)
    assert {r["model"] for r in results["solo"]} == {"mlp", "elman", "lstm"}
    assert all(results["header"]["gradcheck"].values())
    assert [(r["model"], r["status"]) for r in results["full_epoch"]] == [(m, "ok") for m in ("mlp", "elman", "lstm")]
    assert "member-epochs/s" in (tmp_path / "gpu_group.txt").read_text()


@pytest.mark.slow  # torch.compile builds its kernels first
def test_compiled_lstm_cells_train_what_eager_ones_train(tiny_imdb, tiny_data):
    """compile=True (the fused LSTM's per-step elementwise work as torch.compile'd kernels, for GPUs)
    on the CPU: the same answers as the eager group."""
    configs = three(tiny_imdb, "lstm", epochs=1)[:2]
    eager = GroupRun(configs, tiny_data).run_epoch()
    compiled = GroupRun([dataclasses.replace(c, compile=True) for c in configs], tiny_data).run_epoch()
    for member in (0, 1):
        assert_same_answers(compiled[member], eager[member])


class WiderSteps(GroupRun):
    """Every training step padded past `static_width`, as under cuda_graphs (which needs a GPU)."""

    def fused_step(self, rows, lengths, labels):
        extra = static_width(rows.shape[1]) + 3 - rows.shape[1]
        padding_row = self.model.embed.shape[0] - 1
        return super().fused_step(torch.nn.functional.pad(rows, (0, 0, 0, extra), value=padding_row), lengths, labels)


@pytest.mark.parametrize("model", ["mlp", "lstm"])
def test_steps_padded_wider_train_what_tight_steps_train(tiny_imdb, tiny_data, model):
    """cuda_graphs pads each step to one of a few widths: the max pool never sees the padding and
    the recurrence reaches it only after a review's last word, so no member learns differently."""
    configs = three(tiny_imdb, model)
    tight = list(GroupRun(configs, tiny_data).epochs())
    wide = list(WiderSteps(configs, tiny_data).epochs())
    assert [sorted(epoch) for epoch in wide] == [sorted(epoch) for epoch in tight]
    for wide_epoch, tight_epoch in zip(wide, tight):
        for member, metrics in tight_epoch.items():
            assert_same_answers(wide_epoch[member], metrics)


def test_cuda_graphs_without_a_gpu_is_a_one_line_error(tiny_imdb, tiny_data):
    config = ClassifierConfig(data=str(tiny_imdb), cuda_graphs=True, **SMALL)
    with pytest.raises(ConfigError, match="cuda_graphs needs a CUDA device, not cpu"):
        GroupRun([config, dataclasses.replace(config, seed=1)], tiny_data)
