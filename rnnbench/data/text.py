"""Text classification data for any dataset: find the source, read its labelled examples, tokenize
them once into a cached corpus, and hand out encoded train / evaluation splits as compact arrays.

A dataset is one `TextDataset`: its name, its class names (label i is `class_names[i]`), where
to download it, and a `read` function that yields every labelled `Example` of a local source (a
folder, an archive, a CSV: whatever the dataset ships as). Everything else lives here, once:

- where the data comes from, first match wins: an explicit path > the environment variable
  `RNNBENCH_<NAME>` > a verified copy in the cache folder (`RNNBENCH_CACHE`, default
  ~/.cache/rnnbench) > a download into that cache;
- errors that name the path and where it came from (`RNNBENCH_IMDB=/x/y.tar.gz does not exist`);
- the study's tokenizer, and a cache of the tokenized corpus as flat arrays keyed by a fingerprint
  of the source, so only the first load pays for tokenizing;
- a validation split stratified by class and fixed by `split_seed`, and a vocabulary built from
  the training split only.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pooch

from rnnbench.data.batching import Sequences
from rnnbench.data.vocab import SPECIALS, UNK
from rnnbench.errors import DataError

SPLITS = ("train", "test")  # every dataset has both; validation is drawn from train
VAL_FRACTION = 0.2  # of the training split, per class: 5,000 of IMDB's 25,000 reviews
CACHE_VERSION = "letters-v2"  # bump when tokenize() or the cached arrays change, so old caches are not reused
# what a broken file raises while being read: a truncated or corrupt archive, a folder we may not read, bad UTF-8
READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError, UnicodeDecodeError)

_WORD = re.compile(r"[a-z]+")


def tokenize(text: str) -> list[str]:
    """As the study did: lowercase, `<br />` to a space, keep runs of letters a-z."""
    return _WORD.findall(text.lower().replace("<br />", " "))


def cache_dir() -> Path:
    return Path(os.environ.get("RNNBENCH_CACHE") or pooch.os_cache("rnnbench"))


class Example(NamedTuple):
    """One labelled text as a dataset's `read` yields it."""

    split: str  # "train" or "test"
    label: str  # one of the dataset's class_names
    id: int  # unique within (split, label); sorts examples, so a folder and its archive give one corpus
    text: str


@dataclass(frozen=True)
class TextDataset:
    """Everything particular to one text-classification dataset; see rnnbench/data/imdb.py.

    `read(path)` yields every labelled Example of a local source and may skip files that are not
    examples; it may raise any of READ_ERRORS on a broken source, which the loader turns into a
    one-line DataError naming the path. For error messages, `source_kind` names what a source is
    ("an aclImdb folder or its .tar.gz") and `layout` what it must hold. Without a `url` the
    dataset cannot be downloaded, only given as a path."""

    name: str
    class_names: tuple[str, ...]
    read: Callable[[Path], Iterator[Example]]
    source_kind: str
    layout: str
    url: str | None = None
    known_hash: str | None = None  # pooch style, e.g. "md5:7c2a..."

    @property
    def env_var(self) -> str:
        """The environment variable that may point at a local copy, e.g. RNNBENCH_IMDB."""
        return f"RNNBENCH_{self.name.upper()}"

    @property
    def filename(self) -> str:
        """The download's file name, kept in the cache folder."""
        return Path(urllib.parse.urlparse(self.url or "").path).name


