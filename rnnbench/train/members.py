"""Several members (configurations) trained side by side in one process, one epoch at a time.

The sweep layer trains a *group* of grid members per trial. A fused group (`FusedGroup`: the
classifiers' rnnbench.train.group.GroupRun, the grammars' rnnbench.train.autoregressor.GrammarGroup)
does it in one batched computation; `SerialGroup` is the general form for any task: each member
keeps its own run and the runs take turns, one epoch each. Both have the same surface: `epochs()`
yields {member index: that member's metrics} once per epoch, and `state_dict()` /
`load_state_dict()` move {"members": [each member's solo-compatible checkpoint state]} out and in.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from rnnbench.errors import ConfigError
from rnnbench.graphs import GraphedStep
from rnnbench.train.common import OnBatch, load_checkpoint, save_checkpoint


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


def group_key(config: Any, member_fields: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    """The (field, value) pairs that configs must share to train in one fused group: every field
    but `member_fields` (architecture, sizes, batching, epochs, device, ...)."""
    return tuple((f.name, getattr(config, f.name)) for f in dataclasses.fields(config) if f.name not in member_fields)


def sgd_state_dict(config: Any, names: list[str], buffers: dict[str, torch.Tensor] | None) -> dict:
    """What `torch.optim.SGD(model.parameters(), lr, momentum).state_dict()` of a solo run holds,
    built on placeholder parameters so that a member checkpoint loads into the solo run."""
    params = [torch.nn.Parameter(torch.empty(0, device="meta")) for _ in names]
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
    if buffers is not None:
        for param, name in zip(params, names):
            optimizer.state[param]["momentum_buffer"] = buffers[name]
    return optimizer.state_dict()


class FusedGroup:
    """The bookkeeping every fused group shares, whatever it trains: which members are still
    training (`active`, in the order of the fused model's member dimension), the checkpoints of the
    diverged ones (`finished`, frozen when they stopped), the epoch loop, and moving members in and
    out as solo-compatible checkpoints.

    A subclass sets `config_cls`, `load_data`, `member_fields` (the config fields members may
    differ in), and in __init__ `configs`, `device`, `model` (member_state_dict /
    load_member_state_dict / keep_members), `optimizer` (GroupSGD), `rngs` (numpy, one a member)
    and `torch_rngs` (each member's torch RNG state as its solo run has it), then calls
    `_start()`; it defines `fused_step(*tensors)` (one SGD step of every member: tensors in,
    tensors out, no sync) and `run_epoch()` -> {member: metrics}, which trains through `step`,
    and may add fields to member checkpoints (`_extra_state`) and checks on them (`_check_state`)."""

    config_cls: type
    load_data: Callable[..., Any]
    member_fields: tuple[str, ...]
    on_batch: OnBatch | None = None
    configs: list[Any]
    device: torch.device
    model: Any
    optimizer: Any
    rngs: list[np.random.Generator]
    torch_rngs: list[torch.Tensor]

    @classmethod
    def check_group(cls, configs: Sequence[Any]) -> None:
        """Raise a one-line ConfigError naming the first field on which the configs disagree."""
        if not configs:
            raise ConfigError("a group needs at least one config")
        first = group_key(configs[0], cls.member_fields)
        for i, config in enumerate(configs[1:], start=1):
            for (name, ours), (_, theirs) in zip(first, group_key(config, cls.member_fields)):
                if ours != theirs:
                    raise ConfigError(
                        f"configs 0 and {i} cannot share a group: {name} differs ({ours!r} vs {theirs!r}); "
                        f"split the configs by every field but {', '.join(cls.member_fields)}"
                    )

    def _start(self) -> None:
        if self.configs[0].cuda_graphs and self.device.type != "cuda":
            raise ConfigError(f"cuda_graphs needs a CUDA device, not {self.device}; run on a GPU or set cuda_graphs false")
        self.active = list(range(len(self.configs)))
        self.finished: dict[int, dict[str, Any]] = {}  # diverged members' checkpoints, frozen when they diverged
        self.epoch = 0
        self.graphed: GraphedStep | None = None  # with cuda_graphs: the step's graphs for the active members

    def fused_step(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def run_epoch(self) -> dict[int, dict[str, Any]]:
        raise NotImplementedError

    def step(self, *tensors: torch.Tensor) -> Sequence[torch.Tensor]:
        """`fused_step`, replayed from CUDA graphs when the configs ask for them (rnnbench.graphs:
        then the outputs are overwritten by the next step)."""
        if not self.configs[0].cuda_graphs:
            return self.fused_step(*tensors)
        if self.graphed is None:
            self.graphed = GraphedStep(self.fused_step, self._training_state)
        return self.graphed(*tensors)

    def _training_state(self) -> list[torch.Tensor]:
        """What a step changes: the stacked weights and momentum buffers."""
        return [*self.model.parameters(), *(self.optimizer.buffers or {}).values()]

    def epochs(self) -> Iterator[dict[int, dict[str, Any]]]:
        """Train epoch after epoch until config.epochs or until every member has diverged."""
        while self.active and self.epoch < self.configs[0].epochs:
            yield self.run_epoch()

    def _drop(self, members: list[int]) -> None:
        """Freeze the checkpoints of `members` and take them out of the fused model."""
        if not members:
            return
        for member in members:
            self.finished[member] = {**self.member_state_dict(member), "diverged": True}
        self._keep([j for j, member in enumerate(self.active) if member not in members])

    def _keep(self, keep: list[int]) -> None:
        """Go on with the active members at positions `keep` only (new stacked tensors: new graphs)."""
        self.model.keep_members(keep)
        self.optimizer.keep_members(keep)
        self.active = [self.active[j] for j in keep]
        self.graphed = None

    def _extra_state(self, member: int) -> dict[str, Any]:
        return {}

    def _check_state(self, member: int, state: dict[str, Any]) -> None:
        pass

    def member_state_dict(self, member: int) -> dict[str, Any]:
        """Member `member` as its solo run's checkpoint: the solo run's `load_state_dict` takes it
        and continues that trial alone (and `load_member_state_dict` takes a solo run's back)."""
        if member in self.finished:
            return self.finished[member]
        j, config = self.active.index(member), self.configs[member]
        model = self.model.member_state_dict(j)
        buffers = None
        if self.optimizer.buffers is not None and config.momentum > 0:
            buffers = self.model.member_state_dict(j, self.optimizer.buffers)
        return {
            "config": dataclasses.asdict(config),
            "model": model,
            "optimizer": sgd_state_dict(config, list(model), buffers),
            "rng": {"numpy": self.rngs[member].bit_generator.state, "torch": self.torch_rngs[member]},
            "epoch": self.epoch,
            "diverged": False,
            **self._extra_state(member),
        }

    def load_member_state_dict(self, member: int, state: dict[str, Any]) -> None:
        """Continue an active member from a checkpoint of its own (a solo run's or a group's)
        taken at the group's epoch. Its lr and momentum stay those of its config."""
        self._check_state(member, state)
        if member not in self.active:
            raise ConfigError(f"member {member} has diverged and left the group; restore a fresh group instead")
        if state["epoch"] != self.epoch or state["diverged"]:
            raise ConfigError(
                f"member {member}'s checkpoint is at epoch {state['epoch']}{' (diverged)' if state['diverged'] else ''}, "
                f"the group at {self.epoch}; group only members that stopped at the same epoch"
            )
        j = self.active.index(member)
        self.model.load_member_state_dict(j, state["model"])
        if self.optimizer.buffers is not None:
            saved = state["optimizer"]["state"]
            buffers = {}
            for i, name in enumerate(state["model"]):  # no buffer yet (no step taken): torch starts from zero
                buffer = saved.get(i, {}).get("momentum_buffer")
                buffers[name] = buffer if buffer is not None else torch.zeros_like(state["model"][name])
            self.model.load_member_state_dict(j, buffers, stacked=self.optimizer.buffers)
        self.rngs[member].bit_generator.state = state["rng"]["numpy"]
        self.torch_rngs[member] = state["rng"]["torch"]

    def state_dict(self) -> dict[str, Any]:
        """Every member's checkpoint, in config order (diverged ones as they were when they stopped)."""
        return {"members": [self.member_state_dict(member) for member in range(len(self.configs))]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load into a group that has not trained yet (as `restore` does). Live members must be at
        one epoch; diverged ones may have stopped earlier."""
        members = state["members"]
        if len(members) != len(self.configs):
            raise ConfigError(f"checkpoint holds {len(members)} members, the group {len(self.configs)}; pass the same configs")
        if self.epoch != 0 or len(self.active) != len(self.configs):
            raise ConfigError(f"load a group checkpoint into a fresh {type(self).__name__}; use {type(self).__name__}.restore")
        live = [m for m, s in enumerate(members) if not s["diverged"]]
        epochs = {members[m]["epoch"] for m in live}
        if len(epochs) > 1:
            raise ConfigError(f"the checkpoint's live members are at different epochs {sorted(epochs)}; restore them separately")
        self.epoch = epochs.pop() if epochs else max(s["epoch"] for s in members)
        for member in live:
            self.load_member_state_dict(member, members[member])
        self.finished = {m: s for m, s in enumerate(members) if s["diverged"]}
        self._keep([j for j, member in enumerate(self.active) if member in live])

    def save(self, path: str | os.PathLike) -> None:
        save_checkpoint(self.state_dict(), path)

    @classmethod
    def restore(cls, path: str | os.PathLike, configs: Sequence[Any] | None = None, data: Any = None) -> Any:
        """Continue a saved group; pass changed `configs` to go on differently (their lrs and
        momenta win over the saved ones), the data then loaded with the checkpoint's vocabulary."""
        state = load_checkpoint(path)
        configs = configs or [cls.config_cls(**member["config"]) for member in state["members"]]
        if data is None:
            vocab = state["members"][0].get("vocab")
            data = cls.load_data(configs[0], vocab=None if vocab is None else tuple(vocab))
        run = cls(configs, data)
        run.load_state_dict(state)
        return run
