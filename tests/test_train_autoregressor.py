import copy
import math

import numpy as np
import pytest
import torch

from rnnbench import metrics
from rnnbench.data.grammars import END, START, GrammarData, is_valid
from rnnbench.data.vocab import PAD
from rnnbench.errors import ConfigError
from rnnbench.sampling import pick_tokens, sample
from rnnbench.train.autoregressor import GrammarConfig, GrammarRun

TIMING = {metrics.EPOCH_S, metrics.TOKENS_PER_S}
SMALL = dict(n=2_000, epochs=2, temperatures=(0.0, 1.0), num_samples=20, max_len=30, device="cpu")


def _untimed(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in TIMING}


@pytest.fixture(scope="module")
def brackets_data() -> GrammarData:
    return GrammarData.generate("brackets", SMALL["n"], seed=0, n_held_out=SMALL["num_samples"])


@pytest.fixture(scope="module")
def trained(brackets_data) -> GrammarRun:
    run = GrammarRun(GrammarConfig(**{**SMALL, "epochs": 1}), brackets_data)
    list(run.epochs())
    return run


def test_metrics_names_and_learning(brackets_data):
    results = list(GrammarRun(GrammarConfig(**{**SMALL, "epochs": 3}), brackets_data).epochs())
    assert [r[metrics.EPOCH] for r in results] == [1, 2, 3]
    last = results[-1]
    for t in (0.0, 1.0):
        for name in (metrics.synth_acc(t), metrics.compl_acc(t)):
            assert 0 <= last[name] <= 1
        for example in (metrics.synth_example, metrics.compl_example):
            valid, invalid = last[example(t, True)], last[example(t, False)]
            assert valid is None or is_valid("brackets", valid)
            assert invalid is None or not is_valid("brackets", invalid) or len(invalid) >= SMALL["max_len"]
    assert not last[metrics.DIVERGED] and last[metrics.GRAD_NORM] > 0 and last[metrics.TOKENS_PER_S] > 0
    # the uniform guess over 6 tokens costs log 6 = 1.79 nats a token; the grammar's entropy ~0.6
    assert last[metrics.LOSS_PER_TOKEN] < results[0][metrics.LOSS_PER_TOKEN] < math.log(6)
    assert last[metrics.synth_acc(0.0)] >= 0.9


def test_same_seed_same_metrics_and_samples(brackets_data):
    first = [_untimed(r) for r in GrammarRun(GrammarConfig(**SMALL), brackets_data).epochs()]
    second = [_untimed(r) for r in GrammarRun(GrammarConfig(**SMALL), brackets_data).epochs()]
    assert first == second
    other = [_untimed(r) for r in GrammarRun(GrammarConfig(**{**SMALL, "seed": 1}), brackets_data).epochs()]
    assert other[0][metrics.TRAIN_LOSS_SUM] != first[0][metrics.TRAIN_LOSS_SUM]


def test_checkpoint_and_continue_equals_uninterrupted(brackets_data, tmp_path):
    straight = GrammarRun(GrammarConfig(**SMALL), brackets_data)
    expected = [_untimed(r) for r in straight.epochs()]

    first = GrammarRun(GrammarConfig(**SMALL), brackets_data)
    assert _untimed(next(first.epochs())) == expected[0]
    first.save(tmp_path / "run.pt")
    torch.manual_seed(123)  # whatever happens to the global RNG in between must not matter
    resumed = GrammarRun.restore(tmp_path / "run.pt", data=brackets_data)
    assert resumed.epoch == 1 and resumed.config == GrammarConfig(**SMALL)
    assert [_untimed(r) for r in resumed.epochs()] == expected[1:]
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_restore_with_more_epochs(brackets_data, tmp_path):
    run = GrammarRun(GrammarConfig(**{**SMALL, "epochs": 1}), brackets_data)
    list(run.epochs())
    run.save(tmp_path / "run.pt")
    longer = GrammarRun.restore(tmp_path / "run.pt", GrammarConfig(**SMALL), brackets_data)
    assert [r[metrics.EPOCH] for r in longer.epochs()] == [2]


def test_batched_sampling_equals_one_sequence_at_a_time(trained, brackets_data):
    held = brackets_data.held_out
    prefixes = [[START]] + [held.tokens[held.offsets[i] : held.offsets[i + 1] - 1].tolist()[: 1 + i] for i in range(8)]
    batched = sample(trained.model, prefixes, 0.0, 25, END)
    alone = [sample(trained.model, [p], 0.0, 25, END)[0] for p in prefixes]
    assert batched == alone
    assert any(row and row[-1] == END for row in batched)  # the comparison covers stopping, too
    assert all(len(row) == 25 for row in batched if END not in row)


