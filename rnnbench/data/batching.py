"""Variable-length sequences as compact arrays, and the batches cut from them.

Bucketing is the loop's main speed-up: IMDB reviews range from a handful to ~2,500 tokens, so a
random batch padded to its longest review is ~70% padding, while a batch of similar lengths is ~1%.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from rnnbench.data.vocab import PAD
from rnnbench.errors import ConfigError

BatchMode = Literal["bucket", "random"]


@dataclass(frozen=True)
class Sequences:
    """`n` token sequences stored back to back in one int32 array; sequence i is
    `tokens[offsets[i]:offsets[i + 1]]`. Labels are optional (language models have none)."""

    tokens: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray | None = None

    @classmethod
    def from_lists(cls, seqs: list[list[int]], labels: list[int] | None = None) -> "Sequences":
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter((t for s in seqs for t in s), dtype=np.int32, count=int(offsets[-1]))
        return cls(flat, offsets, None if labels is None else np.asarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, index: np.ndarray) -> "Sequences":
        """A compact copy holding only the sequences at `index`, in that order."""
        index = np.asarray(index, dtype=np.int64)
        starts, lengths = self.offsets[index], self.lengths[index]
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        positions = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        labels = None if self.labels is None else self.labels[index]
        return Sequences(self.tokens[positions], offsets, labels)

    def pad(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The sequences at `index` as an int64 `[B, T]` array padded with PAD to the longest,
        and their lengths."""
        starts, lengths = self.offsets[index], self.lengths[index]
        width = int(lengths.max())
        positions = starts[:, None] + np.arange(width)
        inside = np.arange(width) < lengths[:, None]
        gathered = self.tokens[np.minimum(positions, len(self.tokens) - 1)]
        return np.where(inside, gathered, PAD).astype(np.int64), lengths


def bucket_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, max_tokens: int | None = None
) -> list[np.ndarray]:
    """Sort by length (ties in random order), cut into batches of up to `batch_size` sequences and
    at most `max_tokens` padded tokens, then shuffle the batch order."""
    order = rng.permutation(len(lengths))
    order = order[np.argsort(lengths[order], kind="stable")]
    if max_tokens is None:
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    else:
        batches = _cut_by_tokens(order, lengths, batch_size, max_tokens)
    return [batches[i] for i in rng.permutation(len(batches))]


def _cut_by_tokens(order: np.ndarray, lengths: np.ndarray, batch_size: int, max_tokens: int) -> list[np.ndarray]:
    """Greedy cut of length-sorted indices so that rows * longest <= max_tokens (a sequence longer
    than max_tokens gets a batch of its own)."""
    batches, start = [], 0
    for end in range(1, len(order) + 1):
        rows, longest = end - start, lengths[order[end - 1]]
        if rows > 1 and (rows > batch_size or rows * longest > max_tokens):
            batches.append(order[start : end - 1])
            start = end - 1
    if start < len(order):
        batches.append(order[start:])
    return batches


def random_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Plain shuffled batches, kept to measure what bucketing saves."""
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def make_batches(
    mode: str, lengths: np.ndarray, batch_size: int, rng: np.random.Generator, max_tokens: int | None = None
) -> list[np.ndarray]:
    if mode == "bucket":
        return bucket_batches(lengths, batch_size, rng, max_tokens)
    if mode == "random":
        return random_batches(len(lengths), batch_size, rng)
    raise ConfigError(f"unknown batching {mode!r}; use 'bucket' or 'random'")
