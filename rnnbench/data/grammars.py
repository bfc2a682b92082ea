"""The synthetic grammars as one table: each entry holds an alphabet, a generator and a validator.

A new grammar is one `Grammar` entry in GRAMMARS plus its two functions. Generators are vectorised
draws from a numpy Generator, so a seed gives the same words on every machine and run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rnnbench.data.batching import Sequences
from rnnbench.data.vocab import END, SPECIALS, START, UNK
from rnnbench.errors import ConfigError

P_OPEN = 7 / 16  # brackets: chance of another `(` while some are open; mean word length 1 + 8 = 9
NDFA_WORDS = ("abc!", "uvw!", "klm!")
P_STOP = 1 / 4  # ndfa: chance to stop before each repetition, so `ss` is a quarter of all words
_NDFA = re.compile("s(?:" + "|".join(f"(?:{re.escape(w)})*" for w in NDFA_WORDS) + ")s")


@dataclass(frozen=True)
class Grammar:
    """One language: `generate(n, rng)` draws n words, `is_valid(text)` says whether a text is in
    the language, and the vocabulary is SPECIALS + `alphabet` (sorted)."""

    name: str
    alphabet: str
    generate: Callable[[int, np.random.Generator], list[str]]
    is_valid: Callable[[str], bool]
    description: str


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


def dyck2(n: int, rng: np.random.Generator) -> list[str]:
    """n Dyck-2 words: the shapes `brackets` draws (mean length 9), each pair `()` or `[]` with
    equal chance.

    In a balanced string the openers and closers at one depth (an opener's depth counted after it, a
    closer's before it) alternate, opener first, so a stable sort of all positions by depth puts
    every opener right before its closer: one sort pairs up every bracket of every word."""
    words = brackets(n, rng)
    opens = np.frombuffer("".join(words).encode("ascii"), dtype=np.uint8) == ord("(")
    depth = np.cumsum(np.where(opens, 1, -1))
    pairs = np.argsort(np.where(opens, depth, depth + 1), kind="stable").reshape(-1, 2)
    square = np.zeros(len(opens), dtype=bool)
    square[pairs[:, 0]] = square[pairs[:, 1]] = rng.random(len(pairs)) < 0.5
    chars = np.where(opens, np.where(square, ord("["), ord("(")), np.where(square, ord("]"), ord(")")))
    text = chars.astype(np.uint8).tobytes().decode("ascii")
    ends = np.cumsum([len(w) for w in words]).tolist()
    return [text[a:b] for a, b in zip([0, *ends[:-1]], ends)]


def ndfa(n: int, rng: np.random.Generator) -> list[str]:
    """n words `s` + w * k + `s`, w one of NDFA_WORDS, k >= 0 with P(k) = (3/4)^k / 4."""
    words = rng.integers(len(NDFA_WORDS), size=n)
    repeats = rng.geometric(P_STOP, size=n) - 1
    return ["s" + NDFA_WORDS[w] * k + "s" for w, k in zip(words.tolist(), repeats.tolist())]


def _nested(text: str, closer: dict[str, str]) -> bool:
    """Non-empty, and every character closes the latest open bracket or opens a new one, all
    closed at the end. The empty word is refused: no generator makes it, and a model that emits
    `.end` at once has learned nothing."""
    stack = []
    for char in text:
        if char in closer:
            stack.append(closer[char])
        elif not stack or stack.pop() != char:
            return False
    return text != "" and not stack


def is_brackets(text: str) -> bool:
    """Any non-empty Dyck word, e.g. `()()`, although the generator only draws words that close once."""
    return _nested(text, {"(": ")"})


def is_dyck2(text: str) -> bool:
    """Any non-empty properly nested word over `()` and `[]`: `([])[]` yes, `([)]` no."""
    return _nested(text, {"(": ")", "[": "]"})


def is_ndfa(text: str) -> bool:
    """`s`, zero or more repetitions of one single word of NDFA_WORDS, `s`."""
    return _NDFA.fullmatch(text) is not None


GRAMMARS: dict[str, Grammar] = {
    grammar.name: grammar
    for grammar in (
        Grammar("brackets", "()", brackets, is_brackets, "Dyck words over (), mean length 9"),
        Grammar("ndfa", "".join(sorted(set("s" + "".join(NDFA_WORDS)))), ndfa, is_ndfa,
                "s, one of abc! uvw! klm! repeated k >= 0 times (mean 3), s"),
        Grammar("dyck2", "()[]", dyck2, is_dyck2, "Dyck words over () and [], mean length 9"),
    )
}  # fmt: skip


def check_grammar(name: str) -> Grammar:
    """The table entry for `name`, or a one-line ConfigError listing the grammars there are."""
    try:
        return GRAMMARS[name]
    except KeyError:
        raise ConfigError(f"unknown grammar {name!r}; choose one of {', '.join(GRAMMARS)}") from None


def generate(name: str, n: int, rng: np.random.Generator) -> list[str]:
    return check_grammar(name).generate(n, rng)


def is_valid(name: str, text: str) -> bool:
    """Whether `text` is in the language of grammar `name`."""
    return check_grammar(name).is_valid(text)


@dataclass(frozen=True)
class Vocab:
    """`.pad`=0, `.start`=1, `.end`=2, `.unk`=3, then the grammar's characters in sorted order."""

    chars: str

    @classmethod
    def for_grammar(cls, name: str) -> Vocab:
        return cls(check_grammar(name).alphabet)

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
    def generate(cls, name: str, n: int, seed: int, n_held_out: int = 100) -> GrammarData:
        """Training and held-out sets come from separate child streams of `seed`, so changing n
        changes neither the held-out set nor any other run's data."""
        grammar = check_grammar(name)
        vocab = Vocab(grammar.alphabet)
        train_rng, held_out_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
        return cls(
            name,
            vocab,
            vocab.encode(grammar.generate(n, train_rng)),
            vocab.encode(grammar.generate(n_held_out, held_out_rng)),
        )
