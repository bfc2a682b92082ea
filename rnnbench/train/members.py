"""Several members (configurations) trained side by side in one process, one epoch at a time.

The sweep layer trains a *group* of grid members per trial. A fused group (rnnbench.train.group)
does it in one batched computation; `SerialGroup` is the general form for any task: each member
keeps its own run and the runs take turns, one epoch each. Both have the same surface: `epochs()`
yields {member index: that member's metrics} once per epoch, and `state_dict()` /
`load_state_dict()` move {"members": [each member's solo-compatible checkpoint state]} out and in.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from rnnbench.train.common import OnBatch


class Group(Protocol):
    """What the sweep layer needs of a group of members; `on_batch` (when set) hears of every
    training batch as (done, total) of the group's current epoch."""

    on_batch: OnBatch | None

    def epochs(self) -> Iterator[dict[int, dict[str, Any]]]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class SerialGroup:
    """Members trained one after another within each epoch: works for every task's run class.

    A member that diverged or reached its last epoch drops out; the others go on. The group's
    epoch is its members' epochs in turn, so `on_batch` hears member k of n at its batch `done` of
    `total` as `k * total + done` of `n * total` (in the epoch right after a member drops out, that
    member still counts in n: the count then stops short of its total)."""

    def __init__(self, runs: list[Any]):
        self.runs = runs
        self.on_batch: OnBatch | None = None

    def epochs(self) -> Iterator[dict[int, dict[str, Any]]]:
        live = {i: run.epochs() for i, run in enumerate(self.runs)}
        while live:
            reports: dict[int, dict[str, Any]] = {}
            turns = len(live)
            for turn, (i, epochs) in enumerate(list(live.items())):
                self.runs[i].on_batch = self._turn_progress(turn, turns)
                try:
                    reports[i] = next(epochs)
                except StopIteration:
                    del live[i]
            if reports:
                yield reports

    def _turn_progress(self, turn: int, turns: int) -> OnBatch | None:
        """The hook of the member training `turn` (of `turns`) this epoch: its batches as a share of the group's."""
        report = self.on_batch
        if report is None:
            return None
        return lambda done, total: report(turn * total + done, turns * total)

    def state_dict(self) -> dict[str, Any]:
        return {"members": [run.state_dict() for run in self.runs]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for run, member in zip(self.runs, state["members"], strict=True):
            run.load_state_dict(member)
