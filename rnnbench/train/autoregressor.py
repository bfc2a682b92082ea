"""Next-token LSTM on a synthetic grammar: plain SGD epochs, then Synthesis and Completion scores.

`GrammarRun(config).epochs()` yields one metrics dict per epoch (names from rnnbench.metrics);
`save` / `restore` let a run stop after any epoch and go on exactly as if it never had.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rnnbench import metrics
from rnnbench.data.batching import PAD, make_batches
from rnnbench.data.grammars import END, START, GrammarData, is_valid
from rnnbench.errors import ConfigError
from rnnbench.models import LanguageModel
from rnnbench.sampling import sample
from rnnbench.train.common import TrainingRun, pick_device, seed_everything
from rnnbench.train.configs import GrammarConfig

# How far above the uniform guess (log V nats a token) an epoch's mean loss may be before the run
# counts as diverged. An untrained model is not exactly uniform: over 3 seeds x lstm/gru x the three
# grammars at lr 0.001, its first epoch's loss was up to 0.09 nats above log V. Runs that blew up
# were far above it (brackets lr 10: 3.7 nats against log 6 = 1.8; lr 1e3 to 1e8: hundreds to 1e8).
UNIFORM_SLACK = 0.25
HELD_OUT_BATCH = 256  # held-out strings scored at once (no gradient, so bigger than training batches)


def load_data(config: GrammarConfig, vocab: tuple[str, ...] | None = None) -> None:
    """Nothing is shared between trials: each seed draws its own words (cheap, and part of the
    seed-to-seed variation a sweep measures), so the sweep ships no data through Ray."""
    return None


class GrammarRun(TrainingRun):
    """Model, optimizer, data and RNG of one trial; `epoch` counts the epochs completed."""

    config_cls = GrammarConfig
    load_data = staticmethod(load_data)

    def __init__(self, config: GrammarConfig, data: GrammarData | None = None):
        self.config = config
        self.data = data if data is not None else GrammarData.generate(config.dataset, config.n, config.seed, config.num_samples)
        if self.data.grammar != config.dataset:
            raise ConfigError(f"data is {self.data.grammar!r} but config.dataset is {config.dataset!r}; pass matching data")
        self.device = pick_device(config.device)
        self.rng = seed_everything(config.seed)
        self.model = LanguageModel(len(self.data.vocab), config.embed_dim, config.hidden_dim, config.num_layers, config.cell)
        self.model.to(self.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config.lr)
        self.epoch = 0
        self.diverged = False

    def run_epoch(self) -> dict[str, Any]:
        """Train one epoch, then score it: held-out loss, Synthesis and Completion."""
        start = time.perf_counter()
        result = self._train_epoch()
        self.epoch += 1
        self.diverged = result[metrics.DIVERGED]
        result[metrics.EPOCH] = self.epoch
        result[metrics.HELD_OUT_LOSS_PER_TOKEN] = self._held_out_loss()
        result.update(self._scores())
        result[metrics.EPOCH_S] = time.perf_counter() - start
        return result

    def _train_epoch(self) -> dict[str, Any]:
        """One pass of SGD over length-bucketed batches: input = sequence without its last token,
        target = the sequence shifted by one. Sums stay on the device until the end of the epoch."""
        self.model.train()
        train = self.data.train
        batches = make_batches(self.config.batching, train.lengths, self.config.batch_size, self.rng)
        loss_sum = real_loss_sum = grad_norm_sum = torch.zeros((), device=self.device)
        real_tokens = 0
        start = time.perf_counter()
        for done, index in enumerate(batches, start=1):
            padded, lengths = train.pad(index)
            batch = torch.from_numpy(padded).to(self.device, non_blocking=True)
            inputs, targets = batch[:, :-1], batch[:, 1:].flatten()
            logits, _ = self.model(inputs)
            per_token = F.cross_entropy(logits.flatten(0, 1), targets, reduction="none")
            real = (targets != PAD).float()
            real_loss = (per_token * real).sum()
            # = ignore_index=PAD; unmasked, the padding targets (`.pad` after `.end`) count as well
            loss = real_loss / real.sum() if self.config.mask_padding else per_token.mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grads = [p.grad for p in self.model.parameters()]
            norm = torch.nn.utils.get_total_norm(grads)
            if self.config.clip_grad is not None:
                torch.nn.utils.clip_grads_with_norm_(self.model.parameters(), self.config.clip_grad, norm)
            self.optimizer.step()
            loss_sum = loss_sum + loss.detach()
            real_loss_sum = real_loss_sum + real_loss.detach()
            grad_norm_sum = grad_norm_sum + norm
            real_tokens += int(lengths.sum()) - len(lengths)
            if self.on_batch is not None:
                self.on_batch(done, len(batches))
        loss_sum_value = loss_sum.item()  # also waits for the GPU, so the timing below is honest
        seconds = time.perf_counter() - start
        loss_per_token = real_loss_sum.item() / real_tokens
        # Not finite is not the only way to blow up: at lr 1e3 to 1e8 the loss stays finite while
        # the model collapses onto one word (brackets: "()" forever, which still scores 100% valid).
        # A mean loss over the epoch worse than guessing uniformly over the vocabulary (log V) means
        # the model knows less than nothing about the data; UNIFORM_SLACK spares untrained runs.
        worse_than_uniform = loss_per_token > math.log(len(self.data.vocab)) + UNIFORM_SLACK
        return {
            metrics.TRAIN_LOSS_SUM: loss_sum_value,
            metrics.LOSS_PER_TOKEN: loss_per_token,
            metrics.GRAD_NORM: grad_norm_sum.item() / len(batches),
            metrics.TOKENS_PER_S: real_tokens / seconds,
            metrics.DIVERGED: not math.isfinite(loss_sum_value) or not math.isfinite(loss_per_token) or worse_than_uniform,
        }

    @torch.no_grad()
    def _held_out_loss(self) -> float:
        """Mean cross-entropy per real target token (`.end` included) on the held-out strings: a
        collapsed model can sample valid words but cannot predict words it never drew from."""
        self.model.eval()
        held_out = self.data.held_out
        order = np.argsort(held_out.lengths, kind="stable")  # similar lengths together: little padding
        loss_sum = torch.zeros((), device=self.device)
        for index in np.array_split(order, max(1, math.ceil(len(order) / HELD_OUT_BATCH))):
            padded, _ = held_out.pad(index)
            batch = torch.from_numpy(padded).to(self.device)
            logits, _ = self.model(batch[:, :-1])
            loss_sum += F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten(), ignore_index=PAD, reduction="sum")
        return loss_sum.item() / int(held_out.lengths.sum() - len(held_out))

    def _scores(self) -> dict[str, Any]:
        """Synthesis (from `.start`) and Completion (of held-out first halves) at every temperature.

        The sampling generator is seeded from (seed, epoch), so samples are the same on a resumed
        run and drawing them never moves the training RNG. A model with non-finite weights has NaN
        logits and cannot sample: it scores 0 without trying. A diverged model whose weights are
        finite is sampled and judged like any other, so its scores show how it collapsed."""
        self.model.eval()
        held_out = self.data.held_out
        prefixes = {
            "synth": [[START]] * self.config.num_samples,
            # `.start` + the first half of the characters; the trailing `.end` is not a character
            "compl": [
                held_out.tokens[a : a + 1 + (b - a - 2) // 2].tolist()
                for a, b in zip(held_out.offsets[:-1].tolist(), held_out.offsets[1:].tolist())
            ][: self.config.num_samples],
        }
        names = {"synth": (metrics.synth_acc, metrics.synth_example), "compl": (metrics.compl_acc, metrics.compl_example)}
        can_sample = all(bool(torch.isfinite(p).all()) for p in self.model.parameters())
        generator = torch.Generator(self.device)
        generator.manual_seed(int(np.random.SeedSequence([self.config.seed, self.epoch]).generate_state(1)[0]))
        scores: dict[str, Any] = {}
        for mode, mode_prefixes in prefixes.items():
            acc_name, example_name = names[mode]
            for t in self.config.temperatures:
                if not can_sample:
                    scores.update({acc_name(t): 0.0, example_name(t, True): None, example_name(t, False): None})
                    if mode == "synth":
                        scores[metrics.synth_distinct(t)] = 0.0
                    continue
                continuations = sample(self.model, mode_prefixes, t, self.config.max_len, END, generator)
                judged, distinct = self._judge(mode_prefixes, continuations, acc_name(t), example_name, t)
                scores.update(judged)
                if mode == "synth":
                    scores[metrics.synth_distinct(t)] = distinct
        return scores

    def _judge(
        self,
        prefixes: list[list[int]],
        continuations: list[list[int]],
        acc_name: str,
        example_name: Callable[[float, bool], str],
        t: float,
    ) -> tuple[dict[str, Any], float]:
        """Share of valid samples, and the first valid and first invalid one as text; and the share
        of distinct valid texts among all samples. Valid means: `.end` came within max_len and the
        characters before it are in the language."""
        vocab, valid_count, distinct = self.data.vocab, 0, set()
        examples: dict[str, str | None] = {example_name(t, True): None, example_name(t, False): None}
        for prefix, new in zip(prefixes, continuations):
            ended = bool(new) and new[-1] == END
            body = prefix[1:] + (new[:-1] if ended else new)
            text = vocab.decode(body)
            valid = ended and is_valid(self.data.grammar, text)
            valid_count += valid
            if valid:
                distinct.add(text)
            key = example_name(t, valid)
            if examples[key] is None:
                examples[key] = text
        return {acc_name: valid_count / len(prefixes), **examples}, len(distinct) / len(prefixes)
