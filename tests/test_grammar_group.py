"""The grammar task's fused group gives each member the answers it gets alone: members of different
grammars, lrs, momenta and seeds in one group get a solo GrammarRun's metrics (loss per token to
1e-5, identical sampled-accuracy counts), a diverged member leaves without touching the others, a
group checkpoint continues exactly, and a member's checkpoint is a solo checkpoint both ways."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from rnnbench import metrics as M
from rnnbench.data.batching import PAD, static_width
from rnnbench.errors import ConfigError
from rnnbench.train.autoregressor import GrammarConfig, GrammarGroup, GrammarRun

TIMING = {M.EPOCH_S, M.TOKENS_PER_S}
SMALL = GrammarConfig(n=600, epochs=2, batch_size=16, temperatures=(0.0, 0.5, 1.0), num_samples=20, max_len=30, device="cpu")
LOSS_RTOL = 1e-5  # different shapes in a group (wider steps, padded vocabularies): equal to rounding, not bitwise


def untimed(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in TIMING}


def assert_same_answers(group: dict, solo: dict) -> None:
    """Same keys and divergence; losses and gradient norms to LOSS_RTOL; every sampled score and example equal."""
    assert list(group) == list(solo)
    for key, value in untimed(solo).items():
        if key in (M.TRAIN_LOSS_SUM, M.LOSS_PER_TOKEN, M.HELD_OUT_LOSS_PER_TOKEN, M.GRAD_NORM):
            if math.isfinite(value):
                assert group[key] == pytest.approx(value, rel=LOSS_RTOL), key
            else:
                assert not math.isfinite(group[key]), key
        else:
            assert group[key] == value, key


def mixed() -> list[GrammarConfig]:
    """Two grammars, three lrs, momentum on one, and one lr that collapses the model in epoch 1."""
    settings = [("brackets", 1.0, 0, 0.0), ("ndfa", 0.3, 1, 0.0), ("brackets", 0.1, 2, 0.9), ("ndfa", 1e8, 3, 0.0)]
    return [dataclasses.replace(SMALL, dataset=d, lr=lr, seed=s, momentum=m) for d, lr, s, m in settings]


@pytest.fixture(scope="module")
def grouped() -> list[dict]:
    return list(GrammarGroup(mixed()).epochs())


@pytest.mark.parametrize("member", range(4))
def test_a_member_gets_the_metrics_it_gets_alone(grouped, member):
    alone = list(GrammarRun(mixed()[member]).epochs())
    in_group = [epoch[member] for epoch in grouped if member in epoch]
    assert len(in_group) == len(alone)
    for group_metrics, solo_metrics in zip(in_group, alone):
        assert_same_answers(group_metrics, solo_metrics)


def test_a_diverged_member_leaves_and_the_others_go_on(grouped):
    assert [sorted(epoch) for epoch in grouped] == [[0, 1, 2, 3], [0, 1, 2]]
    assert grouped[0][3][M.DIVERGED] is True and not any(epoch[m][M.DIVERGED] for epoch in grouped for m in (0, 1, 2))
    assert grouped[1][0][M.synth_acc(0.0)] == 1.0  # brackets at lr 1.0 learned beside it


@pytest.mark.slow  # ~22 s on 2 cores
def test_members_of_the_study_grid_in_one_group_of_120_match_themselves_alone():
    """The study's grid (2 grammars x 6 lrs x 10 seeds) as one group, on tiny data; four members retrained alone."""
    base = dataclasses.replace(SMALL, n=96, epochs=1, batch_size=32, num_samples=8, temperatures=(0.0, 1.0))
    grid = [(d, lr, s) for d in ("brackets", "ndfa") for lr in (0.01, 0.03, 0.1, 0.3, 1.0, 3.0) for s in range(10)]
    configs = [dataclasses.replace(base, dataset=d, lr=lr, seed=s) for d, lr, s in grid]
    reports = next(GrammarGroup(configs).epochs())
    assert sorted(reports) == list(range(120))
    for member in (0, 47, 95, 119):
        assert_same_answers(reports[member], next(GrammarRun(configs[member]).epochs()))


@pytest.mark.parametrize("grammars, bound", [(("brackets",), 0.1), (("ndfa",), 0.02), (("brackets", "ndfa"), 0.3)])
def test_padding_between_members_is_bounded(grammars, bound):
    """At the study's n, members of one grammar pad their steps little beyond their own batches
    (brackets 3.6% alone, 6.0% in a group; ndfa 0.5%, 0.8%); two grammars in one group, 26.5%."""
    configs = [dataclasses.replace(SMALL, n=150_000, dataset=d, seed=s) for d in grammars for s in range(3)]
    group = GrammarGroup(configs)
    group.epoch_steps()
    assert 0 < group.padding_share < bound


def test_save_restore_continue_equals_uninterrupted(tmp_path):
    configs = mixed()
    straight = GrammarGroup(configs)
    uninterrupted = [{m: untimed(v) for m, v in epoch.items()} for epoch in straight.epochs()]
    first = GrammarGroup(configs)
    head = [{m: untimed(v) for m, v in first.run_epoch().items()}]
    first.save(tmp_path / "group.pt")
    del first
    torch.manual_seed(123)  # whatever happens to the global RNG in between must not matter
    resumed = GrammarGroup.restore(tmp_path / "group.pt")
    assert resumed.epoch == 1 and resumed.active == [0, 1, 2]
    tail = [{m: untimed(v) for m, v in epoch.items()} for epoch in resumed.epochs()]
    assert json.dumps(head + tail) == json.dumps(uninterrupted)  # bit for bit
    for name, weight in straight.model.named_parameters():
        assert torch.equal(weight, resumed.model.params[name]), name


