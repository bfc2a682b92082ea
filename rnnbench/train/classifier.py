"""Training loop for the IMDB sentiment classifiers: plain PyTorch, no Ray.

`ClassifierRun(config).epochs()` yields one metrics dict per epoch (names from rnnbench.metrics).
A run can be saved after any epoch and restored to continue exactly where it left off, also on
the official train/test split (the study's confirmation step)."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rnnbench import metrics as M
from rnnbench.data.batching import PAD, Sequences, group_batches, order_rng, token_batches
from rnnbench.data.datasets import get_text_dataset
from rnnbench.data.text import TextData, load_text
from rnnbench.errors import ConfigError, DataError
from rnnbench.models import Classifier
from rnnbench.train.common import TrainingRun, pick_device, seed_everything
from rnnbench.train.configs import ClassifierConfig

EVAL_BATCH_TOKENS = 32_768  # evaluation needs no gradients, so it takes bigger bucketed batches


def load_data(config: ClassifierConfig, vocab: tuple[str, ...] | None = None) -> TextData:
    """The config's splits; a batch size larger than the training split is refused here, the first
    place the split's size is known (every epoch would be one short batch, not the batches asked for)."""
    data = load_text(
        get_text_dataset(config.dataset),
        config.data,
        final=config.final,
        split_seed=config.split_seed,
        max_vocab=config.max_vocab,
        min_count=config.min_count,
        vocab=vocab,
        subset=config.subset,
    )
    if config.batch_size > len(data.train):
        raise ConfigError(
            f"batch_size {config.batch_size} is larger than the training split ({len(data.train)} reviews); "
            f"pass a batch_size <= {len(data.train)}"
        )
    return data


class ClassifierRun(TrainingRun):
    """Model, optimizer, RNG and epoch counter of one trial; `epochs()` trains up to config.epochs."""

    config_cls = ClassifierConfig
    load_data = staticmethod(load_data)

    def __init__(self, config: ClassifierConfig, data: TextData | None = None):
        self.config = config
        self.data = data if data is not None else load_data(config)
        self.device = pick_device(config.device)
        self.rng = seed_everything(config.seed)
        # plain SGD on sparse embedding gradients is the same update as on dense ones, only cheaper;
        # with momentum it is not (untouched rows would stop decaying), so momentum keeps them dense
        self.model = Classifier(
            config.model,
            len(self.data.vocab),
            self.data.num_classes,
            config.embed_dim,
            config.hidden_dim,
            sparse=config.momentum == 0,
            padding_idx=PAD,
        ).to(self.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config.lr, momentum=config.momentum)
        self.epoch = 0
        self.diverged = False
        self._eval_batches = token_batches(self.data.eval.lengths, EVAL_BATCH_TOKENS)

    def run_epoch(self) -> dict[str, Any]:
        start = time.perf_counter()
        train = self.data.train
        # a group of one: the same batches this trial gets as a member of any group (rnnbench.train.group)
        steps = group_batches(
            self.config.batching, train.lengths, self.config.batch_size, order_rng(self.config.order_seed, self.epoch), [self.rng]
        )
        batches = [step[0] for step in steps]
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        for done, index in enumerate(batches, start=1):
            tokens, lengths, labels = self._batch(train, index)
            logits = self.model(tokens, lengths)
            loss = F.cross_entropy(logits, labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach()
            correct += (logits.argmax(1) == labels).sum()
            if self.on_batch is not None:
                self.on_batch(done, len(batches))
        train_loss_sum = loss_sum.item()  # also waits for the GPU, so the timing below is honest
        train_s = time.perf_counter() - start
        self.epoch += 1
        self.diverged = not math.isfinite(train_loss_sum)
        eval_loss, eval_acc = self.evaluate()
        name = self.data.eval_name
        return {
            M.EPOCH: self.epoch,
            M.TRAIN_LOSS_SUM: train_loss_sum,
            M.TRAIN_LOSS: train_loss_sum / len(batches),
            M.TRAIN_ACC: correct.item() / len(train),
            f"{name}_loss": eval_loss,
            f"{name}_acc": eval_acc,
            M.CHANCE_ACC: self.data.chance_acc,
            M.EPOCH_S: time.perf_counter() - start,
            M.TOKENS_PER_S: len(train.tokens) / train_s,
            M.DIVERGED: self.diverged,
        }

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """Mean cross-entropy per review and accuracy on the held-out split (validation or test)."""
        self.model.eval()
        split = self.data.eval
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        for index in self._eval_batches:
            tokens, lengths, labels = self._batch(split, index)
            logits = self.model(tokens, lengths)
            loss_sum += F.cross_entropy(logits, labels, reduction="sum")
            correct += (logits.argmax(1) == labels).sum()
        return loss_sum.item() / len(split), correct.item() / len(split)

    def _batch(self, split: Sequences, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens, lengths = split.pad(index)
        to = dict(device=self.device, non_blocking=True)
        # an empty review counts as one padding token, so the max pool always has a position
        lengths = torch.from_numpy(np.maximum(lengths, 1)).to(**to)
        return torch.from_numpy(tokens).to(**to), lengths, torch.from_numpy(split.labels[index]).to(**to)

    # --- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "vocab": self.data.vocab}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if tuple(state["vocab"]) != self.data.vocab:
            raise DataError("checkpoint vocabulary differs from the data's; load the data with the checkpoint's vocab")
        super().load_state_dict(state)
