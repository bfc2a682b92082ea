"""The Stanford Large Movie Review Dataset (Maas et al., ACL 2011): find it, read it, tokenize it
as the study did, and hand out encoded train / validation / test splits as compact arrays.

Labels: 0 = negative review (`neg/`), 1 = positive review (`pos/`).

Where the data comes from, first match wins: an explicit path > the `RNNBENCH_IMDB` environment
variable > the cache folder (`RNNBENCH_CACHE`, default ~/.cache/rnnbench) > a download of the
official tarball into that cache. A path may be an extracted `aclImdb` folder (or its parent) or
the `.tar.gz` itself, which is read without extracting it.

Tokenizing 50,000 reviews takes a few seconds, so the tokenized corpus is cached as flat arrays,
keyed by a fingerprint of the source and the tokenizer version; later loads take a fraction of a
second.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tarfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pooch

from rnnbench.data.batching import Sequences
from rnnbench.errors import DataError

IMDB_URL = "http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_HASH = "md5:7c2ac02c03563afcf9b574c7e56c153a"
IMDB_FILE = "aclImdb_v1.tar.gz"

SPECIALS = (".pad", ".start", ".end", ".unk")
UNK = 3
TOKENIZER_VERSION = "letters-v1"  # bump when tokenize() changes, so old caches are not reused
VAL_FRACTION = 0.2  # of the official training set: 5,000 of 25,000 reviews

_REVIEW = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_WORD = re.compile(r"[a-z]+")


def tokenize(text: str) -> list[str]:
    """As the study did: lowercase, `<br />` to a space, keep runs of letters a-z."""
    return _WORD.findall(text.lower().replace("<br />", " "))


def cache_dir() -> Path:
    return Path(os.environ.get("RNNBENCH_CACHE") or pooch.os_cache("rnnbench"))


# --- finding the data -------------------------------------------------------------------------


def resolve_source(path: str | os.PathLike | None = None, url: str = IMDB_URL, known_hash: str = IMDB_HASH) -> Path:
    """Return a local aclImdb folder or tarball, downloading into the cache only as a last resort."""
    if path is None and os.environ.get("RNNBENCH_IMDB"):
        path = os.environ["RNNBENCH_IMDB"]
    if path is not None:
        path = Path(path).expanduser()
        if not path.exists():
            raise DataError(f"IMDB source {path} does not exist; pass an aclImdb folder or aclImdb_v1.tar.gz")
        return path
    return download(url, known_hash, cache_dir())


def download(url: str, known_hash: str, folder: Path) -> Path:
    """Fetch the tarball into `folder` unless a copy with the right checksum is already there.

    pooch checks the hash and moves the file into place only when it matches, so a half or bad
    download is never trusted; our downloader keeps the partial bytes in `<file>.part` and asks the
    server for the rest with an HTTP Range request after an interruption."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return Path(pooch.retrieve(url, known_hash, fname=IMDB_FILE, path=folder, downloader=ResumableDownload()))
    except (urllib.error.URLError, OSError) as error:
        raise DataError(
            f"no IMDB data: no path given, RNNBENCH_IMDB unset, nothing in {folder}, and downloading "
            f"{url} failed ({error}); pass --data /path/to/aclImdb_v1.tar.gz (or the aclImdb folder) "
            "or set RNNBENCH_IMDB to it"
        ) from None
    except ValueError as error:  # pooch: checksum mismatch
        raise DataError(f"download of {url} is corrupt ({str(error).splitlines()[0]}); run again to re-download") from None


class ResumableDownload:
    """A pooch downloader that resumes from `<output>.part` and prints coarse progress to stderr."""

    def __call__(self, url: str, output_file: str, pooch_obj: object, check_only: bool = False) -> None:
        part = Path(output_file).parent / (IMDB_FILE + ".part")
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                if have and response.status != 206:  # the server ignored Range: start over
                    have = 0
                total = have + int(response.headers.get("Content-Length") or 0)
                with open(part, "ab" if have else "wb") as out:
                    self._copy(response, out, have, total, url)
        except urllib.error.HTTPError as error:
            if error.code != 416:  # 416: the .part already holds the whole file
                raise
        os.replace(part, output_file)

    @staticmethod
    def _copy(response, out, have: int, total: int, url: str) -> None:
        shown = -1
        while chunk := response.read(1 << 20):
            out.write(chunk)
            have += len(chunk)
            percent = 100 * have // total if total else 0
            if percent // 10 > shown:
                shown = percent // 10
                print(f"downloading {url}: {have / 1e6:.1f} MB ({percent}%)", file=sys.stderr)


