"""The text-classification datasets by name, one entry each.

A new dataset is one module defining its `TextDataset` (a `read` function for its layout, its class
names, and its url and checksum if it can be downloaded; rnnbench/data/imdb.py is the example) and
one entry in TEXT_DATASETS below; loading, caching, splits, vocabulary and errors are generic.
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