# --- finding the data -------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A local folder or file to read, and how an error should name it: `origin` says where the
    path came from ("RNNBENCH_IMDB=/x/y.tar.gz", "imdb data /x/y", "downloaded imdb copy /c/f")."""

    path: Path
    origin: str


def resolve_source(dataset: TextDataset, path: str | os.PathLike | None = None) -> Source:
    """The source to read, first match wins: `path` > `$RNNBENCH_<NAME>` > a verified copy in the
    cache > a download into the cache."""
    if path is not None:
        origin = f"{dataset.name} data {path}"
    elif os.environ.get(dataset.env_var):
        path = os.environ[dataset.env_var]
        origin = f"{dataset.env_var}={path}"
    else:
        downloaded = download(dataset, cache_dir())
        return Source(downloaded, f"downloaded {dataset.name} copy {downloaded}")
    local = Path(path).expanduser()
    if not local.exists():
        raise DataError(f"{origin} does not exist; give the path of {dataset.source_kind} holding {dataset.layout}")
    return Source(local, origin)


def download(dataset: TextDataset, folder: Path) -> Path:
    """Fetch the dataset into `folder` unless a copy with the right checksum is already there.

    pooch checks the hash and moves the file into place only when it matches, so a half or bad
    download is never trusted; our downloader keeps the partial bytes in `<file>.part` and asks the
    server for the rest with an HTTP Range request after an interruption."""
    looked = f"no {dataset.name} data: no path given, {dataset.env_var} unset, nothing in {folder}"
    fix = f"pass --data PATH ({dataset.source_kind} holding {dataset.layout}) or set {dataset.env_var} to it"
    if dataset.url is None:
        raise DataError(f"{looked}, and {dataset.name} has no download; {fix}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / (dataset.filename + ".part")
        fetched = pooch.retrieve(
            dataset.url, dataset.known_hash, fname=dataset.filename, path=folder, downloader=ResumableDownload(part)
        )
        return Path(fetched)
    except (urllib.error.URLError, OSError) as error:
        raise DataError(f"{looked}, and downloading {dataset.url} failed ({_first_line(error)}); {fix}") from None
    except ValueError as error:  # pooch: checksum mismatch
        raise DataError(f"download of {dataset.url} is corrupt ({_first_line(error)}); run again to re-download") from None


class ResumableDownload:
    """A pooch downloader that resumes from `part` and prints coarse progress to stderr.

    pooch hands us a temporary output name that changes every call, so the partial bytes live
    under a fixed name of their own."""

    def __init__(self, part: Path):
        self.part = part

    def __call__(self, url: str, output_file: str, pooch_obj: object, check_only: bool = False) -> None:
        have = self.part.stat().st_size if self.part.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                if have and response.status != 206:  # the server ignored Range: start over
                    have = 0
                total = have + int(response.headers.get("Content-Length") or 0)
                with open(self.part, "ab" if have else "wb") as out:
                    _copy(response, out, have, total, url)
        except urllib.error.HTTPError as error:
            if error.code != 416:  # 416: the .part already holds the whole file
                raise
        os.replace(self.part, output_file)


def _copy(response, out, have: int, total: int, url: str) -> None:
    shown = -1
    while chunk := response.read(1 << 20):
        out.write(chunk)
        have += len(chunk)
        percent = 100 * have // total if total else 0
        if percent // 10 > shown:
            shown = percent // 10
            print(f"downloading {url}: {have / 1e6:.1f} MB ({percent}%)", file=sys.stderr)


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


# --- reading a source -------------------------------------------------------------------------


def read_files(path: Path, pattern: re.Pattern[str]) -> Iterator[tuple[re.Match[str], str]]:
    """(match, UTF-8 text) of every file whose /-separated path `pattern` finds (re.search), in a
    folder or in a tar archive (any compression) read without extracting it."""
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            match = pattern.search(file.as_posix())
            if match and file.is_file():
                yield match, file.read_text(encoding="utf-8")
        return
    try:
        archive = tarfile.open(path, "r:*")
    except tarfile.ReadError:  # tarfile's own message ends in a list of the compressions it tried
        raise tarfile.ReadError("neither a folder nor a tar archive") from None
    with archive:
        for member in archive:
            match = pattern.search(member.name)
            if match and member.isfile():
                yield match, archive.extractfile(member).read().decode("utf-8")


@contextmanager
def _reading(dataset: TextDataset, source: Source) -> Iterator[None]:
    """Turn what a broken source raises while being read into one line naming it."""
    try:
        yield
    except READ_ERRORS as error:
        raise DataError(
            f"{source.origin} could not be read ({_first_line(error)}); expected {dataset.source_kind} holding "
            f"{dataset.layout}; if it was downloaded it may be truncated or corrupt: fetch it again"
        ) from None


def _examples(dataset: TextDataset, source: Source) -> Iterator[Example]:
    """The dataset's examples, each checked to have a known split and class."""
    for example in dataset.read(source.path):
        if example.split not in SPLITS or example.label not in dataset.class_names:
            raise DataError(
                f"{source.origin} holds an example of split {example.split!r}, class {example.label!r}; "
                f"{dataset.name} knows splits {', '.join(SPLITS)} and classes {', '.join(dataset.class_names)}"
            )
        yield example


def _missing_error(dataset: TextDataset, source: Source, missing: set[tuple[str, str]]) -> DataError:
    every = {(split, label) for split in SPLITS for label in dataset.class_names}
    if missing == every:
        return DataError(
            f"{source.origin} is not {dataset.source_kind}: it holds no {dataset.name} examples; expected {dataset.layout}"
        )
    names = ", ".join(f"{split}/{label}" for split, label in sorted(missing))
    return DataError(f"{source.origin} has no {names} examples; expected {dataset.layout}")