def test_sampling_steps_one_token_at_a_time(trained):
    widths, model = [], trained.model  # `model` is a copy of the run's weights: take it once
    hook = model.register_forward_hook(lambda module, args, output: widths.append(args[0].shape[1]))
    try:
        rows = sample(model, [[START]] * 7 + [[START, 4, 4, 4]], 1.0, 20, END, torch.Generator().manual_seed(0))
    finally:
        hook.remove()
    assert len(rows) == 8 and set(widths) == {1}
    assert len(widths) <= 3 + 20  # the longest prefix, then at most max_len steps


def test_sampling_is_seeded(trained):
    def draw(seed: int) -> list[list[int]]:
        return sample(trained.model, [[START]] * 30, 1.0, 30, END, torch.Generator().manual_seed(seed))

    assert draw(0) == draw(0)
    assert draw(0) != draw(1)


def test_pick_tokens_temperature():
    logits = torch.tensor([[0.0, 1.0, 2.0]]).repeat(20_000, 1)
    assert pick_tokens(logits, 0.0).eq(2).all()
    gen = torch.Generator().manual_seed(0)
    shares = torch.bincount(pick_tokens(logits, 1.0, gen), minlength=3) / len(logits)
    assert shares.tolist() == pytest.approx(torch.softmax(logits[0], 0).tolist(), abs=0.01)
    cold = torch.bincount(pick_tokens(logits, 0.25, gen), minlength=3) / len(logits)
    assert cold[2] == pytest.approx(torch.softmax(logits[0] / 0.25, 0)[2].item(), abs=0.01) and cold[2] > shares[2]


@pytest.mark.parametrize("mask_padding", [True, False])
def test_masking_switch_decides_which_targets_the_loss_counts(brackets_data, mask_padding):
    """One batch holding the whole training set, so the epoch's loss is the loss of that batch at
    the initial weights: masked, the mean over real targets only; unmasked, the mean over every
    target including the `.pad` ones behind `.end` (computed here independently)."""
    config = GrammarConfig(**{**SMALL, "epochs": 1, "batch_size": SMALL["n"], "mask_padding": mask_padding})
    run = GrammarRun(config, brackets_data)
    initial = copy.deepcopy(run.model)
    result = next(run.epochs())
    padded, _ = brackets_data.train.pad(np.arange(SMALL["n"]))
    batch = torch.from_numpy(padded)
    with torch.no_grad():
        logits, _ = initial(batch[:, :-1])
    targets = batch[:, 1:].flatten()
    per_token = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets, reduction="none")
    real = targets != PAD
    assert 0 < real.sum() < len(targets)  # the batch really holds padding targets
    expected = per_token[real].mean() if mask_padding else per_token.mean()
    assert result[metrics.TRAIN_LOSS_SUM] == pytest.approx(expected.item(), rel=1e-5)
    # the reported loss per token counts real tokens either way
    assert result[metrics.LOSS_PER_TOKEN] == pytest.approx(per_token[real].mean().item(), rel=1e-5)


def test_gradient_clipping_bounds_each_step(brackets_data):
    run = GrammarRun(GrammarConfig(**{**SMALL, "epochs": 1, "clip_grad": 1e-4}), brackets_data)
    before = torch.cat([p.detach().flatten().clone() for p in run.model.parameters()])
    result = next(run.epochs())
    after = torch.cat([p.detach().flatten() for p in run.model.parameters()])
    batches = math.ceil(SMALL["n"] / run.config.batch_size)  # each SGD step moves at most lr * clip
    assert (after - before).norm() <= run.config.lr * 1e-4 * batches * (1 + 1e-4)
    assert result[metrics.GRAD_NORM] > 1e-4  # reported before clipping


def test_divergence_stops_cleanly(tmp_path):
    config = GrammarConfig(n=200, lr=1e300, epochs=3, temperatures=(0.0, 1.0), num_samples=5, device="cpu")
    run = GrammarRun(config)
    results = list(run.epochs())
    assert len(results) == 1 and results[0][metrics.DIVERGED]
    assert results[0][metrics.synth_acc(1.0)] == 0.0 and results[0][metrics.synth_example(1.0, False)] is None
    run.save(tmp_path / "run.pt")
    assert list(GrammarRun.restore(tmp_path / "run.pt").epochs()) == []  # a diverged run stays stopped


def test_ndfa_runs():
    result = next(GrammarRun(GrammarConfig(dataset="ndfa", **{**SMALL, "epochs": 1})).epochs())
    assert result[metrics.EPOCH] == 1 and math.log(15) > result[metrics.LOSS_PER_TOKEN] > 0


