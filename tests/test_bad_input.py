"""Every command line and `rnnbench.results.load` refuses bad input the same way, before Ray starts:
a non-zero exit, exactly one stderr line (`error: ...`, or `rnnbench-results: error: ...`) that
names the flag or the problem, and no experiment folder left under the storage.

Each case calls a CLI's `main` in this process (the time per case is mostly argparse), with the
files it needs written in tmp_path."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from rnnbench import record
from rnnbench.data.imdb import load_imdb
from rnnbench.errors import ResultsError
from rnnbench.results import load
from rnnbench.results.cli import main as results_main
from rnnbench.sweep.cli import main as grid_main
from rnnbench.sweep.search import main as search_main
from rnnbench.train.__main__ import main as train_main

NAME = "exp"  # the experiment name every sweep case asks for; no folder of that name may appear
# Reported, not fixed here (rnnbench/data/text.py is not this test's to change): a data source
# that is not in the cache prints "tokenizing <path> (first load ...)" before it is read, so a bad
# one gives that line and then the error line. strict: the marker must go once the line is gone.


def imdb_grid(argv: list[str]) -> int:
    return grid_main("imdb", "", argv)


def grammar_grid(argv: list[str]) -> int:
    return grid_main("grammar", "", argv)


def search(argv: list[str]) -> int:
    return search_main("", argv)


def write_files(tmp_path: Path, tiny_imdb: Path) -> dict[str, str]:
    """The paths the cases name, by placeholder: {data} a tiny aclImdb folder, {storage} the
    results folder, {missing} a path that does not exist, {empty} an empty folder, {garbage} a
    file that is neither a folder nor a tarball, {empty_tar} a tarball with nothing in it,
    {file} a regular file (a storage under it cannot be written), {exp} a tiny experiment."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "garbage.tar.gz").write_bytes(b"\x00 not an archive \xff" * 100)
    with tarfile.open(tmp_path / "empty.tar.gz", "w:gz"):
        pass
    (tmp_path / "file").write_text("a regular file\n")
    return {
        "data": str(tiny_imdb),
        "storage": str(tmp_path / "storage"),
        "missing": str(tmp_path / "missing"),
        "empty": str(tmp_path / "empty"),
        "garbage": str(tmp_path / "garbage.tar.gz"),
        "empty_tar": str(tmp_path / "empty.tar.gz"),
        "file": str(tmp_path / "file"),
        "exp": str(write_experiment(tmp_path / "tiny_exp")),
    }


def write_experiment(path: Path) -> Path:
    """A two-member, two-epoch experiment in the record's files (rnnbench.record): member.json and rows.jsonl."""
    fs = pafs.LocalFileSystem()
    for seed in (0, 1):
        name = f"lstm_lr0.1_seed{seed}"
        folder = record.member_folder(str(path), name)
        config = {"model": "lstm", "lr": 0.1, "seed": seed, "epochs": 2}
        record.write_json(fs, f"{folder}/{record.MEMBER}", {"name": name, "group": name, "config": config})
        for e in (1, 2):
            record.append_row(
                fs, folder, {"epoch": e, "val_acc": 0.6 + 0.1 * e + 0.01 * seed, "train_loss": 1.0 / e, "diverged": False}
            )
    return path


IMDB = ["--data", "{data}", "--storage", "{storage}", "--name", NAME]
GRAMMAR = ["--n", "100", "--storage", "{storage}", "--name", NAME]
SEARCH = ["--task", "grammar", "--n", "100", "--storage", "{storage}", "--name", NAME]

