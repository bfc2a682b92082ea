"""`--help` answers without importing the heavy parts (torch, Ray, Optuna, matplotlib,
TensorBoard, scipy.stats): they cost seconds on a loaded 2-core machine and are needed only when
a command runs. Checked by the modules a fresh interpreter imported (`python -X importtime`), not
by a clock, so the test says the same on an idle machine and a busy one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HEAVY = {"torch", "ray", "optuna", "matplotlib", "tensorboard", "scipy.stats"}
COMMANDS = {
    "imdb_grid": ["sweeps/imdb_grid.py", "--help"],
    "grammar_grid": ["sweeps/grammar_grid.py", "--help"],
    "search": ["sweeps/search.py", "--help"],
    "train": ["-m", "rnnbench.train", "--help"],
    "rnnbench-results": ["-m", "rnnbench.results", "--help"],
    "rnnbench-results list": ["-m", "rnnbench.results", "list", "--help"],
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