# --- reading the reviews ----------------------------------------------------------------------


def iter_reviews(source: Path) -> Iterator[tuple[str, str, int, int, str]]:
    """Yield (split, label, id, rating, text) for every labelled review in a folder or tarball;
    `train/unsup`, `*.feat` and the url lists are skipped."""
    if source.is_dir():
        for path in sorted(source.rglob("*.txt")):
            match = _REVIEW.search(path.as_posix())
            if match:
                split, label, rid, rating = match.groups()
                yield split, label, int(rid), int(rating), path.read_text(encoding="utf-8")
        return
    try:
        with tarfile.open(source, "r:*") as archive:
            for member in archive:
                match = _REVIEW.search(member.name)
                if match and member.isfile():
                    split, label, rid, rating = match.groups()
                    text = archive.extractfile(member).read().decode("utf-8")
                    yield split, label, int(rid), int(rating), text
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise DataError(
            f"{source} is not a readable aclImdb tarball ({str(error).splitlines()[0]}); it may be corrupt or truncated: "
            "download it again or pass the extracted aclImdb folder"
        ) from None


def fingerprint(source: Path) -> str:
    """sha256 of a tarball's bytes, or of a folder's review paths, sizes and modification times."""
    digest = hashlib.sha256(TOKENIZER_VERSION.encode())
    if source.is_dir():
        for path in sorted(source.rglob("*.txt")):
            stat = path.stat()
            digest.update(f"{path.relative_to(source)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    else:
        with open(source, "rb") as file:
            digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class Corpus:
    """Every labelled review, tokenized and encoded against one corpus-wide word list (ordered by
    training-set frequency), independent of any vocabulary cut so one cache serves all settings."""

    tokens: np.ndarray  # int32 ids into `words`
    offsets: np.ndarray  # int64, reviews are tokens[offsets[i]:offsets[i + 1]]
    labels: np.ndarray  # int64: 0 negative, 1 positive
    is_test: np.ndarray  # bool: official test split
    review_ids: np.ndarray  # int64: the <id> of <id>_<rating>.txt, unique within split and label
    words: np.ndarray  # object array of str


def load_corpus(source: Path) -> Corpus:
    """The tokenized corpus from the cache, building (and caching) it on the first call."""
    cached = cache_dir() / f"imdb-{fingerprint(source)[:16]}.npz"
    arrays = ("tokens", "offsets", "labels", "is_test", "review_ids")
    if cached.exists():
        with np.load(cached) as stored:
            words = np.array(stored["words"].tobytes().decode().split("\n"), dtype=object)
            return Corpus(words=words, **{name: stored[name] for name in arrays})
    print(f"tokenizing {source} (first load; cached in {cached.parent})", file=sys.stderr)
    corpus = _build_corpus(source)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp.npz")
    words = np.frombuffer("\n".join(corpus.words).encode(), dtype=np.uint8)
    np.savez(partial, words=words, **{name: getattr(corpus, name) for name in arrays})
    os.replace(partial, cached)
    return corpus


def _build_corpus(source: Path) -> Corpus:
    reviews = sorted(iter_reviews(source), key=lambda r: (r[0], r[1], r[2]))
    seen = {(split, label) for split, label, *_ in reviews}
    if not {("train", "neg"), ("train", "pos"), ("test", "neg"), ("test", "pos")} <= seen:
        raise DataError(
            f"{source} is not an aclImdb folder or tarball: expected reviews in "
            "aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt; pass the aclImdb folder or aclImdb_v1.tar.gz"
        )
    index: dict[str, int] = {}
    encoded = [[index.setdefault(w, len(index)) for w in tokenize(r[4])] for r in reviews]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    tokens = np.fromiter((t for review in encoded for t in review), dtype=np.int32, count=int(offsets[-1]))
    is_test = np.array([r[0] == "test" for r in reviews])
    words = np.array(list(index), dtype=object)
    # renumber words by training frequency, so the cached word list reads like a vocabulary
    counts = np.bincount(tokens[np.repeat(~is_test, lengths)], minlength=len(words))
    order = np.lexsort((np.arange(len(words)), -counts))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return Corpus(
        tokens=rank[tokens].astype(np.int32),
        offsets=offsets,
        labels=np.array([r[1] == "pos" for r in reviews], dtype=np.int64),
        is_test=is_test,
        review_ids=np.array([r[2] for r in reviews], dtype=np.int64),
        words=words[order],
    )


# --- splits and vocabulary --------------------------------------------------------------------


@dataclass(frozen=True)
class ImdbData:
    """Encoded splits ready for batching. `eval` is the validation split (final=False) or the
    official test split (final=True); `eval_name` says which ("val" or "test")."""

    train: Sequences
    eval: Sequences
    vocab: tuple[str, ...]
    eval_name: str
    train_rows: np.ndarray  # rows of the Corpus, to trace a review back to its file
    eval_rows: np.ndarray


def load_imdb(
    source: str | os.PathLike | None = None,
    *,
    final: bool = False,
    split_seed: int = 0,
    max_vocab: int | None = None,
    min_count: int = 1,
    vocab: tuple[str, ...] | None = None,
    subset: int | None = None,
) -> ImdbData:
    """Encoded IMDB splits.

    final=False: 80% of the official training set to train on (20,000) and a validation split of
    the other 20% (5,000, half of each label), drawn by `split_seed` and the same for every trial.
    final=True: the official 25,000 / 25,000 train / test split.
    The vocabulary comes from the training split only: words seen at least `min_count` times, the
    `max_vocab` most frequent (not counting the four specials `.pad .start .end .unk` = 0-3);
    pass `vocab` instead to encode with an existing model's vocabulary (e.g. when continuing a
    final=False model on the final=True split). `subset` keeps a random `subset` training reviews
    and a quarter as many evaluation reviews, for quick runs.
    """
    corpus = load_corpus(resolve_source(source))
    rng = np.random.default_rng(split_seed)
    train_idx = np.flatnonzero(~corpus.is_test)
    if final:
        eval_idx = np.flatnonzero(corpus.is_test)
    else:
        val = np.concatenate([_draw(rng, train_idx[corpus.labels[train_idx] == y], VAL_FRACTION) for y in (0, 1)])
        train_idx, eval_idx = np.setdiff1d(train_idx, val), np.sort(val)
    if subset is not None:
        train_idx = np.sort(rng.choice(train_idx, min(subset, len(train_idx)), replace=False))
        eval_idx = np.sort(rng.choice(eval_idx, min(max(subset // 4, 1), len(eval_idx)), replace=False))
    everything = Sequences(corpus.tokens, corpus.offsets, corpus.labels)
    train, evaluation = everything.subset(train_idx), everything.subset(eval_idx)
    if vocab is None:
        vocab = _build_vocab(corpus.words, train.tokens, max_vocab, min_count)
    remap = _remap(corpus.words, vocab)
    return ImdbData(
        train=Sequences(remap[train.tokens], train.offsets, train.labels),
        eval=Sequences(remap[evaluation.tokens], evaluation.offsets, evaluation.labels),
        vocab=tuple(vocab),
        eval_name="test" if final else "val",
        train_rows=train_idx,
        eval_rows=eval_idx,
    )


def _draw(rng: np.random.Generator, index: np.ndarray, fraction: float) -> np.ndarray:
    return rng.choice(index, int(round(len(index) * fraction)), replace=False)


def _build_vocab(words: np.ndarray, train_tokens: np.ndarray, max_vocab: int | None, min_count: int) -> tuple[str, ...]:
    counts = np.bincount(train_tokens, minlength=len(words))
    order = np.lexsort((np.arange(len(words)), -counts))
    kept = order[counts[order] >= min_count][:max_vocab]
    return SPECIALS + tuple(words[kept].tolist())


def _remap(words: np.ndarray, vocab: tuple[str, ...]) -> np.ndarray:
    """Lookup table from corpus word ids to vocabulary ids (unknown words → .unk)."""
    position = {word: i for i, word in enumerate(vocab)}
    return np.array([position.get(word, UNK) for word in words.tolist()], dtype=np.int32)
