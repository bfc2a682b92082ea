"""`--help` teaches and answers at once: every option says what it means (not only its default),
booleans read {true,false}, every line fits 100 columns, and it imports none of the heavy parts
(torch, Ray, Optuna, matplotlib, TensorBoard, scipy.stats): they cost seconds on a loaded 2-core
machine and are needed only when a command runs. Checked by the modules a fresh interpreter
imported (`python -X importtime`), not by a clock, so the test says the same on an idle machine
and a busy one."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from rnnbench.config import HELP_WIDTH
from rnnbench.train.configs import ClassifierConfig, GrammarConfig

REPO = Path(__file__).resolve().parent.parent
HEAVY = {"torch", "ray", "optuna", "matplotlib", "tensorboard", "scipy.stats"}
COMMANDS = {
    "imdb_grid": ["sweeps/imdb_grid.py", "--help"],
    "grammar_grid": ["sweeps/grammar_grid.py", "--help"],
    "search": ["sweeps/search.py", "--help"],
    "train": ["-m", "rnnbench.train", "--help"],
    "train imdb": ["-m", "rnnbench.train", "imdb", "--help"],
    "train grammar": ["-m", "rnnbench.train", "grammar", "--help"],
    "search --task imdb": ["sweeps/search.py", "--task", "imdb", "--help"],
    "rnnbench-results": ["-m", "rnnbench.results", "--help"],
    "rnnbench-results list": ["-m", "rnnbench.results", "list", "--help"],
}
BOOL_FLAGS = {
    "--" + field.name.replace("_", "-")
    for cls in (ClassifierConfig, GrammarConfig)
    for field in dataclasses.fields(cls)
    if field.type == "bool"
}


def imported_modules(stderr: str) -> set[str]:
    """Module names from `-X importtime` lines: `import time: self | cumulative | name`."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:") and "|" in line}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_help_imports_no_heavy_library(command: list[str]) -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", *command], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:")
    modules = imported_modules(done.stderr)
    assert "argparse" in modules  # the parse worked: a silent -X importtime would pass anything below
    assert not modules & HEAVY, f"--help imported {sorted(modules & HEAVY)}"


def option_helps(text: str) -> dict[str, str]:
    """Each option's invocation (e.g. `--final {true,false}`) and its help text, from the lines of
    the option sections: an entry starts at `  -`, its help after two spaces or on the next lines."""
    entries: dict[str, str] = {}
    invocation = None
    for line in text.split("\n\n", 1)[1].splitlines():
        if line.startswith("  -"):
            invocation, _, rest = line.strip().partition("  ")
            entries[invocation] = rest.strip()
        elif line.startswith("    ") and invocation is not None:
            entries[invocation] += " " + line.strip()
        else:
            invocation = None
    return entries


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_help_teaches_every_option_in_100_columns(command: list[str]) -> None:
    done = subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    too_wide = [line for line in done.stdout.splitlines() if len(line) > HELP_WIDTH]
    assert not too_wide, too_wide
    helps = option_helps(done.stdout)
    assert "-h, --help" in helps, done.stdout  # the parse above saw the options
    for invocation, text in helps.items():
        if invocation.startswith("{"):  # the sub-commands' list
            continue
        assert text and not text.startswith("default"), f"{invocation}: {text!r} says no meaning"
        assert "None" not in text and "True" not in text and "False" not in text, f"{invocation}: {text!r}"
    for invocation in helps:
        flag, _, metavar = invocation.partition(" ")
        assert flag not in BOOL_FLAGS or metavar == "{true,false}", invocation


def test_help_shows_the_names_a_flag_takes_and_presets_as_flags() -> None:
    done = subprocess.run([sys.executable, "sweeps/imdb_grid.py", "--help"], cwd=REPO, capture_output=True, text=True)
    text = " ".join(done.stdout.split())
    assert "--models MODEL [MODEL ...] the encoder" in text and "any of mlp, elman, elman_naive, lstm, gru" in text
    assert "--batching {bucket,random}" in text and "--final {true,false}" in text
    assert "smoke is --models mlp elman lstm --lrs 0.03 0.3 --seeds 0 1 --epochs 2 --subset 1000" in text
