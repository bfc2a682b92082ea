"""What an experiment that was interrupted (killed, or stopped by a storage fault) and resumed must
end with: every member finished, each of its epochs exactly once, with the metrics of an
uninterrupted run without Ray (`replay`), timings aside. Shared by test_kill_points.py and
test_storage_faults.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from rnnbench import metrics as M
from rnnbench import record, results
from rnnbench.sweep.members import MEMBERS
from rnnbench.sweep.trainable import config_of, load_state, make_group
from rnnbench.tasks import RESTORE_FROM, get_task

TIMINGS = {M.EPOCH_S, M.TOKENS_PER_S, "time"}  # all that differs between two identical runs (`time`: the row's wall clock)


def replay(path: Path) -> pd.DataFrame:
    """What every trial of the experiment computes, run here without Ray or kills: each group of
    members (its trial) with the loop configs of their member.json, in the trial's member order,
    through the trainable's own group, from where a confirmation member starts. One row per
    member and epoch."""
    fs, root = record.open_fs(str(path))
    spec = record.read_json(fs, f"{root}/{record.SPEC}")
    task = get_task(spec["task"])
    infos = {name: record.read_member(fs, root, name) for name in record.member_names(fs, root)}
    order = [m["name"] for group in spec.get("groups") or [] for m in group] or sorted(infos)  # a search: seed order
    groups: dict[str, list[dict[str, Any]]] = {}
    for name in order:
        groups.setdefault(infos[name]["group"], []).append(infos[name])
    cls = task.load("config")
    base = config_of(cls, spec["base"])
    restored = [info for info in infos.values() if RESTORE_FROM in info]
    vocab = tuple(load_state(*record.open_fs(restored[0][RESTORE_FROM]))["vocab"]) if restored else None
    data = task.load("load_data")(base, vocab=vocab)
    rows = []
    for members in groups.values():
        group = make_group(task, [config_of(cls, m["config"]) for m in members], data)
        if restored:
            group.load_state_dict({MEMBERS: [load_state(*record.open_fs(m[RESTORE_FROM])) for m in members]})
        for reports in group.epochs():
            rows += [{"trial": members[i]["name"], **report} for i, report in reports.items()]
    return pd.DataFrame(rows)


def raw_rows(path: Path, member: str) -> list[dict[str, Any]]:
    """Every parseable line of the member's rows.jsonl, in file order, repeats included."""
    text = (path / record.MEMBERS / member / record.ROWS).read_text()
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # an empty first line, or a torn one
            continue
    return rows


def assert_every_epoch_once_as_computed(path: Path) -> pd.DataFrame:
    """Every member finished with each of its epochs exactly once (in `results.load`, and in its
    raw rows.jsonl once repeats are dropped, the last line of an epoch winning) and with the
    metrics of an uninterrupted run, timings aside."""
    df = results.load(path)
    expected = replay(path)
    assert set(df["status"]) == {"finished"}, df.groupby("trial")["status"].first()
    assert not df.duplicated(["trial", "epoch"]).any()
    assert sorted(zip(df["trial"], df["epoch"])) == sorted(zip(expected["trial"], expected["epoch"]))
    metrics = sorted(set(expected.columns) - TIMINGS - {"trial", "epoch"})
    want = expected[["trial", "epoch", *metrics]].sort_values(["trial", "epoch"]).reset_index(drop=True)
    got = df[["trial", "epoch", *metrics]].sort_values(["trial", "epoch"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_exact=True)
    for member, epochs in expected.groupby("trial")["epoch"]:
        last = {row["epoch"]: row for row in raw_rows(path, member)}  # the last line of each epoch
        assert sorted(last) == sorted(epochs), member
        raw = pd.DataFrame([{"trial": member, **last[e]} for e in sorted(last)])[["trial", "epoch", *metrics]]
        mine = want[want["trial"] == member].reset_index(drop=True)
        pd.testing.assert_frame_equal(raw, mine, check_dtype=False, check_exact=True)
    return df
