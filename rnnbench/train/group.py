"""Trial groups: K IMDB classifier configurations trained as one fused computation (rnnbench.fused).

`GroupRun(configs, data).epochs()` yields, once per epoch, {member index: metrics}, each member's
metrics dict with exactly the keys `ClassifierRun.run_epoch` returns and the values that config
gets when trained alone, up to float rounding: the same initial weights (its solo model built
under its seed), the same batches (rnnbench.data.batching.group_batches, where a solo run is a
group of one), its own lr and momentum. A member whose epoch training loss is not finite is
reported diverged and dropped; the others go on. Plain PyTorch, no Ray: the sweep layer splits a
grid into groups with `group_key`.

Timing metrics are the group's: `epoch_s` is the group's wall time for the epoch, and each
member's `tokens_per_s` counts that member's training tokens over the group's training time (so
the group's throughput is their sum).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rnnbench import metrics as M
from rnnbench.data.batching import Sequences, group_batches, order_rng, token_batches
from rnnbench.data.text import TextData
from rnnbench.errors import ConfigError, DataError
from rnnbench.fused import GroupClassifier, GroupSGD, stacked_ids
from rnnbench.models import Classifier
from rnnbench.train.classifier import EVAL_BATCH_TOKENS, ClassifierConfig, load_data
from rnnbench.train.common import OnBatch, load_checkpoint, pick_device, save_checkpoint, seed_everything

MEMBER_FIELDS = ("lr", "seed", "momentum")  # each member's own; every other config field must agree


def group_key(config: ClassifierConfig) -> tuple[tuple[str, Any], ...]:
    """The (field, value) pairs that configs must share to train in one group: all fields but
    MEMBER_FIELDS (architecture, sizes, data, batching, epochs, device, ...)."""
    return tuple(
        (field.name, getattr(config, field.name)) for field in dataclasses.fields(config) if field.name not in MEMBER_FIELDS
    )


def check_group(configs: Sequence[ClassifierConfig]) -> None:
    """Raise a one-line ConfigError naming the first field on which the configs disagree."""
    if not configs:
        raise ConfigError("a group needs at least one config")
    first = group_key(configs[0])
    for i, config in enumerate(configs[1:], start=1):
        for (name, ours), (_, theirs) in zip(first, group_key(config)):
            if ours != theirs:
                raise ConfigError(
                    f"configs 0 and {i} cannot share a group: {name} differs ({ours!r} vs {theirs!r}); "
                    "split the configs by rnnbench.train.group.group_key"
                )


def _sgd_state_dict(config: ClassifierConfig, names: list[str], buffers: dict[str, torch.Tensor] | None) -> dict:
    """What `torch.optim.SGD(Classifier(...).parameters(), lr, momentum).state_dict()` of a solo
    run holds, built on placeholder parameters so a member checkpoint loads into a ClassifierRun."""
    params = [torch.nn.Parameter(torch.empty(0, device="meta")) for _ in names]
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
    if buffers is not None:
        for param, name in zip(params, names):
            optimizer.state[param]["momentum_buffer"] = buffers[name]
    return optimizer.state_dict()


class GroupRun:
    """The members' fused model, grouped optimizer, batch generators and epoch counter.

    `members` below are positions in `configs`; `active` lists the members still training, in
    the order of the fused model's member dimension. `on_batch`, when set, is called after every
    training step (one batch of every member) with (steps done, steps in the epoch)."""

    on_batch: OnBatch | None = None

    def __init__(self, configs: Sequence[ClassifierConfig], data: TextData | None = None):
        check_group(configs)
        self.configs = list(configs)
        base = self.configs[0]
        self.data = data if data is not None else load_data(base)
        self.device = pick_device(base.device)
        vocab_size = len(self.data.vocab)
        # as ClassifierRun: sparse embedding gradients for plain SGD, dense ones once any member has momentum
        self.model = GroupClassifier(
            base.model, len(configs), vocab_size, self.data.num_classes, base.embed_dim, base.hidden_dim,
            sparse=all(config.momentum == 0 for config in configs),
        )  # fmt: skip
        self.rngs: list[np.random.Generator] = []
        self._torch_rng: list[torch.Tensor] = []  # each member's torch RNG right after its init, as a solo run has it
        for k, config in enumerate(self.configs):
            self.rngs.append(seed_everything(config.seed))
            solo = Classifier(
                base.model, vocab_size, self.data.num_classes, base.embed_dim, base.hidden_dim
            )  # ClassifierRun's weights
            self._torch_rng.append(torch.get_rng_state())
            self.model.load_member_state_dict(k, solo.state_dict())
            del solo
        self.model.to(self.device)
        self.optimizer = GroupSGD(self.model, [c.lr for c in self.configs], [c.momentum for c in self.configs])
        self.active = list(range(len(configs)))
        self.finished: dict[int, dict[str, Any]] = {}  # diverged members' checkpoints, frozen when they diverged
        self.epoch = 0
        self._eval_batches = token_batches(self.data.eval.lengths, EVAL_BATCH_TOKENS)

    def epochs(self) -> Iterator[dict[int, dict[str, Any]]]:
        """Train epoch after epoch until config.epochs or until every member has diverged."""
        while self.active and self.epoch < self.configs[0].epochs:
            yield self.run_epoch()

    def run_epoch(self) -> dict[int, dict[str, Any]]:
        start = time.perf_counter()
        train = self.data.train
        steps = self.epoch_steps()
        self.model.train()
        loss_sum = torch.zeros(len(self.active), device=self.device)
        correct = torch.zeros(len(self.active), dtype=torch.long, device=self.device)
        for done, step in enumerate(steps, start=1):
            losses, hits = self.train_step(step)
            loss_sum += losses
            correct += hits
            if self.on_batch is not None:
                self.on_batch(done, len(steps))
        train_loss_sums = loss_sum.tolist()  # also waits for the GPU, so the timing below is honest
        train_s = time.perf_counter() - start
        correct_counts = correct.tolist()
        self.epoch += 1
        eval_losses, eval_accs = self.evaluate()
        name, seconds = self.data.eval_name, time.perf_counter() - start
        results = {}
        for j, member in enumerate(self.active):
            results[member] = {
                M.EPOCH: self.epoch,
                M.TRAIN_LOSS_SUM: train_loss_sums[j],
                M.TRAIN_LOSS: train_loss_sums[j] / len(steps),
                M.TRAIN_ACC: correct_counts[j] / len(train),
                f"{name}_loss": eval_losses[j],
                f"{name}_acc": eval_accs[j],
                M.CHANCE_ACC: self.data.chance_acc,
                M.EPOCH_S: seconds,
                M.TOKENS_PER_S: len(train.tokens) / train_s,
                M.DIVERGED: not math.isfinite(train_loss_sums[j]),
            }
        self._drop([m for m in self.active if results[m][M.DIVERGED]])
        return results

    def epoch_steps(self) -> list[np.ndarray]:
        """The next epoch's steps, each `[K, b]` (row j: active member j's batch). Draws from the
        members' batch generators, as an epoch does: call it once per epoch."""
        base = self.configs[0]
        return group_batches(
            base.batching, self.data.train.lengths, base.batch_size, order_rng(base.order_seed, self.epoch),
            [self.rngs[member] for member in self.active],
        )  # fmt: skip

    def train_step(self, step: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step of every active member on its row of `step`. Returns each member's loss
        and count of correct predictions, left on the device (no sync)."""
        rows, lengths, labels = self._batch(self.data.train, step)
        logits = self.model(rows, lengths)
        losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(labels.shape).mean(1)
        self.optimizer.zero_grad()
        losses.sum().backward()  # each member's gradient is that of its own mean loss
        self.optimizer.step()
        return losses.detach(), (logits.argmax(-1) == labels).sum(1)

    @torch.no_grad()
    def evaluate(self) -> tuple[list[float], list[float]]:
        """Each active member's mean cross-entropy per review and accuracy on the held-out split,
        all members in one pass over the same batches."""
        self.model.eval()
        split, members = self.data.eval, len(self.active)
        loss_sum = torch.zeros(members, device=self.device)
        correct = torch.zeros(members, dtype=torch.long, device=self.device)
        for index in self._eval_batches:
            rows, lengths, labels = self._batch(split, np.broadcast_to(index, (members, len(index))))
            logits = self.model(rows, lengths)
            losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
            loss_sum += losses.view(labels.shape).sum(1)
            correct += (logits.argmax(-1) == labels).sum(1)
        return [s / len(split) for s in loss_sum.tolist()], [c / len(split) for c in correct.tolist()]

    def _batch(self, split: Sequences, step: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens, lengths = split.pad(step)  # [K, b, T]: the step's width is the longest of all K batches
        to = dict(device=self.device, non_blocking=True)
        rows = stacked_ids(tokens, len(step), len(self.data.vocab))
        # an empty review counts as one padding token, so the max pool always has a position
        lengths = np.maximum(lengths, 1)
        return (torch.from_numpy(rows).to(**to), torch.from_numpy(lengths).to(**to),
                torch.from_numpy(split.labels[step]).to(**to))  # fmt: skip

    def _drop(self, members: list[int]) -> None:
        """Freeze the checkpoints of `members` and take them out of the fused model."""
        if not members:
            return
        for member in members:
            self.finished[member] = {**self.member_state_dict(member), "diverged": True}
        keep = [j for j, member in enumerate(self.active) if member not in members]
        self.model.keep_members(keep)
        self.optimizer.keep_members(keep)
        self.active = [self.active[j] for j in keep]

    # --- checkpoints ---------------------------------------------------------------------------

    def member_state_dict(self, member: int) -> dict[str, Any]:
        """Member `member` as a ClassifierRun checkpoint: `ClassifierRun.load_state_dict` takes it
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
            "optimizer": _sgd_state_dict(config, list(model), buffers),
            "rng": {"numpy": self.rngs[member].bit_generator.state, "torch": self._torch_rng[member]},
            "epoch": self.epoch,
            "diverged": False,
            "vocab": self.data.vocab,
        }

    def load_member_state_dict(self, member: int, state: dict[str, Any]) -> None:
        """Continue an active member from a checkpoint of its own (a ClassifierRun's or a group's)
        taken at the group's epoch. Its lr and momentum stay those of its config."""
        if tuple(state["vocab"]) != self.data.vocab:
            raise DataError("checkpoint vocabulary differs from the data's; load the data with the checkpoint's vocab")
        if member not in self.active:
            raise ConfigError(f"member {member} has diverged and left the group; restore a fresh GroupRun instead")
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
            for i, name in enumerate(self.model.layout()):  # no buffer yet (no step taken): torch starts from zero
                buffer = saved.get(i, {}).get("momentum_buffer")
                buffers[name] = buffer if buffer is not None else torch.zeros_like(state["model"][name])
            self.model.load_member_state_dict(j, buffers, stacked=self.optimizer.buffers)
        self.rngs[member].bit_generator.state = state["rng"]["numpy"]
        self._torch_rng[member] = state["rng"]["torch"]

    def state_dict(self) -> dict[str, Any]:
        """Every member's checkpoint, in config order (diverged ones as they were when they stopped)."""
        return {"members": [self.member_state_dict(member) for member in range(len(self.configs))]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load into a run that has not trained yet (as `restore` does)."""
        members = state["members"]
        if len(members) != len(self.configs):
            raise ConfigError(f"checkpoint holds {len(members)} members, the group {len(self.configs)}; pass the same configs")
        if self.epoch != 0 or len(self.active) != len(self.configs):
            raise ConfigError("load a group checkpoint into a fresh GroupRun; use GroupRun.restore")
        live = [m for m, s in enumerate(members) if not s["diverged"]]
        epochs = {members[m]["epoch"] for m in live}
        if len(epochs) > 1:
            raise ConfigError(f"the checkpoint's live members are at different epochs {sorted(epochs)}; restore them separately")
        self.epoch = epochs.pop() if epochs else max(s["epoch"] for s in members)
        for member in live:
            self.load_member_state_dict(member, members[member])
        self.finished = {m: s for m, s in enumerate(members) if s["diverged"]}
        keep = [j for j, member in enumerate(self.active) if member in live]
        self.model.keep_members(keep)
        self.optimizer.keep_members(keep)
        self.active = live

    def save(self, path: str | os.PathLike) -> None:
        save_checkpoint(self.state_dict(), path)

    @classmethod
    def restore(
        cls, path: str | os.PathLike, configs: Sequence[ClassifierConfig] | None = None, data: TextData | None = None
    ) -> GroupRun:
        """Continue a saved group; pass changed `configs` to go on differently (their lrs and
        momenta win over the saved ones), the data then encoded with the checkpoint's vocabulary."""
        state = load_checkpoint(path)
        configs = configs or [ClassifierConfig(**member["config"]) for member in state["members"]]
        if data is None:
            data = load_data(configs[0], vocab=tuple(state["members"][0]["vocab"]))
        run = cls(configs, data)
        run.load_state_dict(state)
        return run
