"""IMDB reading, tokenizing, splits, vocabulary, cache and source checks: on the tiny generated set
and, where present, the real 50,000 reviews."""

from __future__ import annotations

import gzip
import io
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from rnnbench.data.imdb import IMDB, load_imdb
from rnnbench.data.text import cache_dir, check_source, load_corpus, resolve_source
from rnnbench.data.tiny_imdb import POSITIVE, TEST_ONLY_WORD, write_tiny_imdb
from rnnbench.data.vocab import SPECIALS, UNK
from rnnbench.errors import DataError


def corpus(path: Path):
    return load_corpus(IMDB, resolve_source(IMDB, path))


def test_folder_and_tarball_give_the_same_corpus(tiny_imdb, tiny_tarball):
    a, b = corpus(tiny_imdb), corpus(tiny_tarball)
    assert len(a.offsets) - 1 == 400  # 100 per train/test x pos/neg; unsup, .feat and urls skipped
    for name in ("tokens", "offsets", "labels", "is_test", "ids", "words"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_parent_of_aclimdb_folder_is_accepted(tiny_imdb):
    assert len(load_imdb(tiny_imdb.parent).train) == len(load_imdb(tiny_imdb).train)


def test_labels_negative_0_positive_1_and_two_classes(tiny_imdb):
    data = load_imdb(tiny_imdb, final=True)
    assert (data.num_classes, data.class_names) == (2, ("neg", "pos"))
    words = np.array(data.vocab)
    for sequences in (data.train, data.eval):
        for i in range(len(sequences)):
            review = set(words[sequences.tokens[sequences.offsets[i] : sequences.offsets[i + 1]]])
            assert bool(review & set(POSITIVE)) == (sequences.labels[i] == 1)


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
    assert resolve_source(IMDB).path == tiny_tarball
    assert resolve_source(IMDB).origin == f"RNNBENCH_IMDB={tiny_tarball}"
    assert resolve_source(IMDB, tiny_imdb).path == tiny_imdb
    assert len(load_imdb().train) == len(load_imdb(tiny_imdb).train)


# --- bad sources: load_imdb and the cheap check_source refuse them alike -----------------------


def _tarball(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return path


def _make_bad(kind: str, tiny_tarball: Path, folder: Path) -> tuple[Path, str]:
    """A bad source of the given kind in `folder`, and what the error must say about it."""
    path = folder / "my_reviews.tar.gz"
    if kind == "missing":
        return path, "does not exist"
    if kind == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "text_file":
        path.write_text("hello")
    elif kind == "truncated":
        path.write_bytes(tiny_tarball.read_bytes()[: tiny_tarball.stat().st_size // 2])
    elif kind == "not_gzip":
        path.write_bytes(gzip.decompress(tiny_tarball.read_bytes())[:5000] + b"garbage")
    elif kind == "empty_tarball":
        return _tarball(path, {}), "holds no imdb examples"
    elif kind == "no_test_split":
        files = {f"aclImdb/train/{label}/{i}_5.txt": "a fine film" for label in ("pos", "neg") for i in range(3)}
        return _tarball(path, files), "has no test/neg, test/pos examples"
    elif kind == "empty_dir":
        path = folder / "aclImdb"
        path.mkdir()
        return path, "holds no imdb examples"
    elif kind == "wrong_layout_dir":  # reviews, but not under aclImdb/{train,test}/{pos,neg}
        path = write_tiny_imdb(folder, reviews_per_folder=2)
        path = path.rename(folder / "movies")
        return path, "holds no imdb examples"
    return path, "could not be read"


BAD = ["missing", "garbage", "text_file", "truncated", "not_gzip", "empty_tarball", "no_test_split", "empty_dir",
       "wrong_layout_dir"]  # fmt: skip


@pytest.mark.parametrize("check", [lambda path: check_source(IMDB, path), load_imdb], ids=["check_source", "load_imdb"])
@pytest.mark.parametrize("kind", BAD)
def test_bad_sources_fail_with_one_line_naming_the_path(kind, check, tiny_tarball, tmp_path):
    path, problem = _make_bad(kind, tiny_tarball, tmp_path)
    with pytest.raises(DataError) as error:
        check(path)
    message = str(error.value)
    assert message.startswith(f"imdb data {path} ") and problem in message, message
    assert "aclImdb_v1.tar.gz" not in message and "\n" not in message
    assert not list(cache_dir().glob("*.npz"))  # nothing half-written left to be trusted


@pytest.mark.parametrize("kind", ["missing", "garbage", "no_test_split"])
def test_errors_say_the_path_came_from_the_environment(kind, tiny_tarball, tmp_path, monkeypatch):
    path, problem = _make_bad(kind, tiny_tarball, tmp_path)
    monkeypatch.setenv("RNNBENCH_IMDB", str(path))
    expected = f"^RNNBENCH_IMDB={re.escape(str(path))} .*{re.escape(problem)}"
    with pytest.raises(DataError, match=expected):
        check_source(IMDB)
    with pytest.raises(DataError, match=expected):
        load_imdb()


@pytest.mark.parametrize("fixture", ["tiny_imdb", "tiny_tarball"])
def test_check_source_accepts_good_sources_without_tokenizing(fixture, request):
    path = request.getfixturevalue(fixture)
    assert check_source(IMDB, path) == path
    assert check_source(IMDB, path.parent if fixture == "tiny_imdb" else path).exists()
    assert not list(cache_dir().glob("*.npz"))
    load_imdb(path)
    assert check_source(IMDB, path) == path  # now answered from the cache


# --- the real dataset -------------------------------------------------------------------------


@pytest.fixture()
def real(real_imdb, real_cache, monkeypatch):
    monkeypatch.setenv("RNNBENCH_CACHE", str(real_cache))
    return real_imdb


def test_real_source_checks_out(real):
    assert check_source(IMDB, real) == real


def test_real_split_sizes_and_disjoint_validation(real):
    data = load_imdb(real)
    assert (len(data.train), len(data.eval), data.num_classes) == (20_000, 5_000, 2)
    assert not set(data.train_rows) & set(data.eval_rows)
    assert data.eval.labels.sum() == 2_500
    final = load_imdb(real, final=True)
    assert (len(final.train), len(final.eval), final.eval_name) == (25_000, 25_000, "test")


def test_real_vocabulary_is_exactly_the_training_words(real):
    data = load_imdb(real)
    full = corpus(real)
    train_positions = np.concatenate([np.arange(full.offsets[r], full.offsets[r + 1]) for r in data.train_rows])
    assert set(data.vocab[4:]) == set(full.words[np.unique(full.tokens[train_positions])])
    val_only = set(data.vocab) ^ set(load_imdb(real, final=True).vocab)
    assert val_only  # the 5,000 validation reviews bring words of their own
    assert (data.train.tokens == UNK).sum() == 0 and (data.eval.tokens == UNK).sum() > 0
