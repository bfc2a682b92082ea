"""The study's two synthetic grammars: generators, validators and a character vocabulary.

`brackets` draws Dyck words, `ndfa` draws `s` + one word repeated + `s`. Both generators are
vectorised draws from a numpy Generator, so a seed gives the same data on every machine and run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from rnnbench.data.batching import PAD, Sequences
from rnnbench.errors import ConfigError

GRAMMARS = ("brackets", "ndfa")
SPECIALS = (".pad", ".start", ".end", ".unk")
START, END, UNK = 1, 2, 3
assert SPECIALS.index(".pad") == PAD

P_OPEN = 7 / 16  # brackets: chance of another `(` while some are open; mean word length 1 + 8 = 9
NDFA_WORDS = ("abc!", "uvw!", "klm!")
P_STOP = 1 / 4  # ndfa: chance to stop before each repetition, so `ss` is a quarter of all words
_NDFA = re.compile("s(?:" + "|".join(f"(?:{re.escape(w)})*" for w in NDFA_WORDS) + ")s")
_CHARS = {"brackets": "()", "ndfa": "".join(sorted(set("s" + "".join(NDFA_WORDS))))}


def check_grammar(name: str) -> None:
    if name not in GRAMMARS:
        raise ConfigError(f"unknown grammar {name!r}; choose one of {', '.join(GRAMMARS)}")


def brackets(n: int, rng: np.random.Generator) -> list[str]:
    """n Dyck words: `(`, then `(` with probability 7/16 or `)` otherwise until all are closed.

    After its forced `(`, word i closes the first time one shared walk of +1/-1 steps reaches
    depth -i, so a single running minimum over that walk cuts all n words at once."""
    steps = np.empty(0, dtype=np.int8)
    while True:  # ~8 steps a word are needed; draw more in the rare case that 9 are not enough
        more = np.where(rng.random(9 * n + 64) < P_OPEN, 1, -1).astype(np.int8)
        steps = np.concatenate([steps, more])
        lowest = -np.minimum.accumulate(np.cumsum(steps, dtype=np.int64))
        if lowest[-1] >= n:
            break
    ends = np.searchsorted(lowest, np.arange(1, n + 1)) + 1
    starts = np.concatenate([[0], ends[:-1]])
    walk = np.where(steps > 0, ord("("), ord(")")).astype(np.uint8).tobytes().decode("ascii")
    return ["(" + walk[a:b] for a, b in zip(starts.tolist(), ends.tolist())]


def ndfa(n: int, rng: np.random.Generator) -> list[str]:
    """n words `s` + w * k + `s`, w one of NDFA_WORDS, k >= 0 with P(k) = (3/4)^k / 4."""
    words = rng.integers(len(NDFA_WORDS), size=n)
    repeats = rng.geometric(P_STOP, size=n) - 1
    return ["s" + NDFA_WORDS[w] * k + "s" for w, k in zip(words.tolist(), repeats.tolist())]


def generate(name: str, n: int, rng: np.random.Generator) -> list[str]:
    check_grammar(name)
    return brackets(n, rng) if name == "brackets" else ndfa(n, rng)


def is_valid(name: str, text: str) -> bool:
    """Whether `text` is in the grammar's language.

    brackets: non-empty, balanced, depth never below zero (any Dyck word, e.g. `()()`, although the
    generator only draws words that close once, at the end). The empty word is refused: the
    generator never makes it, and a model that emits `.end` at once has learned nothing.
    ndfa: `s`, zero or more repetitions of one single word of NDFA_WORDS, `s`."""
    check_grammar(name)
    if name == "ndfa":
        return _NDFA.fullmatch(text) is not None
    depth = 0
    for char in text:
        if char not in "()":
            return False
        depth += 1 if char == "(" else -1
        if depth < 0:
            return False
    return depth == 0 and text != ""


@dataclass(frozen=True)
class Vocab:
    """`.pad`=0, `.start`=1, `.end`=2, `.unk`=3, then the grammar's characters in sorted order."""

    chars: str

    @classmethod
    def for_grammar(cls, name: str) -> "Vocab":
        check_grammar(name)
        return cls(_CHARS[name])

    def __len__(self) -> int:
        return len(SPECIALS) + len(self.chars)

    def encode(self, texts: list[str]) -> Sequences:
        """Each text as `.start` + its characters + `.end`, all in one flat array."""
        lengths = np.fromiter((len(t) + 2 for t in texts), dtype=np.int64, count=len(texts))
        offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        tokens = np.empty(int(offsets[-1]), dtype=np.int32)
        is_char = np.ones(len(tokens), dtype=bool)
        is_char[offsets[:-1]] = is_char[offsets[1:] - 1] = False
        tokens[offsets[:-1]], tokens[offsets[1:] - 1] = START, END
        table = np.full(256, UNK, dtype=np.int32)
        table[np.frombuffer(self.chars.encode("ascii"), dtype=np.uint8)] = np.arange(len(SPECIALS), len(self))
        tokens[is_char] = table[np.frombuffer("".join(texts).encode("ascii"), dtype=np.uint8)]
        return Sequences(tokens, offsets)

    def decode(self, ids: list[int]) -> str:
        """Characters as themselves, special tokens as `<.name>` so an invalid sample shows them."""
        first = len(SPECIALS)
        return "".join(self.chars[i - first] if i >= first else f"<{SPECIALS[i]}>" for i in ids)


@dataclass(frozen=True)
class GrammarData:
    """Training sequences and an independent held-out draw whose first halves are completed."""

    grammar: str
    vocab: Vocab
    train: Sequences
    held_out: Sequences

    @classmethod
    def generate(cls, name: str, n: int, seed: int, n_held_out: int = 100) -> "GrammarData":
        """Training and held-out sets come from separate child streams of `seed`, so changing n
        changes neither the held-out set nor any other run's data."""
        vocab = Vocab.for_grammar(name)
        train_rng, held_out_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
        return cls(
            name, vocab, vocab.encode(generate(name, n, train_rng)), vocab.encode(generate(name, n_held_out, held_out_rng))
        )
