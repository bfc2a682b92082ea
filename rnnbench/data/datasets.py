"""The text-classification datasets by name, one entry each.

A new dataset is one module defining its `TextDataset`: its name, class names (the label mapping),
a `read(path)` function yielding an `Example` per labelled text of its layout, the words that
describe a source in errors (`source_kind`, `layout`), and its url and checksum if it can be
downloaded; rnnbench/data/imdb.py is the example. Add it to TEXT_DATASETS below, and it is found
by `get_text_dataset(name)`, read from `$RNNBENCH_<NAME>`, checked by `check_source` and loaded by
`load_text`, with the caching, splits, vocabulary and errors that every dataset shares.
"""

from __future__ import annotations

from rnnbench.data.imdb import IMDB
from rnnbench.data.text import TextDataset
from rnnbench.errors import ConfigError

TEXT_DATASETS: dict[str, TextDataset] = {dataset.name: dataset for dataset in (IMDB,)}


def get_text_dataset(name: str) -> TextDataset:
    """The registry entry, or a one-line error listing the datasets there are."""
    try:
        return TEXT_DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown text dataset {name!r}; choose one of {', '.join(TEXT_DATASETS)}") from None
