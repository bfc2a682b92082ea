"""The generic text-classification path, driven by a second dataset the test writes: three topics
in one CSV file (split,label,text), a layout unlike IMDB's folders. Defining it takes only a
`read` function and a TextDataset, as a new dataset module would."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rnnbench.data.datasets import get_text_dataset
from rnnbench.data.imdb import IMDB
from rnnbench.data.text import Example, TextDataset, cache_dir, check_source, load_text, tokenize
from rnnbench.data.vocab import SPECIALS, UNK
from rnnbench.errors import ConfigError, DataError

LEXICON = {"sport": ("goal", "match", "team"), "music": ("song", "band", "guitar"), "food": ("bread", "soup", "spice")}
FILLER = ("the", "a", "was", "really", "today", "new")
TEST_ONLY_WORD = "zyzzyva"
TRAIN_PER_CLASS, TEST_PER_CLASS = 50, 10


def read_topics(path: Path) -> Iterator[Example]:
    with open(path, newline="", encoding="utf-8") as file:
        for row, fields in enumerate(csv.DictReader(file)):
            yield Example(fields["split"], fields["label"], row, fields["text"])


TOPICS = TextDataset(
    name="topics",
    class_names=("sport", "music", "food"),
    read=read_topics,
    source_kind="a CSV file",
    layout="columns split,label,text",
)


def write_topics(path: Path, rows: list[tuple[str, str, str]] | None = None) -> Path:
    """The CSV, its rows in shuffled order (the loader must not rely on them being grouped)."""
    if rows is None:
        rng = np.random.default_rng(0)
        rows = []
        for split, count in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
            for label, words in LEXICON.items():
                for i in range(count):
                    text = list(rng.choice(FILLER, 5)) + list(rng.choice(words, 2))
                    rows.append((split, label, " ".join(text + [TEST_ONLY_WORD] * (split == "test" and i == 0))))
        rows = [rows[i] for i in rng.permutation(len(rows))]
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(("split", "label", "text"))
        writer.writerows(rows)
    return path


@pytest.fixture()
def topics(tmp_path) -> Path:
    return write_topics(tmp_path / "topics.csv")


def _label_from_words(data, sequences, i: int) -> str:
    words = {data.vocab[t] for t in sequences.tokens[sequences.offsets[i] : sequences.offsets[i + 1]]}
    (label,) = [label for label, lexicon in LEXICON.items() if words & set(lexicon)]
    return label


def test_tokenize_as_the_study_did():
    assert tokenize("Great<br />movie!! It's 10/10, RE-watch") == ["great", "movie", "it", "s", "re", "watch"]
    assert tokenize("<br /><br />") == []


def test_three_classes_load_with_stratified_validation(topics):
    data = load_text(TOPICS, topics)
    assert (data.num_classes, data.class_names, data.eval_name) == (3, ("sport", "music", "food"), "val")
    assert (len(data.train), len(data.eval)) == (3 * 40, 3 * 10)  # 20% of each class's 50 held out
    assert np.bincount(data.eval.labels).tolist() == [10, 10, 10]
    for sequences in (data.train, data.eval):
        for i in range(len(sequences)):
            assert data.class_names[sequences.labels[i]] == _label_from_words(data, sequences, i)
    assert not set(data.train_rows) & set(data.eval_rows)
    assert np.array_equal(load_text(TOPICS, topics).eval_rows, data.eval_rows)
    assert not np.array_equal(load_text(TOPICS, topics, split_seed=1).eval_rows, data.eval_rows)


def test_final_split_and_training_only_vocabulary(topics):
    data = load_text(TOPICS, topics, final=True)
    assert (len(data.train), len(data.eval), data.eval_name) == (150, 30, "test")
    assert data.vocab[:4] == SPECIALS
    assert set(data.vocab[4:]) == set(FILLER).union(*LEXICON.values())
    assert TEST_ONLY_WORD not in data.vocab and (data.eval.tokens == UNK).sum() == 3
    reencoded = load_text(TOPICS, topics, vocab=data.vocab[:8], subset=30)
    assert (len(reencoded.train), len(reencoded.eval), reencoded.vocab) == (30, 7, data.vocab[:8])


def test_tokenized_once_then_read_from_the_cache(topics):
    first = load_text(TOPICS, topics)
    assert len(list(cache_dir().glob("topics-*.npz"))) == 1
    again = load_text(TOPICS, topics)
    assert np.array_equal(again.train.tokens, first.train.tokens) and again.vocab == first.vocab
    assert len(list(cache_dir().glob("*.npz"))) == 1


def test_found_through_its_environment_variable(topics, monkeypatch, tmp_path):
    monkeypatch.setenv("RNNBENCH_TOPICS", str(topics))
    assert check_source(TOPICS) == topics
    assert len(load_text(TOPICS).train) == 120
    monkeypatch.setenv("RNNBENCH_TOPICS", str(tmp_path / "gone.csv"))
    fix = "give the path of a CSV file holding columns split,label,text"
    with pytest.raises(DataError, match=rf"^RNNBENCH_TOPICS=\S*gone\.csv does not exist; {fix}$"):
        load_text(TOPICS)


def test_without_path_variable_or_url_it_says_how_to_give_one(tmp_path):
    with pytest.raises(DataError) as error:
        load_text(TOPICS)
    assert str(error.value).startswith("no topics data: no path given, RNNBENCH_TOPICS unset, nothing in ")
    assert "topics has no download; pass --data PATH" in str(error.value)


@pytest.mark.parametrize(
    "rows, problem",
    [
        ([("train", "politics", "a b"), ("test", "sport", "goal")], "split 'train', class 'politics'; topics knows"),
        ([("dev", "sport", "goal")], "split 'dev'"),
        (
            [(split, label, "x") for split in ("train", "test") for label in ("sport", "music")],
            "has no test/food, train/food",
        ),
        ([], "holds no topics examples"),
    ],
)
def test_examples_outside_the_splits_and_classes_are_refused(rows, problem, tmp_path):
    path = write_topics(tmp_path / "bad.csv", rows)
    for use in (lambda: check_source(TOPICS, path), lambda: load_text(TOPICS, path)):
        with pytest.raises(DataError) as error:
            use()
        assert str(error.value).startswith(f"topics data {path} ") and problem in str(error.value)
    assert not list(cache_dir().glob("*.npz"))


def test_unreadable_file_is_one_line_naming_it(topics):
    topics.write_bytes(topics.read_bytes() + b"train,food,\xff\xfe broken utf-8\n")
    with pytest.raises(DataError, match=f"^topics data {topics} could not be read \\('utf-8' codec"):
        load_text(TOPICS, topics)


def test_registry_knows_imdb_and_refuses_unknown_names():
    assert get_text_dataset("imdb") is IMDB
    with pytest.raises(ConfigError, match="^unknown text dataset 'yelp'; choose one of imdb$"):
        get_text_dataset("yelp")


def test_a_registered_dataset_trains_through_the_classifier_loop(topics, monkeypatch):
    """Registered (one TEXT_DATASETS entry), the second dataset is a `--dataset` of the imdb task's
    loop: three classes, so a three-way output layer, and it learns the lexicon."""
    from rnnbench.data import datasets
    from rnnbench.train.classifier import ClassifierConfig, ClassifierRun

    monkeypatch.setitem(datasets.TEXT_DATASETS, "topics", TOPICS)
    config = ClassifierConfig(dataset="topics", data=str(topics), model="mlp", lr=0.3, epochs=4, embed_dim=16, hidden_dim=16)
    run = ClassifierRun(config)
    assert run.model.out.out_features == 3 and run.data.num_classes == 3
    history = list(run.epochs())
    assert history[-1]["val_acc"] > 0.9 and history[-1]["chance_acc"] == pytest.approx(1 / 3, abs=0.1)