@pytest.mark.parametrize(
    "override, message",
    [
        ({"dataset": "xml"}, "unknown grammar"),
        ({"n": 0}, "n must be > 0"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"lr": -1.0}, "lr must be > 0"),
        ({"epochs": 0}, "epochs must be > 0"),
        ({"batch_size": 0}, "batch_size must be > 0"),
        ({"temperatures": (0.5, -0.1)}, "temperatures must be >= 0"),
        ({"temperatures": ()}, "temperatures must be >= 0"),
        ({"max_len": 0}, "max_len must be > 0"),
        ({"num_samples": 0}, "num_samples must be > 0"),
        ({"clip_grad": 0.0}, "clip_grad must be > 0"),
        ({"num_layers": 4}, "num_layers must be 1, 2 or 3"),
        ({"batching": "sorted"}, "unknown batching"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"device": "tpu"}, "unknown device"),
        ({"n": 10, "batch_size": 11}, "batch_size 11 is larger than the training set"),
    ],
)
def test_bad_config(override, message):
    with pytest.raises(ConfigError, match=message) as error:
        GrammarConfig(**override)
    assert "\n" not in str(error.value)


def test_data_must_match_config(brackets_data):
    with pytest.raises(ConfigError, match="config.dataset is 'ndfa'"):
        GrammarRun(GrammarConfig(dataset="ndfa", **SMALL), brackets_data)


def test_temperatures_from_a_list_become_floats():
    assert GrammarConfig(temperatures=[0, 1]).temperatures == (0.0, 1.0)


def test_a_collapsed_run_with_a_finite_loss_is_diverged_and_stops(tmp_path):
    """At lr 1e8 the loss stays finite (the weights do too) but the model is far worse than a
    uniform guess: the run is diverged after its first epoch, stays stopped, and is still sampled."""
    config = GrammarConfig(**{**SMALL, "n": 500, "lr": 1e8, "epochs": 3})
    run = GrammarRun(config)
    results = list(run.epochs())
    assert len(results) == 1 and results[0][metrics.DIVERGED] is True
    assert math.isfinite(results[0][metrics.LOSS_PER_TOKEN]) and results[0][metrics.LOSS_PER_TOKEN] > math.log(6)
    assert 0 <= results[0][metrics.synth_distinct(1.0)] <= results[0][metrics.synth_acc(1.0)]
    run.save(tmp_path / "run.pt")
    assert list(GrammarRun.restore(tmp_path / "run.pt").epochs()) == []


def test_distinct_samples_tell_a_healthy_model_from_a_collapsed_one():
    """At lr 1e3 the model says "()" every time: 100% valid, one distinct sample. A healthy model
    (one epoch at lr 1.0, enough updates to move past "()") samples several different words."""
    # order_seed 1: with 0, this epoch's last steps all come from the shortest bucket ("()" only), and
    # every seed then ends the epoch near "()" (seeds 0-3: 2-3 distinct of 50 against 5-10 with 1)
    config = dict(SMALL, n=5000, batch_size=16, epochs=1, temperatures=(0.0, 1.0), num_samples=50, order_seed=1)
    data = GrammarData.generate("brackets", config["n"], seed=0, n_held_out=config["num_samples"])
    healthy = next(GrammarRun(GrammarConfig(**config), data).epochs())
    collapsed = next(GrammarRun(GrammarConfig(**{**config, "lr": 1e3}), data).epochs())
    assert not healthy[metrics.DIVERGED] and collapsed[metrics.DIVERGED]
    for t in config["temperatures"]:
        for result in (healthy, collapsed):
            assert 0 <= result[metrics.synth_distinct(t)] <= result[metrics.synth_acc(t)]
    distinct = metrics.synth_distinct(1.0)
    assert collapsed[distinct] <= 1 / config["num_samples"] and healthy[distinct] >= 5 / config["num_samples"]


def test_held_out_loss_is_finite_and_falls():
    """Small batches (many updates) and 50 held-out words, so the fall is learning, not noise."""
    config = GrammarConfig(**{**SMALL, "batch_size": 8, "temperatures": (1.0,), "num_samples": 50})
    results = list(GrammarRun(config).epochs())
    first, last = (r[metrics.HELD_OUT_LOSS_PER_TOKEN] for r in results)
    assert math.isfinite(first) and 0 < last < first < math.log(6)


def test_held_out_loss_counts_every_real_target_once(trained, brackets_data):
    """The batched score equals the per-string cross-entropies summed and divided by the targets."""
    held, total, targets, model = brackets_data.held_out, 0.0, 0, trained.model
    with torch.no_grad():
        for i in range(len(held)):
            tokens = torch.from_numpy(held.tokens[held.offsets[i] : held.offsets[i + 1]].astype("int64"))[None]
            logits, _ = model(tokens[:, :-1])
            total += torch.nn.functional.cross_entropy(logits[0], tokens[0, 1:], reduction="sum").item()
            targets += tokens.shape[1] - 1
    assert trained.group._held_out_loss() == [pytest.approx(total / targets, rel=1e-5)]


def test_reported_metrics_are_the_ones_reported(brackets_data):
    config = GrammarConfig(**{**SMALL, "epochs": 1})
    result = next(GrammarRun(config, brackets_data).epochs())
    assert set(config.reported_metrics()) <= set(result)
    assert {metrics.HELD_OUT_LOSS_PER_TOKEN, metrics.synth_distinct(0.0), metrics.synth_distinct(1.0)} <= set(
        config.reported_metrics()
    )
