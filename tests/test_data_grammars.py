"""The grammar table: generators' statistics, validators, seeding, vocabulary and unknown names."""

import numpy as np
import pytest

from rnnbench.data.grammars import GRAMMARS, NDFA_WORDS, GrammarData, Vocab, brackets, dyck2, generate, is_valid, ndfa
from rnnbench.data.vocab import END, SPECIALS, START
from rnnbench.errors import ConfigError


def test_brackets_statistics():
    words = brackets(10_000, np.random.default_rng(1))
    lengths = np.array([len(w) for w in words])
    # expected 1 + 1 / (9/16 - 7/16) = 9; the standard deviation is ~22, so the mean's is ~0.22
    assert abs(lengths.mean() - 9) < 0.75
    assert all(w.startswith("(") for w in words)
    assert np.mean(lengths == 2) == pytest.approx(9 / 16, abs=0.02)  # `()` is closing at once


def test_ndfa_statistics():
    words = ndfa(10_000, np.random.default_rng(1))
    assert np.mean([w == "ss" for w in words]) == pytest.approx(0.25, abs=0.02)
    assert {(len(w) - 2) % 4 for w in words} == {0}
    repeats = np.array([(len(w) - 2) // 4 for w in words])
    assert repeats.mean() == pytest.approx(3, abs=0.15)  # geometric: (1 - 1/4) / (1/4)
    firsts = [w[1:5] for w in words if w != "ss"]
    assert {f: firsts.count(f) / len(firsts) for f in NDFA_WORDS} == pytest.approx(dict.fromkeys(NDFA_WORDS, 1 / 3), abs=0.03)


def test_dyck2_statistics():
    words = dyck2(10_000, np.random.default_rng(1))
    assert abs(np.mean([len(w) for w in words]) - 9) < 0.75  # the shapes of brackets
    text = "".join(words)
    assert text.count("[") / (text.count("[") + text.count("(")) == pytest.approx(0.5, abs=0.01)
    mixed = [w for w in words if "(" in w and "[" in w]
    assert len(mixed) > 1_000 and all(is_valid("dyck2", w) for w in mixed)


@pytest.mark.parametrize("name", GRAMMARS)
def test_generators_are_seeded(name):
    assert generate(name, 500, np.random.default_rng(7)) == generate(name, 500, np.random.default_rng(7))
    assert generate(name, 500, np.random.default_rng(7)) != generate(name, 500, np.random.default_rng(8))


def _swapped(word: str, rng: np.random.Generator) -> str | None:
    """Two different characters of `word` swapped, or None when it has none (`ss`).

    A Dyck word can survive a swap (`(()())` -> `((()))`), so for brackets and dyck2 the first
    opener goes behind a closer, which always closes a bracket that is not open. In ndfa any swap
    of two different characters breaks the pattern: the same letters can only spell the same word."""
    if word[0] in "([":
        i, j = 0, int(rng.choice([k for k, c in enumerate(word) if c in ")]"]))
    elif len(set(word)) == 1:
        return None
    else:
        i, j = rng.choice(len(word), size=2, replace=False).tolist()
        while word[i] == word[j]:
            i, j = rng.choice(len(word), size=2, replace=False).tolist()
    chars = list(word)
    chars[i], chars[j] = chars[j], chars[i]
    return "".join(chars)


def _mutations(word: str, rng: np.random.Generator) -> list[str]:
    """Drop a character, swap two different characters, cut to a proper (possibly empty) prefix."""
    i = int(rng.integers(len(word)))
    swapped = _swapped(word, rng)
    return [word[:i] + word[i + 1 :], word[: int(rng.integers(len(word)))]] + ([swapped] if swapped else [])


@pytest.mark.parametrize("name", GRAMMARS)
def test_validator_accepts_generated_and_rejects_mutations(name):
    rng = np.random.default_rng(3)
    for word in generate(name, 2_000, rng):
        assert is_valid(name, word), word
        for mutant in _mutations(word, rng):
            assert not is_valid(name, mutant), (word, mutant)


@pytest.mark.parametrize(
    "name, text, valid",
    [
        ("brackets", "()()", True),  # a Dyck word, though not one the generator draws
        ("brackets", "((()))", True),
        ("brackets", "", False),
        ("brackets", ")(", False),
        ("brackets", "(()", False),
        ("brackets", "(a)", False),
        ("brackets", "[]", False),
        ("dyck2", "()", True),
        ("dyck2", "[]", True),
        ("dyck2", "([])[()]", True),
        ("dyck2", "(]", False),
        ("dyck2", "([)]", False),
        ("dyck2", ")(", False),
        ("dyck2", "", False),
        ("dyck2", "((", False),
        ("dyck2", "[(])", False),
        ("dyck2", "(a)", False),
        ("ndfa", "ss", True),
        ("ndfa", "sklm!klm!s", True),
        ("ndfa", "sabc!uvw!s", False),  # two different words
        ("ndfa", "sabc!abcs", False),
        ("ndfa", "abc!", False),
        ("ndfa", "s", False),
        ("ndfa", "sss", False),
    ],
)
def test_validator_examples(name, text, valid):
    assert is_valid(name, text) is valid


def test_vocab_layout_and_round_trip():
    vocab = Vocab.for_grammar("ndfa")
    assert SPECIALS == (".pad", ".start", ".end", ".unk")
    assert vocab.chars == "!abcklmsuvw" and len(vocab) == 4 + 11
    seqs = vocab.encode(["ss", "sabc!s"])
    assert seqs.lengths.tolist() == [4, 8]
    first = seqs.tokens[: seqs.offsets[1]].tolist()
    assert first == [START, 4 + vocab.chars.index("s"), 4 + vocab.chars.index("s"), END]
    assert vocab.decode(seqs.tokens[seqs.offsets[1] + 1 : seqs.offsets[2] - 1].tolist()) == "sabc!s"
    assert vocab.decode([START, 0, 3]) == "<.start><.pad><.unk>"
    assert Vocab.for_grammar("brackets").encode(["(x)"]).tokens.tolist() == [START, 4, 3, 5, END]
    assert Vocab.for_grammar("dyck2").chars == "()[]"


@pytest.mark.parametrize("name", GRAMMARS)
def test_alphabet_is_sorted_and_covers_the_generated_words(name):
    alphabet = GRAMMARS[name].alphabet
    assert alphabet == "".join(sorted(set(alphabet)))
    assert set("".join(generate(name, 1_000, np.random.default_rng(0)))) == set(alphabet)


def test_grammar_data_held_out_is_a_separate_draw():
    small, large = GrammarData.generate("brackets", 50, seed=0), GrammarData.generate("brackets", 500, seed=0)
    assert np.array_equal(small.held_out.tokens, large.held_out.tokens)
    assert len(small.train) == 50 and len(small.held_out) == 100
    assert not np.array_equal(GrammarData.generate("brackets", 50, seed=1).held_out.tokens, small.held_out.tokens)


@pytest.mark.parametrize(
    "use",
    [
        lambda: GrammarData.generate("xml", 10, seed=0),
        lambda: generate("xml", 10, np.random.default_rng(0)),
        lambda: is_valid("xml", "()"),  # not judged by the brackets validator
        lambda: Vocab.for_grammar("xml"),
    ],
    ids=["GrammarData", "generate", "is_valid", "Vocab"],
)
def test_unknown_grammar_is_a_config_error_everywhere(use):
    with pytest.raises(ConfigError, match="^unknown grammar 'xml'; choose one of brackets, ndfa, dyck2$"):
        use()
