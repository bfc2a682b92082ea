"""A tiny synthetic dataset in the official aclImdb layout, for tests and offline demos.

Each review mixes neutral filler with a few words from its label's lexicon, so a model can learn it
in a couple of epochs. It also carries the entries a loader must skip (`train/unsup`, `*.feat`,
url lists) and a word that occurs only in the test split (to check the vocabulary is train-only).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

POSITIVE = ("great", "wonderful", "superb", "moving", "brilliant", "delightful")
NEGATIVE = ("awful", "boring", "dreadful", "clumsy", "tedious", "terrible")
FILLER = ("the", "film", "plot", "actor", "scene", "and", "a", "story", "was", "it", "of", "director")
TEST_ONLY_WORD = "zyzzyva"


def _review(rng: np.random.Generator, lexicon: tuple[str, ...], extra: str | None) -> str:
    words = list(rng.choice(FILLER, rng.integers(4, 40))) + list(rng.choice(lexicon, rng.integers(1, 4)))
    if extra:
        words.append(extra)
    rng.shuffle(words)
    text = " ".join(words)
    return text[0].upper() + text[1:] + ".<br /><br />" + str(rng.choice(FILLER)).capitalize() + "!"


def write_tiny_imdb(root: str | Path, reviews_per_folder: int = 100, seed: int = 0) -> Path:
    """Write `root/aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt` and return the aclImdb path."""
    rng = np.random.default_rng(seed)
    base = Path(root) / "aclImdb"
    for split in ("train", "test"):
        for label, lexicon, ratings in (("pos", POSITIVE, (7, 11)), ("neg", NEGATIVE, (1, 5))):
            folder = base / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(reviews_per_folder):
                extra = TEST_ONLY_WORD if split == "test" and i % 3 == 0 else None
                (folder / f"{i}_{rng.integers(*ratings)}.txt").write_text(_review(rng, lexicon, extra))
            (base / split / f"urls_{label}.txt").write_text("http://www.imdb.com/title/tt0000000/usercomments\n")
        (base / split / "labeledBow.feat").write_text("0 0:1\n")
    (base / "train" / "unsup").mkdir(exist_ok=True)
    (base / "train" / "unsup" / "0_0.txt").write_text("Unlabelled reviews must be skipped.")
    (base / "imdb.vocab").write_text("\n".join(FILLER) + "\n")
    return base


def write_tiny_imdb_tarball(root: str | Path, reviews_per_folder: int = 100, seed: int = 0) -> Path:
    """The same dataset packed as `root/aclImdb_v1.tar.gz`, like the official download."""
    folder = write_tiny_imdb(Path(root) / "src", reviews_per_folder, seed)
    tarball = Path(root) / "aclImdb_v1.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(folder, arcname="aclImdb")
    return tarball
