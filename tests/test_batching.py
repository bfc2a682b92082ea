"""Flat-array sequences, padding, and the batches of a group of members (a solo run is a group of
one): every member sees every sequence once, shapes agree at every step, bucketing keeps padding
low, and a member's batches do not depend on which group it is in."""

from __future__ import annotations

import numpy as np
import pytest

from rnnbench.data.batching import (
    BATCHES_PER_BUCKET,
    PAD,
    Sequences,
    group_batches,
    make_batches,
    order_rng,
    padding_share,
    static_width,
    token_batches,
)  # fmt: skip
from rnnbench.errors import ConfigError


@pytest.fixture()
def seqs() -> Sequences:
    rng = np.random.default_rng(0)
    lists = [list(rng.integers(1, 50, rng.integers(1, 300))) for _ in range(500)]
    return Sequences.from_lists(lists, labels=[i % 2 for i in range(500)])


def rngs(*seeds: int) -> list[np.random.Generator]:
    return [np.random.default_rng(seed) for seed in seeds]


def test_pad_and_subset_keep_every_token(seqs):
    index = np.array([5, 0, 17])
    tokens, lengths = seqs.pad(index)
    assert tokens.shape == (3, lengths.max())
    for row, i in enumerate(index):
        original = seqs.tokens[seqs.offsets[i] : seqs.offsets[i + 1]]
        assert np.array_equal(tokens[row, : lengths[row]], original)
        assert (tokens[row, lengths[row] :] == PAD).all()
    sub = seqs.subset(index)
    assert np.array_equal(sub.pad(np.arange(3))[0], tokens)
    assert np.array_equal(sub.labels, seqs.labels[index])
    grouped, grouped_lengths = seqs.pad(np.stack([index, index[::-1]]))  # a group's [K, b] step
    assert grouped.shape == (2, 3, lengths.max()) and np.array_equal(grouped[0], tokens)
    assert np.array_equal(grouped_lengths[1], lengths[::-1])


def test_static_widths_are_few_and_pad_by_at_most_an_eighth(seqs):
    widths = [static_width(w) for w in range(1, 2501)]
    assert all(w <= s <= w * 1.125 for w, s in zip(range(1, 2501), widths))
    assert widths[:16] == list(range(1, 17)) and static_width(17) == 18 and static_width(33) == 36
    assert len(set(widths)) == 74  # what IMDB's lengths up to ~2,500 need: one CUDA graph each
    index = np.array([[5, 0], [17, 3]])
    tight, lengths = seqs.pad(index)
    wide, wide_lengths = seqs.pad(index, static=True)
    assert wide.shape[-1] == static_width(tight.shape[-1]) > tight.shape[-1]
    assert np.array_equal(wide[..., : tight.shape[-1]], tight) and (wide[..., tight.shape[-1] :] == PAD).all()
    assert np.array_equal(wide_lengths, lengths)


def test_an_empty_sequence_pads_to_one_position():
    tokens, lengths = Sequences.from_lists([[5], [], []]).pad(np.array([1, 2]))
    assert tokens.shape == (2, 1) and (tokens == PAD).all() and lengths.tolist() == [0, 0]


@pytest.mark.parametrize("mode", ["bucket", "random"])
def test_every_member_sees_every_sequence_once_in_batches_of_one_shape(seqs, mode):
    steps = group_batches(mode, seqs.lengths, 16, order_rng(0, 0), rngs(1, 2, 3))
    assert all(step.shape[0] == 3 and step.shape[1] <= 16 for step in steps)
    assert sum(step.shape[1] for step in steps) == len(seqs)
    for k in range(3):
        assert sorted(np.concatenate([step[k] for step in steps]).tolist()) == list(range(len(seqs)))
    assert not np.array_equal(steps[0][0], steps[0][1])  # members have their own batches


def test_bucketed_steps_draw_from_one_narrow_length_range(seqs):
    lengths = seqs.lengths
    steps = group_batches("bucket", lengths, 16, order_rng(0, 0), rngs(1, 2, 3, 4))
    rows = 16 * BATCHES_PER_BUCKET
    sorted_lengths = np.sort(lengths)
    buckets = [(sorted_lengths[i], sorted_lengths[min(i + rows, len(lengths)) - 1]) for i in range(0, len(lengths), rows)]
    for step in steps:  # all members of a step fall in one bucket's range of lengths
        lo, hi = lengths[step].min(), lengths[step].max()
        assert any(b_lo <= lo and hi <= b_hi for b_lo, b_hi in buckets)
    random_steps = group_batches("random", lengths, 16, order_rng(0, 0), rngs(1, 2, 3, 4))
    # 500 lengths spread evenly over 1-300 make buckets ~40 tokens wide; IMDB's are far narrower
    assert padding_share(steps, lengths) < 0.15 < 0.4 < padding_share(random_steps, lengths)


@pytest.mark.parametrize("mode", ["bucket", "random"])
def test_a_members_batches_do_not_depend_on_its_group(seqs, mode):
    alone = group_batches(mode, seqs.lengths, 16, order_rng(7, 2), rngs(5))
    grouped = group_batches(mode, seqs.lengths, 16, order_rng(7, 2), rngs(3, 5, 9, 11))
    assert len(alone) == len(grouped)
    assert all(np.array_equal(a[0], g[1]) for a, g in zip(alone, grouped))


def test_batches_depend_on_the_seeds_only(seqs):
    def batches(order_seed: int, seed: int) -> list[np.ndarray]:
        return group_batches("bucket", seqs.lengths, 16, order_rng(order_seed, 0), rngs(seed))

    first, again = batches(0, 3), batches(0, 3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, batches(0, 4)))  # own seed: own batches
    assert not all(np.array_equal(a, b) for a, b in zip(first, batches(1, 3)))  # other step order
    solo = make_batches("bucket", seqs.lengths, 16, np.random.default_rng(3))
    assert sorted(np.concatenate(solo).tolist()) == list(range(len(seqs)))


def test_token_batches_cap_padded_size_and_cover_everything(seqs):
    batches = token_batches(seqs.lengths, max_tokens=1000)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(seqs)))
    assert all(len(b) * seqs.lengths[b].max() <= 1000 or len(b) == 1 for b in batches)


def test_unknown_batching_mode():
    with pytest.raises(ConfigError, match="bucket"):
        group_batches("sorted", np.ones(3, dtype=np.int64), 2, order_rng(0, 0), rngs(0))