# (the CLI, its arguments with {placeholders}, a piece of the one error line)
CASES: list = [
    # sweeps/imdb_grid.py
    (imdb_grid, [*IMDB, "--lrs"], "argument --lrs: expected at least one argument"),
    (imdb_grid, [*IMDB, "--lrs", "0.1", "-0.5"], "lr must be > 0"),
    (imdb_grid, [*IMDB, "--lrs", "0"], "lr must be > 0"),
    (imdb_grid, [*IMDB, "--models", "transformer"], "unknown model 'transformer'"),
    (imdb_grid, [*IMDB, "--seeds", "one"], "argument --seeds: invalid int value: 'one'"),
    (imdb_grid, [*IMDB, "--seeds", "-1"], "seed must be >= 0"),
    (imdb_grid, [*IMDB, "--epochs", "0"], "epochs must be > 0"),
    (imdb_grid, [*IMDB, "--batch-size", "0"], "batch_size must be > 0"),
    (imdb_grid, [*IMDB, "--batch-size", "5000"], "batch_size 5000 is larger than the training split (160 reviews)"),
    (imdb_grid, [*IMDB, "--cpus-per-trial", "0"], "--cpus-per-trial must be > 0"),
    (imdb_grid, [*IMDB, "--cpus-per-trial", "-1"], "--cpus-per-trial must be > 0"),
    (imdb_grid, [*IMDB, "--gpus-per-trial", "-1"], "--gpus-per-trial must be >= 0"),
    (imdb_grid, [*IMDB, "--max-concurrent", "0"], "--max-concurrent must be >= 1"),
    (imdb_grid, [*IMDB, "--max-concurrent", "-1"], "--max-concurrent must be >= 1"),
    (imdb_grid, [*IMDB, "--group", "pairs"], "argument --group: invalid choice: 'pairs'"),
    (imdb_grid, [*IMDB, "--how", "mean"], "argument --how: invalid choice: 'mean'"),
    (imdb_grid, [*IMDB, "--preset", "huge"], "argument --preset: invalid choice: 'huge'"),
    (imdb_grid, [*IMDB, "--lrs", "nan"], "lr must be > 0 and finite"),
    (imdb_grid, [*IMDB, "--name", "../escape"], "argument --name: '../escape' is not a folder name"),
    (imdb_grid, [*IMDB, "--name", "a/b"], "argument --name: 'a/b' is not a folder name"),
    (imdb_grid, [*IMDB, "--name", ""], "argument --name: '' is not a folder name"),
    (imdb_grid, [*IMDB, "--storage", "{file}"], "is a file, not a folder"),
    (imdb_grid, [*IMDB, "--models", "mlp", "mlp"], "--models repeats mlp; give each value once"),
    (imdb_grid, [*IMDB, "--confirm"], "no first stage at"),
    (imdb_grid, [*IMDB, "--data", "{missing}"], "imdb data {missing} does not exist"),
    (imdb_grid, [*IMDB, "--data", "{empty}"], "holds no imdb examples"),
    (imdb_grid, [*IMDB, "--data", "{garbage}"], "could not be read (neither a folder nor a tar archive)"),
    (imdb_grid, [*IMDB, "--data", "{empty_tar}"], "holds no imdb examples"),
    (imdb_grid, [*IMDB, "--subset", "0"], "subset must be > 0"),
    (imdb_grid, [*IMDB, "--subset", "100000"], "subset 100000 is larger than the training split (160 examples)"),
    (imdb_grid, [*IMDB, "--momentum", "-0.9"], "momentum must be >= 0"),
    (imdb_grid, [*IMDB, "--batching", "sorted"], "unknown batching 'sorted'"),
    (imdb_grid, [*IMDB, "--device", "tpu"], "unknown device 'tpu'"),
    (imdb_grid, [*IMDB, "--storage", "{file}/results"], "is not writable"),
    # sweeps/grammar_grid.py
    (grammar_grid, [*GRAMMAR, "--datasets", "xml"], "unknown grammar 'xml'"),
    (grammar_grid, [*GRAMMAR, "--lrs", "-1"], "lr must be > 0"),
    (grammar_grid, [*GRAMMAR, "--cell", "rnn"], "unknown cell 'rnn'"),
    (grammar_grid, [*GRAMMAR, "--temperatures", "0.5", "-1"], "temperatures must be >= 0"),
    (grammar_grid, [*GRAMMAR, "--num-layers", "4"], "num_layers must be 1, 2 or 3"),
    (grammar_grid, [*GRAMMAR, "--n", "0"], "n must be > 0"),
    (grammar_grid, [*GRAMMAR, "--clip-grad", "0"], "clip_grad must be > 0"),
    (grammar_grid, [*GRAMMAR, "--batch-size", "101"], "batch_size 101 is larger than the training set (n=100 words)"),
    (grammar_grid, [*GRAMMAR, "--device", "tpu"], "unknown device 'tpu'"),
    (grammar_grid, [*GRAMMAR, "--batching", "sorted"], "unknown batching 'sorted'"),
    (grammar_grid, [*GRAMMAR, "--confirm"], "unrecognized arguments: --confirm"),
    (grammar_grid, [*GRAMMAR, "--lrs", "inf"], "lr must be > 0 and finite"),
    (grammar_grid, [*GRAMMAR, "--lrs", "1e400"], "lr must be > 0 and finite"),
    (grammar_grid, [*GRAMMAR, "--seeds", "99999999999999999999999"], "seed must be >= 0 and <= 4294967295"),
    (grammar_grid, [*GRAMMAR, "--seeds", "0", "0"], "--seeds repeats 0; give each value once"),
    (grammar_grid, [*GRAMMAR, "--temperatures", "nan"], "temperatures must be >= 0, finite and not empty"),
    # sweeps/search.py
    (search, [*SEARCH, "--lr-range", "1", "0.1"], "--lr-range is inverted"),
    (search, [*SEARCH, "--lr-range", "0.1", "0.1"], "--lr-range is empty"),
    (search, [*SEARCH, "--lr-range", "0", "1"], "--lr-range must be > 0"),
    (search, [*SEARCH, "--lr-range", "-1", "1"], "--lr-range must be > 0"),
    (search, [*SEARCH, "--num-seeds", "0"], "--num-seeds must be >= 1"),
    (search, [*SEARCH, "--budget", "0"], "--budget must be >= 1"),
    (search, [*SEARCH, "--startup-trials", "-1"], "--startup-trials must be >= 0"),
    (search, [*SEARCH, "--metric", "val_acc"], "--metric val_acc is not reported by grammar trials"),
    (search, [*SEARCH, "--task", "speech"], "argument --task: invalid choice: 'speech'"),
    (search, [*SEARCH, "--dataset", "xml"], "unknown grammar 'xml'"),
    (search, [*SEARCH, "--cpus-per-trial", "0"], "--cpus-per-trial must be > 0"),
    (search, [*SEARCH, "--time-budget", "-5"], "--time-budget must be > 0 seconds"),
    (search, [*SEARCH, "--time-budget", "0"], "--time-budget must be > 0 seconds"),
    (search, ["--task", "imdb", "--model", "transformer", "--storage", "{storage}", "--name", NAME], "unknown model"),
    # python -m rnnbench.train
    (train_main, ["imdb", "--model", "transformer"], "unknown model 'transformer'"),
    (train_main, ["grammar", "--dataset", "xml"], "unknown grammar 'xml'"),
    (train_main, ["grammar", "--resume", "{missing}/run.pt"], "--resume {missing}/run.pt: no such checkpoint file"),
    (train_main, ["grammar", "--seed", "x"], "argument --seed: invalid int value: 'x'"),
    (train_main, ["grammar", "--epochs", "0"], "epochs must be > 0"),
    (train_main, ["lstm"], "argument task: invalid choice: 'lstm'"),
    (train_main, ["imdb", "--model", "mlp", "--data", "{missing}"], "imdb data {missing} does not exist"),
    # rnnbench-results
    (results_main, ["{missing}"], "{missing} does not exist"),
    (results_main, ["{file}"], "{file} is a file, not an experiment folder"),
    (results_main, ["{empty}"], "{empty} is not an experiment folder"),
    (results_main, ["{exp}", "--metric", "nope"], "available metrics: train_loss, val_acc"),
    (results_main, ["list", "{missing}"], "{missing} is not a folder"),
    (results_main, ["{exp}", "--plot", "{file}"], "--plot {file} is a file; pass a folder"),
    (results_main, ["{exp}", "--tensorboard", "{file}"], "--tensorboard {file} is a file; pass a folder"),
]


