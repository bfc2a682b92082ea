"""The Stanford Large Movie Review Dataset (Maas et al., ACL 2011) as a TextDataset: where to get
it, how its files are laid out, and which label is which. Finding, reading, tokenizing, caching,
splitting and the vocabulary are the generic ones of rnnbench.data.text.

Labels: 0 = negative review (`neg/`), 1 = positive review (`pos/`).

A source is an extracted `aclImdb` folder (or its parent) or the `.tar.gz` itself, read without
extracting it; `RNNBENCH_IMDB` may point at either. The official download also holds `train/unsup`,
`*.feat` files and url lists, which are skipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnnbench.data.text import Example, TextData, TextDataset, load_text, read_files

_REVIEW = re.compile(r"(?:^|/)aclImdb/(train|test)/(neg|pos)/(\d+)_\d+\.txt$")


def read_reviews(path: Path) -> Iterator[Example]:
    """Every labelled review of an aclImdb folder or tarball; the id is the `<id>` of `<id>_<rating>.txt`."""
    for match, text in read_files(path, _REVIEW):
        split, label, review_id = match.groups()
        yield Example(split, label, int(review_id), text)


IMDB = TextDataset(
    name="imdb",
    class_names=("neg", "pos"),
    read=read_reviews,
    source_kind="an aclImdb folder or its .tar.gz",
    layout="aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt",
    url="http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
    known_hash="md5:7c2ac02c03563afcf9b574c7e56c153a",
)

ImdbData = TextData  # the name the classifier loop and the sweep give the loaded splits


def load_imdb(source: str | os.PathLike | None = None, **options: Any) -> TextData:
    """IMDB's encoded splits: `load_text(IMDB, source, **options)`, whose docstring lists the options.

    final=False trains on 20,000 reviews and validates on 5,000 (2,500 of each label);
    final=True is the official 25,000 / 25,000 train / test split."""
    return load_text(IMDB, source, **options)
