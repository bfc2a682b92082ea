"""Variable-length sequences as compact arrays, and the batches cut from them.

Bucketing is the loop's main speed-up: IMDB reviews range from a handful to ~2,500 tokens, so a
random batch padded to its longest review is ~70% padding, while a batch of similar lengths is ~1%.

Batches are made for a *group* of members (trial configurations trained together, see
rnnbench.train.group) whose batches must have the same shape at every step; a solo run is a group
of one and gets its batches from the same function, so a member's batches never depend on which
group it trains in.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from rnnbench.data.vocab import PAD
from rnnbench.errors import ConfigError

BATCHES_PER_BUCKET = 4  # a bucket holds this many batches of similar-length sequences


@dataclass(frozen=True)
class Sequences:
    """`n` token sequences stored back to back in one int32 array; sequence i is
    `tokens[offsets[i]:offsets[i + 1]]`. Labels are optional (language models have none)."""

    tokens: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray | None = None

    @classmethod
    def from_lists(cls, seqs: list[list[int]], labels: list[int] | None = None) -> Sequences:
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter((t for s in seqs for t in s), dtype=np.int32, count=int(offsets[-1]))
        return cls(flat, offsets, None if labels is None else np.asarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @functools.cached_property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, index: np.ndarray) -> Sequences:
        """A compact copy holding only the sequences at `index`, in that order."""
        index = np.asarray(index, dtype=np.int64)
        starts, lengths = self.offsets[index], self.lengths[index]
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        positions = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        labels = None if self.labels is None else self.labels[index]
        return Sequences(self.tokens[positions], offsets, labels)

    def pad(self, index: np.ndarray, static: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The sequences at `index` (any shape, e.g. `[B]` or a group's `[K, B]`) as an int64
        `[..., T]` array padded with PAD to the longest (at least one position), and their lengths.
        `static`: padded further, to `static_width` of the longest."""
        index = np.asarray(index)
        starts = self.offsets[index]
        lengths = self.offsets[index + 1] - starts  # not self.lengths[index]: a step reads a few of n lengths
        width = max(int(lengths.max()), 1)
        width = static_width(width) if static else width
        positions = starts[..., None] + np.arange(width)
        inside = np.arange(width) < lengths[..., None]
        gathered = self.tokens[np.minimum(positions, len(self.tokens) - 1)]
        return np.where(inside, gathered, PAD).astype(np.int64), lengths


def static_width(width: int) -> int:
    """`width` rounded up to one of 8 widths per doubling (..., 15, 16, 18, 20, ..., 30, 32, 36, ...):
    at most 1/8 more padding. A run replaying its steps from CUDA graphs (rnnbench.graphs) needs a
    graph per width, and IMDB's lengths (up to ~2,500) then take 74 widths."""
    if width <= 16:
        return width
    unit = 1 << (width.bit_length() - 4)
    return -(-width // unit) * unit


def group_batches(
    mode: str,
    lengths: np.ndarray,
    batch_size: int,
    order_rng: np.random.Generator,
    member_rngs: list[np.random.Generator],
) -> list[np.ndarray]:
    """One epoch of batches for K members: a list of steps, each an int64 `[K, b]` array whose row
    k is member k's batch (indices into `lengths`). Every member sees every sequence once.

    `bucket`: the sequences, sorted by length (ties in an order drawn by `order_rng`), are cut
    into buckets of BATCHES_PER_BUCKET * batch_size; `order_rng`, shared by the group, decides
    which bucket (and which of its batch slots) each step takes; each member's own rng shuffles
    every bucket, which decides the sequences of its batches. So at every step all members draw
    from the same narrow range of lengths and pad little, while each keeps its own randomness.
    `random`: each member's own shuffled batches (the step's common width is then the longest of
    all K batches: wasteful, kept to measure what bucketing saves)."""
    n = len(lengths)
    if mode == "random":
        orders = np.stack([rng.permutation(n) for rng in member_rngs])
        return [orders[:, start : start + batch_size] for start in range(0, n, batch_size)]
    if mode != "bucket":
        raise ConfigError(f"unknown batching {mode!r}; use 'bucket' or 'random'")
    order = order_rng.permutation(n)
    order = order[np.argsort(lengths[order], kind="stable")]
    rows = batch_size * BATCHES_PER_BUCKET
    buckets = [order[start : start + rows] for start in range(0, n, rows)]
    slots = [(b, start) for b, bucket in enumerate(buckets) for start in range(0, len(bucket), batch_size)]
    shuffled = [[bucket[rng.permutation(len(bucket))] for bucket in buckets] for rng in member_rngs]
    return [
        np.stack([member[b][start : start + batch_size] for member in shuffled])
        for b, start in (slots[i] for i in order_rng.permutation(len(slots)))
    ]


def order_rng(order_seed: int, epoch: int) -> np.random.Generator:
    """The generator that orders one epoch's steps, shared by all members of a group. A function of
    (order_seed, epoch) alone, so a checkpoint needs no state for it and a resumed run draws the same."""
    return np.random.default_rng([order_seed, epoch])


def make_batches(mode: str, lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A solo run's batches, from one generator that orders the steps and shuffles the buckets."""
    return [step[0] for step in group_batches(mode, lengths, batch_size, rng, [rng])]


def token_batches(lengths: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """Evaluation batches: length-sorted indices cut greedily so that rows * longest <= max_tokens
    (a sequence longer than max_tokens gets a batch of its own). No randomness: every run, solo or
    in a group, evaluates on the same batches."""
    order = np.argsort(lengths, kind="stable")
    batches, start = [], 0
    for end in range(1, len(order) + 1):
        if end - start > 1 and (end - start) * lengths[order[end - 1]] > max_tokens:
            batches.append(order[start : end - 1])
            start = end - 1
    if start < len(order):
        batches.append(order[start:])
    return batches


def padding_share(steps: list[np.ndarray], lengths: np.ndarray) -> float:
    """Share of the padded `[K, b, width]` token slots that are padding, over all steps."""
    real = sum(int(lengths[step].sum()) for step in steps)
    padded = sum(step.size * int(lengths[step].max()) for step in steps)
    return 1 - real / padded
