"""IMDB reading, tokenizing, splits, vocabulary and cache: on the tiny generated set and, where
present, the real 50,000 reviews."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from rnnbench.data.imdb import SPECIALS, UNK, cache_dir, load_corpus, load_imdb, resolve_source, tokenize
from rnnbench.data.tiny_imdb import TEST_ONLY_WORD
from rnnbench.errors import DataError


def test_tokenize_as_the_study_did():
    assert tokenize("Great<br />movie!! It's 10/10, RE-watch") == ["great", "movie", "it", "s", "re", "watch"]
    assert tokenize("<br /><br />") == []


def test_folder_and_tarball_give_the_same_corpus(tiny_imdb, tiny_tarball):
    a, b = load_corpus(tiny_imdb), load_corpus(tiny_tarball)
    assert len(a.offsets) - 1 == 400  # 100 per train/test x pos/neg; unsup, .feat and urls skipped
    for name in ("tokens", "offsets", "labels", "is_test", "review_ids", "words"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_parent_of_aclimdb_folder_is_accepted(tiny_imdb):
    assert len(load_imdb(tiny_imdb.parent).train) == len(load_imdb(tiny_imdb).train)


def test_labels_negative_0_positive_1(tiny_imdb):
    data = load_imdb(tiny_imdb, final=True)
    words = np.array(data.vocab)
    for sequences in (data.train, data.eval):
        for i in range(len(sequences)):
            review = set(words[sequences.tokens[sequences.offsets[i] : sequences.offsets[i + 1]]])
            assert bool(review & {"great", "wonderful", "superb", "moving", "brilliant", "delightful"}) == (
                sequences.labels[i] == 1
            )


def test_validation_split_is_stratified_disjoint_and_fixed(tiny_imdb):
    data = load_imdb(tiny_imdb)
    assert (len(data.train), len(data.eval), data.eval_name) == (160, 40, "val")
    assert data.eval.labels.sum() == 20  # half of each label
    assert not set(data.train_rows) & set(data.eval_rows)
    assert np.array_equal(load_imdb(tiny_imdb).eval_rows, data.eval_rows)
    assert not np.array_equal(load_imdb(tiny_imdb, split_seed=1).eval_rows, data.eval_rows)


def test_vocabulary_comes_from_training_split_only(tiny_imdb):
    data = load_imdb(tiny_imdb, final=True)
    assert data.vocab[:4] == SPECIALS
    assert TEST_ONLY_WORD not in data.vocab
    assert (data.eval.tokens == UNK).sum() > 0  # the test-only word is unknown
    assert (data.train.tokens == UNK).sum() == 0


def test_vocabulary_cut_by_size_and_count(tiny_imdb):
    full = load_imdb(tiny_imdb)
    small = load_imdb(tiny_imdb, max_vocab=5)
    assert small.vocab == full.vocab[:9]  # the 5 most frequent words after the 4 specials
    assert (small.train.tokens == UNK).sum() > 0
    frequent = load_imdb(tiny_imdb, min_count=50)
    counts = np.bincount(full.train.tokens, minlength=len(full.vocab))
    assert len(frequent.vocab) - 4 == (counts[4:] >= 50).sum()


def test_given_vocabulary_is_used_for_encoding(tiny_imdb):
    val_model = load_imdb(tiny_imdb)
    test_data = load_imdb(tiny_imdb, final=True, vocab=val_model.vocab)
    assert test_data.vocab == val_model.vocab
    assert test_data.train.tokens.max() < len(val_model.vocab)


def test_subset_keeps_a_quarter_as_many_eval_reviews(tiny_imdb):
    data = load_imdb(tiny_imdb, subset=40)
    assert (len(data.train), len(data.eval)) == (40, 10)
    assert set(data.train_rows) <= set(load_imdb(tiny_imdb).train_rows)


def test_cache_is_written_once_and_follows_source_changes(tiny_imdb, tmp_path):
    source = Path(shutil.copytree(tiny_imdb, tmp_path / "aclImdb"))
    first = load_imdb(source)
    cached = list(cache_dir().glob("imdb-*.npz"))
    assert len(cached) == 1
    again = load_imdb(source)
    assert np.array_equal(again.train.tokens, first.train.tokens) and again.vocab == first.vocab
    assert len(list(cache_dir().glob("imdb-*.npz"))) == 1
    next((source / "train" / "pos").glob("0_*.txt")).write_text("Brandnewword everywhere")
    changed = load_imdb(source, final=True)
    assert "brandnewword" in changed.vocab
    assert len(list(cache_dir().glob("imdb-*.npz"))) == 2


def test_resolution_order_explicit_then_environment(tiny_imdb, tiny_tarball, monkeypatch):
    monkeypatch.setenv("RNNBENCH_IMDB", str(tiny_tarball))
    assert resolve_source() == tiny_tarball
    assert resolve_source(tiny_imdb) == tiny_imdb


@pytest.mark.parametrize("make", ["missing", "empty_dir", "text_file", "truncated", "not_gzip"])
def test_bad_sources_fail_with_one_line(make, tiny_tarball, tmp_path):
    path = tmp_path / "bad"
    if make == "empty_dir":
        path.mkdir()
    elif make == "text_file":
        path.write_text("hello")
    elif make == "truncated":
        path.write_bytes(tiny_tarball.read_bytes()[: tiny_tarball.stat().st_size // 2])
    elif make == "not_gzip":
        path.write_bytes(gzip.decompress(tiny_tarball.read_bytes())[:5000] + b"garbage")
    with pytest.raises(DataError) as error:
        load_imdb(path)
    assert "\n" not in str(error.value)
    assert not list(cache_dir().glob("*.npz"))  # nothing half-written left to be trusted


# --- the real dataset -------------------------------------------------------------------------


@pytest.fixture()
def real(real_imdb, real_cache, monkeypatch):
    monkeypatch.setenv("RNNBENCH_CACHE", str(real_cache))
    return real_imdb


def test_real_split_sizes_and_disjoint_validation(real):
    data = load_imdb(real)
    assert (len(data.train), len(data.eval)) == (20_000, 5_000)
    assert not set(data.train_rows) & set(data.eval_rows)
    assert data.eval.labels.sum() == 2_500
    final = load_imdb(real, final=True)
    assert (len(final.train), len(final.eval), final.eval_name) == (25_000, 25_000, "test")


def test_real_vocabulary_is_exactly_the_training_words(real):
    data = load_imdb(real)
    corpus = load_corpus(real)
    train_positions = np.concatenate([np.arange(corpus.offsets[r], corpus.offsets[r + 1]) for r in data.train_rows])
    assert set(data.vocab[4:]) == set(corpus.words[np.unique(corpus.tokens[train_positions])])
    val_only = set(data.vocab) ^ set(load_imdb(real, final=True).vocab)
    assert val_only  # the 5,000 validation reviews bring words of their own
    assert (data.train.tokens == UNK).sum() == 0 and (data.eval.tokens == UNK).sum() > 0

