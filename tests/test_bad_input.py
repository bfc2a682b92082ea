"""Every command line and `rnnbench.results.load` refuses bad input the same way, before Ray starts:
a non-zero exit, exactly one stderr line (`error: ...`, or `rnnbench-results: error: ...`) that
names the flag or the problem, and no experiment folder left under the storage.

Each case calls a CLI's `main` in this process (the time per case is mostly argparse), with the
files it needs written in tmp_path."""

from __future__ import annotations

import subprocess
import sys
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
from rnnbench.train.configs import local_gpus

NAME = "exp"  # the experiment name every sweep case asks for; no folder of that name may appear


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
    (imdb_grid, [*IMDB, "--lrs", "0.1", "-0.5"], "--lrs -0.5: lr must be > 0"),
    (imdb_grid, [*IMDB, "--lrs", "0"], "--lrs 0: lr must be > 0"),
    (imdb_grid, [*IMDB, "--seed", "3"], "unrecognized arguments: --seed 3"),  # not an abbreviation of --seeds
    (imdb_grid, [*IMDB, "--lrs", "-1"], "--lrs -1: lr must be > 0"),
    (imdb_grid, [*IMDB, "--lrs", "inf"], "--lrs inf: lr must be > 0 and finite"),
    (imdb_grid, [*IMDB, "--lrs", "1e400"], "--lrs inf: lr must be > 0 and finite"),
    (imdb_grid, [*IMDB, "--lrs", "nan"], "--lrs nan: lr must be > 0 and finite"),
    (imdb_grid, [*IMDB, "--lrs", "0.1", "0.1"], "--lrs repeats 0.1; give each value once"),
    (imdb_grid, [*IMDB, "--lrs", "0.1", "0.1000000001"], "--lrs repeats 0.1; give each value once"),
    (imdb_grid, [*IMDB, "--models", "transformer"], "argument --models: invalid choice: 'transformer' (choose from 'mlp'"),
    (imdb_grid, [*IMDB, "--models", "nosuch"], "argument --models: invalid choice: 'nosuch'"),
    (imdb_grid, [*IMDB, "--models", "mlp", "mlp"], "--models repeats mlp; give each value once"),
    (imdb_grid, [*IMDB, "--seeds", "one"], "argument --seeds: invalid int value: 'one'"),
    (imdb_grid, [*IMDB, "--seeds", "-1"], "--seeds -1: seed must be >= 0"),
    (imdb_grid, [*IMDB, "--seeds", "99999999999999999999999"], "seed must be >= 0 and <= 4294967295"),
    (imdb_grid, [*IMDB, "--seeds", "0", "0"], "--seeds repeats 0; give each value once"),
    (imdb_grid, [*IMDB, "--epochs", "0"], "epochs must be > 0"),
    (imdb_grid, [*IMDB, "--epochs", "-1"], "epochs must be > 0"),
    (imdb_grid, [*IMDB, "--epochs", "1.5"], "argument --epochs: invalid int value: '1.5'"),
    (imdb_grid, [*IMDB, "--batch-size", "0"], "batch_size must be > 0"),
    (imdb_grid, [*IMDB, "--batch-size", "5000"], "batch_size 5000 is larger than the training split (160 reviews)"),
    (imdb_grid, [*IMDB, "--embed-dim", "0"], "embed_dim must be > 0"),
    (imdb_grid, [*IMDB, "--hidden-dim", "-3"], "hidden_dim must be > 0"),
    (imdb_grid, [*IMDB, "--min-count", "0"], "min_count must be > 0"),
    (imdb_grid, [*IMDB, "--max-vocab", "0"], "max_vocab must be > 0"),
    (imdb_grid, [*IMDB, "--split-seed", "-1"], "split_seed must be >= 0"),
    (imdb_grid, [*IMDB, "--order-seed", "-1"], "order_seed must be >= 0"),
    (imdb_grid, [*IMDB, "--final", "maybe"], "argument --final: expected true or false, got 'maybe'"),
    (imdb_grid, [*IMDB, "--compile", "2"], "argument --compile: expected true or false, got '2'"),
    (imdb_grid, [*IMDB, "--dataset", "sst"], "argument --dataset: invalid choice: 'sst' (choose from 'imdb')"),
    (imdb_grid, [*IMDB, "--cpus-per-trial", "0"], "--cpus-per-trial must be > 0"),
    (imdb_grid, [*IMDB, "--cpus-per-trial", "-1"], "--cpus-per-trial must be > 0"),
    (imdb_grid, [*IMDB, "--gpus-per-trial", "-1"], "--gpus-per-trial must be >= 0"),
    (imdb_grid, [*IMDB, "--max-concurrent", "0"], "--max-concurrent must be >= 1"),
    (imdb_grid, [*IMDB, "--max-concurrent", "-1"], "--max-concurrent must be >= 1"),
    (imdb_grid, [*IMDB, "--group", "pairs"], "argument --group: invalid choice: 'pairs'"),
    (imdb_grid, [*IMDB, "--how", "mean"], "argument --how: invalid choice: 'mean'"),
    (imdb_grid, [*IMDB, "--preset", "huge"], "argument --preset: invalid choice: 'huge'"),
    (imdb_grid, [*IMDB, "--name", "../escape"], "argument --name: '../escape' is not a folder name"),
    (imdb_grid, [*IMDB, "--name", "a/b"], "argument --name: 'a/b' is not a folder name"),
    (imdb_grid, [*IMDB, "--name", ""], "argument --name: '' is not a folder name"),
    (imdb_grid, [*IMDB, "--name", ".hidden"], "argument --name: '.hidden' is not a folder name"),
    (imdb_grid, [*IMDB, "--name", ".."], "argument --name: '..' is not a folder name"),
    (imdb_grid, [*IMDB, "--storage", "{file}"], "storage {file} is a file, not a folder; pass a folder as --storage"),
    (imdb_grid, [*IMDB, "--storage", "{file}/results"], "storage {file}/results lies under the file {file}, not a folder"),
    (imdb_grid, [*IMDB, "--confirm"], "no first stage at"),
    (imdb_grid, [*IMDB, "--data", "{missing}"], "imdb data {missing} does not exist"),
    (imdb_grid, [*IMDB, "--data", "{empty}"], "holds no imdb examples"),
    (imdb_grid, [*IMDB, "--data", "{garbage}"], "could not be read (neither a folder nor a tar archive)"),
    (imdb_grid, [*IMDB, "--data", "{empty_tar}"], "holds no imdb examples"),
    (imdb_grid, [*IMDB, "--subset", "0"], "subset must be > 0"),
    (imdb_grid, [*IMDB, "--subset", "100000"], "subset 100000 is larger than the training split (160 examples)"),
    (imdb_grid, [*IMDB, "--momentum", "-0.9"], "momentum must be >= 0 and < 1"),
    (imdb_grid, [*IMDB, "--momentum", "1.5"], "momentum must be >= 0 and < 1, got 1.5"),
    (imdb_grid, [*IMDB, "--momentum", "1"], "momentum must be >= 0 and < 1, got 1.0"),
    (imdb_grid, [*IMDB, "--batching", "sorted"], "argument --batching: invalid choice: 'sorted'"),
    (imdb_grid, [*IMDB, "--device", "tpu"], "unknown device 'tpu'; use auto, cpu or cuda[:N]"),
    (imdb_grid, [*IMDB, "--device", "cuda:x"], "unknown device 'cuda:x'"),
    (imdb_grid, [*IMDB, "--nosuch-flag"], "unrecognized arguments: --nosuch-flag"),
    # sweeps/grammar_grid.py
    (grammar_grid, [*GRAMMAR, "--datasets", "xml"], "argument --datasets: invalid choice: 'xml' (choose from 'brackets'"),
    (grammar_grid, [*GRAMMAR, "--datasets", "ndfa", "ndfa"], "--datasets repeats ndfa; give each value once"),
    (grammar_grid, [*GRAMMAR, "--lrs", "-1"], "--lrs -1: lr must be > 0"),
    (grammar_grid, [*GRAMMAR, "--lrs", "0"], "--lrs 0: lr must be > 0"),
    (grammar_grid, [*GRAMMAR, "--lrs", "inf"], "--lrs inf: lr must be > 0 and finite"),
    (grammar_grid, [*GRAMMAR, "--lrs", "1e400"], "--lrs inf: lr must be > 0 and finite"),
    (grammar_grid, [*GRAMMAR, "--lrs", "nan"], "--lrs nan: lr must be > 0 and finite"),
    (grammar_grid, [*GRAMMAR, "--cell", "rnn"], "argument --cell: invalid choice: 'rnn' (choose from 'lstm', 'gru')"),
    (grammar_grid, [*GRAMMAR, "--temperatures", "0.5", "-1"], "temperatures must be >= 0"),
    (grammar_grid, [*GRAMMAR, "--temperatures", "nan"], "temperatures must be >= 0, finite and not empty"),
    (grammar_grid, [*GRAMMAR, "--temperatures", "inf"], "temperatures must be >= 0, finite and not empty"),
    (grammar_grid, [*GRAMMAR, "--temperatures", "0.5", "0.5"], "temperatures repeat a value"),
    (grammar_grid, [*GRAMMAR, "--num-layers", "4"], "num_layers must be 1, 2 or 3"),
    (grammar_grid, [*GRAMMAR, "--num-layers", "0"], "num_layers must be 1, 2 or 3"),
    (grammar_grid, [*GRAMMAR, "--n", "0"], "n must be > 0"),
    (grammar_grid, [*GRAMMAR, "--clip-grad", "0"], "clip_grad must be > 0"),
    (grammar_grid, [*GRAMMAR, "--clip-grad", "nan"], "clip_grad must be > 0 and finite"),
    (grammar_grid, [*GRAMMAR, "--batch-size", "101"], "batch_size 101 is larger than the training set (n=100 words)"),
    (grammar_grid, [*GRAMMAR, "--num-samples", "0"], "num_samples must be > 0"),
    (grammar_grid, [*GRAMMAR, "--max-len", "0"], "max_len must be > 0"),
    (grammar_grid, [*GRAMMAR, "--mask-padding", "maybe"], "argument --mask-padding: expected true or false"),
    (grammar_grid, [*GRAMMAR, "--momentum", "1.5"], "momentum must be >= 0 and < 1"),
    (grammar_grid, [*GRAMMAR, "--epochs", "-1"], "epochs must be > 0"),
    (grammar_grid, [*GRAMMAR, "--device", "tpu"], "unknown device 'tpu'"),
    (grammar_grid, [*GRAMMAR, "--batching", "sorted"], "argument --batching: invalid choice: 'sorted'"),
    (grammar_grid, [*GRAMMAR, "--confirm"], "unrecognized arguments: --confirm"),
    (grammar_grid, [*GRAMMAR, "--seeds", "99999999999999999999999"], "seed must be >= 0 and <= 4294967295"),
    (grammar_grid, [*GRAMMAR, "--seeds", "0", "0"], "--seeds repeats 0; give each value once"),
    (grammar_grid, [*GRAMMAR, "--name", "a/b"], "argument --name: 'a/b' is not a folder name"),
    (grammar_grid, [*GRAMMAR, "--storage", "{file}"], "is a file, not a folder"),
    # sweeps/search.py
    (search, [*SEARCH, "--lr-range", "1", "0.1"], "--lr-range is inverted"),
    (search, [*SEARCH, "--lr-range", "0.1", "0.1"], "--lr-range is empty"),
    (search, [*SEARCH, "--lr-range", "0", "1"], "--lr-range must be > 0"),
    (search, [*SEARCH, "--lr-range", "-1", "1"], "--lr-range must be > 0"),
    (search, [*SEARCH, "--lr-range", "nan", "1"], "--lr-range must be > 0"),
    (search, [*SEARCH, "--lr-range", "0.1", "inf"], "--lr-range inf: lr must be > 0 and finite"),
    (search, [*SEARCH, "--lr-range", "0.1"], "argument --lr-range: expected 2 arguments"),
    (search, [*SEARCH, "--num-seeds", "0"], "--num-seeds must be >= 1"),
    (search, [*SEARCH, "--budget", "0"], "--budget must be >= 1"),
    (search, [*SEARCH, "--startup-trials", "-1"], "--startup-trials must be >= 0"),
    (search, [*SEARCH, "--metric", "val_acc"], "--metric val_acc is not reported by grammar trials"),
    (search, [*SEARCH, "--task", "speech"], "argument --task: invalid choice: 'speech'"),
    (search, [*SEARCH, "--dataset", "xml"], "argument --dataset: invalid choice: 'xml'"),
    (search, [*SEARCH, "--sampler", "grid"], "argument --sampler: invalid choice: 'grid'"),
    (search, [*SEARCH, "--pruner", "hyperband"], "argument --pruner: invalid choice: 'hyperband'"),
    (search, [*SEARCH, "--batch-sizes", "0"], "--batch-sizes 0: batch_size must be > 0"),
    (search, [*SEARCH, "--batch-sizes", "32", "32"], "--batch-sizes repeats 32; give each value once"),
    (search, [*SEARCH, "--hidden-dims", "0"], "--hidden-dims 0: hidden_dim must be > 0"),
    (search, [*SEARCH, "--cpus-per-trial", "0"], "--cpus-per-trial must be > 0"),
    (search, [*SEARCH, "--max-concurrent", "0"], "--max-concurrent must be >= 1"),
    (search, [*SEARCH, "--time-budget", "-5"], "--time-budget must be > 0 seconds"),
    (search, [*SEARCH, "--time-budget", "0"], "--time-budget must be > 0 seconds"),
    (search, [*SEARCH, "--time-budget", "nan"], "--time-budget must be > 0 seconds"),
    (search, [*SEARCH, "--name", "../escape"], "argument --name: '../escape' is not a folder name"),
    (search, [*SEARCH, "--storage", "{file}"], "is a file, not a folder"),
    (search, [*SEARCH, "--storage", "s3://bucket/x"], "pass a local or mounted --storage, not s3://bucket/x"),
    (search, [*SEARCH, "--compare-grid", "{missing}"], "--compare-grid: {missing} does not exist"),
    (search, ["--task", "imdb", "--storage", "{storage}", "--model", "transformer"], "argument --model: invalid choice"),
    # python -m rnnbench.train
    (train_main, ["imdb", "--model", "transformer"], "argument --model: invalid choice: 'transformer'"),
    (train_main, ["grammar", "--dataset", "xml"], "argument --dataset: invalid choice: 'xml'"),
    (train_main, ["grammar", "--resume", "{missing}/run.pt"], "--resume {missing}/run.pt: no such checkpoint file"),
    (train_main, ["grammar", "--seed", "x"], "argument --seed: invalid int value: 'x'"),
    (train_main, ["grammar", "--epochs", "0"], "epochs must be > 0"),
    (train_main, ["grammar", "--lr", "inf"], "lr must be > 0 and finite"),
    (train_main, ["grammar", "--momentum", "1.5"], "momentum must be >= 0 and < 1"),
    (train_main, ["grammar", "--device", "cuda:99"], "--device cuda:99: this machine has"),
    (train_main, ["grammar", "--n", "100", "--cuda-graphs", "true", "--device", "cpu"], "cuda_graphs needs a CUDA device"),
    (train_main, ["lstm"], "argument task: invalid choice: 'lstm'"),
    (train_main, ["imdb", "--model", "mlp", "--data", "{missing}"], "imdb data {missing} does not exist"),
    # rnnbench-results
    (results_main, ["{missing}"], "{missing} does not exist"),
    (results_main, ["{file}"], "{file} is a file, not an experiment folder"),
    (results_main, ["{empty}"], "{empty} is not an experiment folder"),
    (results_main, ["{exp}", "--metric", "nope"], "available metrics: train_loss, val_acc"),
    (results_main, ["{exp}", "--per", "nope"], "no column 'nope' in the results"),
    (results_main, ["{exp}", "--how", "mean"], "argument --how: invalid choice: 'mean'"),
    (results_main, ["{exp}", "--ci", "2"], "ci must be between 0 and 1"),
    (results_main, ["{exp}", "--export", "{missing}.txt"], "use a .csv, .parquet or .md file"),
    (results_main, ["list", "{missing}"], "{missing} is not a folder"),
    (results_main, ["{exp}", "--plot", "{file}"], "--plot {file} is a file; pass a folder"),
    (results_main, ["{exp}", "--tensorboard", "{file}"], "--tensorboard {file} is a file; pass a folder"),
]
NO_GPU = pytest.mark.skipif(local_gpus() > 0, reason="refused only on a machine without a GPU")
# Checked against this machine's cores and GPUs, so run with no Ray address (local=True; each is refused before Ray would start)
LOCAL_CASES: list = [
    pytest.param(imdb_grid, [*IMDB, "--cpus-per-trial", "100000"], "no node can hold one trial of 100000 CPUs", True),
    pytest.param(imdb_grid, [*IMDB, "--gpus-per-trial", "1000"], "no node can hold one trial of 1 CPUs and 1000 GPUs", True),
    pytest.param(imdb_grid, [*IMDB, "--device", "cuda:99"], "--device cuda:99: this machine has", True),
    pytest.param(search, [*SEARCH, "--cpus-per-trial", "100000"], "no node can hold one trial of 100000 CPUs", True),
    pytest.param(grammar_grid, [*GRAMMAR, "--device", "cuda"], "--device cuda: this machine has no GPU", True, marks=NO_GPU),
    pytest.param(grammar_grid, [*GRAMMAR, "--gpus-per-trial", "1"], "GPUs (this machine has", True, marks=NO_GPU),
    pytest.param(
        grammar_grid, [*GRAMMAR, "--cuda-graphs", "true"], "--cuda-graphs true: this machine has no GPU", True, marks=NO_GPU
    ),
    pytest.param(imdb_grid, [*IMDB, "--cuda-graphs", "true"], "--cuda-graphs true: this machine has no GPU", True, marks=NO_GPU),
]


