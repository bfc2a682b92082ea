"""Flat-array sequences, padding and the two batching modes."""

from __future__ import annotations

import numpy as np
import pytest

from rnnbench.data.batching import PAD, Sequences, bucket_batches, make_batches, random_batches
from rnnbench.errors import ConfigError


@pytest.fixture()
def seqs() -> Sequences:
    rng = np.random.default_rng(0)
    lists = [list(rng.integers(1, 50, rng.integers(1, 30))) for _ in range(200)]
    return Sequences.from_lists(lists, labels=[i % 2 for i in range(200)])


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


def test_bucket_batches_cover_everything_once_with_similar_lengths(seqs):
    lengths = seqs.lengths
    batches = bucket_batches(lengths, 16, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(seqs)))
    assert max(len(b) for b in batches) == 16
    # sorted cut: no batch's range of lengths overlaps another's except at the edges
    spans = sorted((lengths[b].min(), lengths[b].max()) for b in batches)
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in zip(spans, spans[1:]))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    random_padded = sum(len(b) * lengths[b].max() for b in random_batches(len(seqs), 16, np.random.default_rng(1)))
    assert padded < random_padded


def test_batch_order_depends_on_the_seed_only(seqs):
    first = bucket_batches(seqs.lengths, 16, np.random.default_rng(3))
    again = bucket_batches(seqs.lengths, 16, np.random.default_rng(3))
    other = bucket_batches(seqs.lengths, 16, np.random.default_rng(4))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_max_tokens_caps_padded_size(seqs):
    batches = bucket_batches(seqs.lengths, 64, np.random.default_rng(0), max_tokens=100)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(seqs)))
    assert all(len(b) * seqs.lengths[b].max() <= 100 or len(b) == 1 for b in batches)


def test_unknown_batching_mode():
    with pytest.raises(ConfigError, match="bucket"):
        make_batches("sorted", np.ones(3, dtype=np.int64), 2, np.random.default_rng(0))