def case_id(case: tuple | object) -> str:
    """E.g. `imdb_grid:--data {empty}`: the CLI and the flags that make the case (not the shared ones)."""
    cli, argv, _ = getattr(case, "values", case)
    shared = set(IMDB + GRAMMAR + SEARCH) - {"--task", "grammar", "--n", "100"}
    return f"{cli.__name__}:{' '.join(a for a in argv if a not in shared)}"


@pytest.fixture(scope="module")
def tokenized_cache(tmp_path_factory, tiny_imdb) -> Path:
    """A cache holding the tiny dataset's tokens, so no case prints the first load's progress line."""
    cache = tmp_path_factory.mktemp("tokenized")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RNNBENCH_CACHE", str(cache))
        load_imdb(tiny_imdb)
    return cache


@pytest.mark.parametrize("cli, argv, message", CASES, ids=[case_id(c) for c in CASES])
def test_bad_input_is_one_error_line_and_no_experiment(
    cli, argv, message, tmp_path, tiny_imdb, tokenized_cache, monkeypatch, capsys
):
    monkeypatch.setenv("RNNBENCH_CACHE", str(tokenized_cache))
    # a case that gets as far as starting Ray fails in seconds on this address instead of running a sweep
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    paths = write_files(tmp_path, tiny_imdb)
    capsys.readouterr()
    try:
        code = cli([arg.format(**paths) for arg in argv])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    prefix = "rnnbench-results: error: " if cli is results_main else "error: "
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(prefix), err
    assert message.format(**paths) in err
    assert not (Path(paths["storage"]) / NAME).exists() and not Path(paths["storage"]).exists()  # nothing created


@pytest.mark.parametrize("where", ["missing", "file", "empty"])
def test_load_refuses_what_is_not_an_experiment_in_one_line(where, tmp_path, tiny_imdb):
    path = write_files(tmp_path, tiny_imdb)[where]
    with pytest.raises(ResultsError, match="does not exist|not an experiment folder") as error:
        load(path)
    assert "\n" not in str(error.value) and path in str(error.value)


def test_the_tiny_experiment_itself_loads(tmp_path, tiny_imdb):
    """The good input beside the bad: the hand-made experiment is read, so the --metric case fails on the metric."""
    df = load(write_files(tmp_path, tiny_imdb)["exp"])
    assert len(df) == 4 and set(df["val_acc"].round(2)) == {0.7, 0.8, 0.71, 0.81}
