"""`python -m rnnbench.train` prints a readable table, one row per epoch under one header with
units, every line within 100 columns; `--json` gives every metric of an epoch as one JSON line."""

from __future__ import annotations

import json

from rnnbench.config import HELP_WIDTH
from rnnbench.train.__main__ import main

GRAMMAR = ["grammar", "--n", "200", "--epochs", "2", "--num-samples", "10"]


def test_one_table_row_per_epoch_within_100_columns(capsys):
    assert main(GRAMMAR) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= HELP_WIDTH for line in lines), [len(line) for line in lines]
    table = [line for line in lines if not line.startswith("#")]
    assert table[0].split() == ["epoch", "train", "loss/token", "held-out", "loss/token", "synth@1", "compl@1", "s/epoch"]
    assert [row.split()[0] for row in table[1:]] == ["1", "2"]
    assert all(len(row.split()) == 6 for row in table[1:])


def test_the_classifier_table_names_its_held_out_split(tiny_imdb, capsys):
    assert (
        main(["imdb", "--model", "mlp", "--data", str(tiny_imdb), "--epochs", "1", "--embed-dim", "8", "--hidden-dim", "8"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= HELP_WIDTH for line in lines)
    table = [line for line in lines if not line.startswith("#")]
    assert table[0].split() == ["epoch", "train", "loss", "val", "loss", "val", "acc", "s/epoch"] and len(table) == 2


def test_json_gives_every_metric_of_each_epoch(capsys):
    assert main([*GRAMMAR, "--json"]) == 0
    epochs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert {"grad_norm", "synth_distinct@t0.5", "compl_valid_example@t1"} <= set(epochs[0])
