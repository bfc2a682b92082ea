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

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rnnbench import metrics as M
from rnnbench.data.batching import PAD, Sequences, group_batches, order_rng, token_batches
from rnnbench.data.text import TextData
from rnnbench.errors import DataError
from rnnbench.fused import GroupClassifier, GroupSGD, stacked_ids
from rnnbench.models import Classifier
from rnnbench.train import members
from rnnbench.train.classifier import EVAL_BATCH_TOKENS, ClassifierConfig, load_data
from rnnbench.train.common import pick_device, seed_everything
from rnnbench.train.members import FusedGroup

MEMBER_FIELDS = ("lr", "seed", "momentum")  # each member's own; every other config field must agree


def group_key(config: ClassifierConfig) -> tuple[tuple[str, Any], ...]:
    """The (field, value) pairs that configs must share to train in one group."""
    return members.group_key(config, MEMBER_FIELDS)


class GroupRun(FusedGroup):
    """The members' fused model, grouped optimizer, batch generators and epoch counter.

    `members` below are positions in `configs`; `active` lists the members still training, in
    the order of the fused model's member dimension. `on_batch`, when set, is called after every
    training step (one batch of every member) with (steps done, steps in the epoch)."""

    config_cls = ClassifierConfig
    load_data = staticmethod(load_data)
    member_fields = MEMBER_FIELDS

    def __init__(self, configs: Sequence[ClassifierConfig], data: TextData | None = None):
        self.check_group(configs)
        self.configs = list(configs)
        base = self.configs[0]
        self.data = data if data is not None else load_data(base)
        self.device = pick_device(base.device)
        vocab_size = len(self.data.vocab)
        # as ClassifierRun: sparse embedding gradients for plain SGD, dense ones once any member has
        # momentum; and in CUDA graphs, whose shapes cannot depend on which words a batch holds
        self.model = GroupClassifier(
            base.model, len(configs), vocab_size, self.data.num_classes, base.embed_dim, base.hidden_dim,
            sparse=all(config.momentum == 0 for config in configs) and not base.cuda_graphs,
        )  # fmt: skip
        self.rngs: list[np.random.Generator] = []
        self.torch_rngs: list[torch.Tensor] = []  # each member's torch RNG right after its init, as a solo run has it
        for k, config in enumerate(self.configs):
            self.rngs.append(seed_everything(config.seed))
            solo = Classifier(
                base.model, vocab_size, self.data.num_classes, base.embed_dim, base.hidden_dim, padding_idx=PAD
            )  # ClassifierRun's weights
            self.torch_rngs.append(torch.get_rng_state())
            self.model.load_member_state_dict(k, solo.state_dict())
            del solo
        self.model.to(self.device)
        self.model.compiled = base.compile
        self.optimizer = GroupSGD(self.model, [c.lr for c in self.configs], [c.momentum for c in self.configs])
        self._start()
        self._eval_batches = token_batches(self.data.eval.lengths, EVAL_BATCH_TOKENS)

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

    def train_step(self, step: np.ndarray) -> Sequence[torch.Tensor]:
        """One SGD step of every active member on its row of `step`. Returns each member's loss
        and count of correct predictions, left on the device (no sync)."""
        return self.step(*self._batch(self.data.train, step, static=self.configs[0].cuda_graphs))

    def fused_step(self, rows: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """`train_step` on the step's stacked rows, lengths and labels (see `_batch`)."""
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

    def _batch(self, split: Sequences, step: np.ndarray, static: bool = False) -> tuple[torch.Tensor, ...]:
        tokens, lengths = split.pad(step, static)  # [K, b, T]: the step's width is the longest of all K batches
        to = dict(device=self.device, non_blocking=True)
        rows = stacked_ids(tokens, len(step), len(self.data.vocab))
        # an empty review counts as one padding token, so the max pool always has a position
        lengths = np.maximum(lengths, 1)
        return (torch.from_numpy(rows).to(**to), torch.from_numpy(lengths).to(**to),
                torch.from_numpy(split.labels[step]).to(**to))  # fmt: skip

    def _extra_state(self, member: int) -> dict[str, Any]:
        return {"vocab": self.data.vocab}

    def _check_state(self, member: int, state: dict[str, Any]) -> None:
        if tuple(state["vocab"]) != self.data.vocab:
            raise DataError("checkpoint vocabulary differs from the data's; load the data with the checkpoint's vocab")