def test_member_checkpoints_are_solo_checkpoints_both_ways(tmp_path):
    configs = mixed()[:3]
    group = GrammarGroup(configs)
    group.run_epoch()
    GrammarRun(configs[2]).group.member_state_dict(0)  # the solo layout
    path = tmp_path / "member.pt"
    torch.save(group.member_state_dict(2), path)  # group → solo: the momentum member, with its buffers
    solo = GrammarRun.restore(path)
    assert_same_answers(group.run_epoch()[2], solo.run_epoch())

    solos = [GrammarRun(config) for config in configs]
    for run in solos:
        run.run_epoch()
    regrouped = GrammarGroup(configs)
    regrouped.load_state_dict({"members": [run.state_dict() for run in solos]})  # solo → group
    continued = regrouped.run_epoch()
    for member, run in enumerate(solos):
        assert_same_answers(continued[member], run.run_epoch())


def test_a_diverged_member_stays_frozen_in_checkpoints(grouped, tmp_path):
    group = GrammarGroup(mixed())
    group.run_epoch()
    frozen = group.member_state_dict(3)
    assert frozen["diverged"] is True and frozen["epoch"] == 1
    group.save(tmp_path / "g.pt")
    resumed = GrammarGroup.restore(tmp_path / "g.pt")
    assert resumed.active == [0, 1, 2] and resumed.member_state_dict(3)["epoch"] == 1
    assert sorted(next(resumed.epochs())) == [0, 1, 2]


def test_configs_that_cannot_share_a_group():
    with pytest.raises(ConfigError, match="configs 0 and 1 cannot share a group: hidden_dim differs .16 vs 32."):
        GrammarGroup([SMALL, dataclasses.replace(SMALL, hidden_dim=32)])
    with pytest.raises(ConfigError, match="at least one config"):
        GrammarGroup([])


@pytest.mark.parametrize("overrides", [dict(cell="gru", num_layers=2), dict(mask_padding=False, clip_grad=0.5)])
def test_other_cells_and_settings_match_alone(overrides):
    base = dataclasses.replace(SMALL, n=300, epochs=1, **overrides)
    configs = [dataclasses.replace(base, dataset=d, seed=s) for d, s in (("brackets", 0), ("dyck2", 1))]
    reports = next(GrammarGroup(configs).epochs())
    for member, config in enumerate(configs):
        assert_same_answers(reports[member], next(GrammarRun(config).epochs()))


def test_the_grammar_task_names_its_group_and_fuses_on_cpus():
    from rnnbench.tasks import get_task

    task = get_task("grammar")
    assert task.load("fused") is GrammarGroup and task.fuse_on_cpu is True
    assert get_task("imdb").fuse_on_cpu is False  # BENCHMARKS.md: fusing the classifiers does not pay on 2 cores


def test_the_benchmark_runs_tiny(tmp_path):
    """benchmarks/bench_grammar_group.py end to end on a tiny grid, so the GPU session's grammar step is known to work."""
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "b.json"
    args = ["--members", "4", "--n", "200", "--serial-members", "0", "60", "--threads", "1", "--width", "4", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_grammar_group", *args],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["fused_per_grammar"][0]["member_epochs_per_s"] > 0 and results["fused"][0]["members"] == 4
    assert len(results["serial"]) == len(results["reference"]) == 2 and results["backward"][0]["autograd_over_hand"] > 0


@pytest.mark.slow  # torch.compile builds its kernels first: ~1 min on 2 cores
def test_compiled_cells_train_what_eager_ones_train():
    """compile=True (the LSTM's per-step elementwise work as torch.compile'd kernels, for GPUs) on
    the CPU: the same metrics as the eager group, to rounding."""
    configs = [dataclasses.replace(SMALL, n=300, epochs=1, seed=s, dataset=d) for s, d in ((0, "brackets"), (1, "ndfa"))]
    eager = next(GrammarGroup(configs).epochs())
    compiled = next(GrammarGroup([dataclasses.replace(c, compile=True) for c in configs]).epochs())
    for member in (0, 1):
        assert_same_answers(compiled[member], eager[member])


class WiderSteps(GrammarGroup):
    """Every training step padded past `static_width`, as under cuda_graphs (which needs a GPU)."""

    def fused_step(self, batch, lengths):
        extra = static_width(batch.shape[0]) + 3 - batch.shape[0]
        return super().fused_step(torch.nn.functional.pad(batch, (0, 0, 0, 0, 0, extra), value=PAD), lengths)


@pytest.mark.parametrize("mask_padding", [True, False])
def test_steps_padded_wider_train_what_tight_steps_train(grouped, mask_padding):
    """cuda_graphs pads each step to one of a few widths: the padding must not change what any member
    learns (its loss sums run over time first, its mean over its own batch's width)."""
    configs = [dataclasses.replace(c, mask_padding=mask_padding) for c in mixed()]
    tight = grouped if mask_padding else list(GrammarGroup(configs).epochs())
    wide = list(WiderSteps(configs).epochs())
    assert [sorted(epoch) for epoch in wide] == [sorted(epoch) for epoch in tight]
    for wide_epoch, tight_epoch in zip(wide, tight):
        for member, metrics in tight_epoch.items():
            assert_same_answers(wide_epoch[member], metrics)


def test_cuda_graphs_without_a_gpu_is_a_one_line_error():
    with pytest.raises(ConfigError, match="cuda_graphs needs a CUDA device, not cpu; run on a GPU or set cuda_graphs false"):
        GrammarGroup([dataclasses.replace(SMALL, n=100, cuda_graphs=True)])