def specific(argv: list[str]) -> list[str]:
    """The arguments that make a case: its own, after the shared IMDB / GRAMMAR / SEARCH ones."""
    for shared in (IMDB, GRAMMAR, SEARCH):
        if argv[: len(shared)] == shared:
            return argv[len(shared) :]
    return argv


def case_id(case: tuple | object) -> str:
    """E.g. `imdb_grid --data {empty}`: the CLI and the arguments that make the case."""
    cli, argv = getattr(case, "values", case)[:2]
    name = {train_main: "train", results_main: "rnnbench-results"}.get(cli, cli.__name__)
    return " ".join([name, *specific(argv)])


@pytest.fixture(scope="module")
def tokenized_cache(tmp_path_factory, tiny_imdb) -> Path:
    """A cache holding the tiny dataset's tokens, so no case prints the first load's progress line."""
    cache = tmp_path_factory.mktemp("tokenized")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RNNBENCH_CACHE", str(cache))
        load_imdb(tiny_imdb)
    return cache


def flag_of(argv: list[str]) -> str | None:
    """The flag a case is about: its last flag after the shared arguments (None: a path or a name)."""
    return next((a for a in reversed(specific(argv)) if a.startswith("--")), None)


def run_case(cli, argv: list[str], paths: dict[str, str], capsys) -> tuple[int, str]:
    """The exit code and stderr of one CLI call in this process."""
    capsys.readouterr()
    try:
        code = cli([arg.format(**paths) for arg in argv])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "cli, argv, message, local",
    [(*c, False) for c in CASES] + LOCAL_CASES,
    ids=[case_id(c) for c in CASES + LOCAL_CASES],
)
def test_bad_input_is_one_error_line_and_no_experiment(
    cli, argv, message, local, tmp_path, tiny_imdb, tokenized_cache, monkeypatch, capsys
):
    monkeypatch.setenv("RNNBENCH_CACHE", str(tokenized_cache))
    if local:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    else:  # a case that gets as far as starting Ray fails in seconds on this address instead of running a sweep
        monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    paths = write_files(tmp_path, tiny_imdb)
    code, err = run_case(cli, argv, paths, capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(("error: ", "rnnbench-results: error: ")), err
    assert message.format(**paths) in err
    flag = flag_of(argv)
    assert flag is None or flag in err or flag[2:].replace("-", "_") in err, f"{flag} not named in {err}"
    assert not (Path(paths["storage"]) / NAME).exists() and not Path(paths["storage"]).exists()  # nothing created


def test_at_least_a_hundred_cases():
    assert len(CASES) + len(LOCAL_CASES) >= 100


def test_one_seed_is_a_warning_and_the_grid_goes_on(tmp_path, capsys):
    """`--seeds 3` is one seed (3), likely meant as three: one warning line, then the run (a dry run here)."""
    argv = [*GRAMMAR, "--datasets", "brackets", "--lrs", "0.1", "--epochs", "1", "--dry-run"]
    paths = {"storage": str(tmp_path / "storage")}
    code, err = run_case(grammar_grid, [*argv, "--seeds", "3"], paths, capsys)
    assert code == 0 and err.splitlines() == [
        "warning: one seed (3): no interval or test is possible; for seeds 0, 1, 2 write --seeds 0 1 2"
    ]
    assert run_case(grammar_grid, [*argv, "--seeds", "3", "4"], paths, capsys) == (0, "")


@pytest.mark.parametrize(
    "command",
    [
        "from rnnbench.sweep.cli import main; main('imdb', '', ['--lrs', 'inf', '--storage', STORAGE])",
        "from rnnbench.sweep.cli import main; main('grammar', '', ['--temperatures', 'nan', '--storage', STORAGE])",
        "from rnnbench.sweep.cli import main; main('imdb', '', ['--models', 'nosuch', '--storage', STORAGE])",
        "from rnnbench.sweep.search import main; main('', ['--task', 'grammar', '--time-budget', '-5', '--storage', STORAGE])",
    ],
    ids=["imdb_grid --lrs inf", "grammar_grid --temperatures nan", "imdb_grid --models nosuch", "search --time-budget -5"],
)
def test_a_bad_flag_is_answered_without_torch_or_ray(command, tmp_path):
    """In a fresh interpreter: the refusal imports neither torch nor Ray, which cost seconds to load."""
    script = f"""
import sys
STORAGE = {str(tmp_path / "storage")!r}
try:
    {command}
except SystemExit as exit_:
    print(exit_.code, sorted({{"torch", "ray"}} & set(sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.split("\n")[0] == "2 []", done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "storage").exists()


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
