"""Shared fixtures: a tiny generated aclImdb dataset, an isolated cache, and the real data if present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from rnnbench.data.tiny_imdb import write_tiny_imdb, write_tiny_imdb_tarball

# One torch thread per test process, and per process the tests start (sweeps, Ray workers): on 2
# cores, torch's default of one thread per core made the loop tests ~4x slower by oversubscription.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)
# Ray bound to 127.0.0.1 only, in this process and every sweep it starts (set before `import ray`)
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

SHARED_IMDB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "aclImdb_labelled.tar.gz"
REAL_IMDB = Path(os.environ.get("RNNBENCH_IMDB") or SHARED_IMDB)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own cache folder and no RNNBENCH_IMDB, so nothing leaks between tests
    or into the user's ~/.cache."""
    monkeypatch.setenv("RNNBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("RNNBENCH_IMDB", raising=False)


@pytest.fixture(scope="session")
def tiny_imdb(tmp_path_factory) -> Path:
    return write_tiny_imdb(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_tarball(tmp_path_factory) -> Path:
    return write_tiny_imdb_tarball(tmp_path_factory.mktemp("tinytar"))


@pytest.fixture(scope="session")
def real_imdb() -> Path:
    if not REAL_IMDB.exists():
        pytest.skip(f"real IMDB data not found at {REAL_IMDB}; set RNNBENCH_IMDB to run these tests")
    return REAL_IMDB


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory) -> Path:
    """One cache shared by the real-data tests, so the 50,000 reviews are tokenized once."""
    return tmp_path_factory.mktemp("realcache")