def fingerprint(dataset: TextDataset, path: Path) -> str:
    """sha256 of the cache version, the class names and a file's bytes, or of a folder's file
    paths, sizes and modification times."""
    digest = hashlib.sha256("\0".join((CACHE_VERSION, *dataset.class_names)).encode())
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            if file.is_file():
                stat = file.stat()
                digest.update(f"{file.relative_to(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    else:
        with open(path, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def _cache_file(dataset: TextDataset, source: Source) -> Path:
    with _reading(dataset, source):
        return cache_dir() / f"{dataset.name}-{fingerprint(dataset, source.path)[:16]}.npz"


def check_source(dataset: TextDataset, path: str | os.PathLike | None = None) -> Path:
    """Resolve the source as a load would (downloading it if that is where it comes from) and make
    sure it can be read and holds examples of every split and class, without tokenizing, so a CLI
    can refuse bad data before it starts Ray. Returns the path.

    A source whose tokenized corpus is already cached passed this check when it was built. Otherwise
    examples are read until every split and class has one: about 2 s for IMDB's 28.8 MB tarball."""
    source = resolve_source(dataset, path)
    if _cache_file(dataset, source).exists():
        return source.path
    missing = {(split, label) for split in SPLITS for label in dataset.class_names}
    with _reading(dataset, source):
        for example in _examples(dataset, source):
            missing.discard((example.split, example.label))
            if not missing:
                return source.path
    raise _missing_error(dataset, source, missing)


# --- the tokenized corpus ---------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """Every labelled example, tokenized and encoded against one corpus-wide word list (ordered by
    training-set frequency), independent of any vocabulary cut so one cache serves all settings."""

    tokens: np.ndarray  # int32 ids into `words`
    offsets: np.ndarray  # int64, example i is tokens[offsets[i]:offsets[i + 1]]
    labels: np.ndarray  # int64 index into the dataset's class_names
    is_test: np.ndarray  # bool: the dataset's test split
    ids: np.ndarray  # int64 Example.id, to trace an example back to its file or row
    words: np.ndarray  # object array of str


_ARRAYS = ("tokens", "offsets", "labels", "is_test", "ids")


def load_corpus(dataset: TextDataset, source: Source) -> Corpus:
    """The tokenized corpus from the cache, building (and caching) it on the first call."""
    cached = _cache_file(dataset, source)
    if cached.exists():
        with np.load(cached) as stored:
            words = np.array(stored["words"].tobytes().decode().split("\n"), dtype=object)
            return Corpus(words=words, **{name: stored[name] for name in _ARRAYS})
    corpus = _build_corpus(dataset, source, cached.parent)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp.npz")
    words = np.frombuffer("\n".join(corpus.words).encode(), dtype=np.uint8)
    np.savez(partial, words=words, **{name: getattr(corpus, name) for name in _ARRAYS})
    os.replace(partial, cached)
    return corpus


def _build_corpus(dataset: TextDataset, source: Source, cache: Path) -> Corpus:
    with _reading(dataset, source):
        examples = list(_examples(dataset, source))
    missing = {(split, label) for split in SPLITS for label in dataset.class_names}
    missing -= {(e.split, e.label) for e in examples}
    if missing:
        raise _missing_error(dataset, source, missing)
    # said once the source has proved readable, so a bad source gets its one error line alone
    print(f"tokenizing {len(examples):,} examples of {source.path} (first load; cached in {cache})", file=sys.stderr)
    class_index = {label: i for i, label in enumerate(dataset.class_names)}
    examples.sort(key=lambda e: (e.split, class_index[e.label], e.id))
    index: dict[str, int] = {}
    encoded = [[index.setdefault(w, len(index)) for w in tokenize(e.text)] for e in examples]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    tokens = np.fromiter((t for example in encoded for t in example), dtype=np.int32, count=int(offsets[-1]))
    is_test = np.array([e.split == "test" for e in examples])
    words = np.array(list(index), dtype=object)
    # renumber words by training frequency, so the cached word list reads like a vocabulary
    counts = np.bincount(tokens[np.repeat(~is_test, lengths)], minlength=len(words))
    order = np.lexsort((np.arange(len(words)), -counts))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return Corpus(
        tokens=rank[tokens].astype(np.int32),
        offsets=offsets,
        labels=np.array([class_index[e.label] for e in examples], dtype=np.int64),
        is_test=is_test,
        ids=np.array([e.id for e in examples], dtype=np.int64),
        words=words[order],
    )


# --- splits and vocabulary --------------------------------------------------------------------


@dataclass(frozen=True)
class TextData:
    """Encoded splits ready for batching. `eval` is the validation split (final=False) or the
    test split (final=True); `eval_name` says which ("val" or "test"). Labels index `class_names`."""

    train: Sequences
    eval: Sequences
    vocab: tuple[str, ...]
    eval_name: str
    class_names: tuple[str, ...]
    train_rows: np.ndarray  # rows of the Corpus, to trace an example back to its file
    eval_rows: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def chance_acc(self) -> float:
        """The accuracy of always predicting the eval split's most common class: a classifier
        stuck there has learned nothing (a small subset is rarely balanced, so not 1 / classes)."""
        return float(np.bincount(self.eval.labels, minlength=self.num_classes).max() / len(self.eval))


def load_text(
    dataset: TextDataset,
    source: str | os.PathLike | None = None,
    *,
    final: bool = False,
    split_seed: int = 0,
    max_vocab: int | None = None,
    min_count: int = 1,
    vocab: tuple[str, ...] | None = None,
    subset: int | None = None,
) -> TextData:
    """Encoded splits of `dataset`, read from `source` (see resolve_source for where else it looks).

    final=False: 80% of the training split to train on and a validation split of the other 20%
    (20% of each class), drawn by `split_seed` and the same for every trial.
    final=True: the dataset's own train / test split.
    The vocabulary comes from the training split only: words seen at least `min_count` times, the
    `max_vocab` most frequent (not counting the four specials `.pad .start .end .unk` = 0-3);
    pass `vocab` instead to encode with an existing model's vocabulary (e.g. when continuing a
    final=False model on the final=True split). `subset` keeps a random `subset` training examples
    and a quarter as many evaluation examples, for quick runs.
    """
    corpus = load_corpus(dataset, resolve_source(dataset, source))
    rng = np.random.default_rng(split_seed)
    train_idx = np.flatnonzero(~corpus.is_test)
    if final:
        eval_idx = np.flatnonzero(corpus.is_test)
    else:
        by_class = (train_idx[corpus.labels[train_idx] == y] for y in range(len(dataset.class_names)))
        val = np.concatenate([rng.choice(rows, round(len(rows) * VAL_FRACTION), replace=False) for rows in by_class])
        train_idx, eval_idx = np.setdiff1d(train_idx, val), np.sort(val)
    if subset is not None:
        if subset > len(train_idx):  # silently training on fewer examples than asked would mislead
            raise DataError(
                f"subset {subset} is larger than the training split ({len(train_idx)} examples); "
                f"pass a subset <= {len(train_idx)}"
            )
        train_idx = np.sort(rng.choice(train_idx, subset, replace=False))
        eval_idx = np.sort(rng.choice(eval_idx, min(max(subset // 4, 1), len(eval_idx)), replace=False))
    everything = Sequences(corpus.tokens, corpus.offsets, corpus.labels)
    train, evaluation = everything.subset(train_idx), everything.subset(eval_idx)
    if vocab is None:
        vocab = build_vocab(corpus.words, train.tokens, max_vocab, min_count)
    remap = _remap(corpus.words, vocab)
    return TextData(
        train=Sequences(remap[train.tokens], train.offsets, train.labels),
        eval=Sequences(remap[evaluation.tokens], evaluation.offsets, evaluation.labels),
        vocab=tuple(vocab),
        eval_name="test" if final else "val",
        class_names=dataset.class_names,
        train_rows=train_idx,
        eval_rows=eval_idx,
    )


def build_vocab(words: np.ndarray, train_tokens: np.ndarray, max_vocab: int | None, min_count: int) -> tuple[str, ...]:
    """SPECIALS, then the training words seen at least `min_count` times, most frequent first
    (ties in corpus order), at most `max_vocab` of them."""
    counts = np.bincount(train_tokens, minlength=len(words))
    order = np.lexsort((np.arange(len(words)), -counts))
    kept = order[counts[order] >= min_count][:max_vocab]
    return SPECIALS + tuple(words[kept].tolist())


def _remap(words: np.ndarray, vocab: tuple[str, ...]) -> np.ndarray:
    """Lookup table from corpus word ids to vocabulary ids (unknown words → .unk)."""
    position = {word: i for i, word in enumerate(vocab)}
    return np.array([position.get(word, UNK) for word in words.tolist()], dtype=np.int32)
