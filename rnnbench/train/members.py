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


class Group(Protocol):
    """What the sweep layer needs of a group of members."""

    def epochs(self) -> Iterator[dict[int, dict[str, Any]]]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class SerialGroup:
    """Members trained one after another within each epoch: works for every task's run class.

    A member that diverged or reached its last epoch drops out; the others go on."""

    def __init__(self, runs: list[Any]):
        self.runs = runs

    def epochs(self) -> Iterator[dict[int, dict[str, Any]]]:
        live = {i: run.epochs() for i, run in enumerate(self.runs)}
        while live:
            reports: dict[int, dict[str, Any]] = {}
            for i, epochs in list(live.items()):
                try:
                    reports[i] = next(epochs)
                except StopIteration:
                    del live[i]
            if reports:
                yield reports

    def state_dict(self) -> dict[str, Any]:
        return {"members": [run.state_dict() for run in self.runs]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for run, member in zip(self.runs, state["members"], strict=True):
            run.load_state_dict(member)
