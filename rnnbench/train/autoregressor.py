"""Next-token LSTM/GRU on synthetic grammars: plain SGD epochs, then Synthesis and Completion scores.

One loop for K members: `GrammarGroup(configs).epochs()` trains K configurations as one fused
computation (rnnbench.fused.GroupLanguageModel) and yields, once per epoch, {member index: that
member's metrics}. Members may differ in grammar, lr, momentum and seed: each has its own
generated words, weights, batch order, RNG and divergence, and leaves the group when it diverges.
`GrammarRun(config)` is the solo run, a group of one, so a member's metrics and checkpoints are
the same whether it trains alone or among 120 (up to float rounding where the group's shapes
differ); `save` / `restore` let a run stop after any epoch and go on exactly as if it never had.

Batches: members share the order of the length buckets' steps (`order_seed`, as the classifiers
do) and shuffle within buckets with their own RNG, so at every step all members take batches from
the same length quantile of their own data and a step's width (the longest of all K batches) is
little more than each member's own: `GrammarGroup.padding_share` reports what is left.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rnnbench import metrics
from rnnbench.data.batching import PAD, Sequences, group_batches, order_rng
from rnnbench.data.grammars import END, START, GrammarData, is_valid
from rnnbench.errors import ConfigError
from rnnbench.fused import GroupLanguageModel, GroupSGD
from rnnbench.models import LanguageModel
from rnnbench.sampling import sample_members
from rnnbench.train.common import OnBatch, TrainingRun, load_checkpoint, pick_device, seed_everything
from rnnbench.train.configs import GrammarConfig
from rnnbench.train.members import FusedGroup

# How far above the uniform guess (log V nats a token) an epoch's mean loss may be before the run
# counts as diverged. An untrained model is not exactly uniform: over 3 seeds x lstm/gru x the three
# grammars at lr 0.001, its first epoch's loss was up to 0.09 nats above log V. Runs that blew up
# were far above it (brackets lr 10: 3.7 nats against log 6 = 1.8; lr 1e3 to 1e8: hundreds to 1e8).
UNIFORM_SLACK = 0.25
HELD_OUT_BATCH = 256  # held-out strings scored at once per member (no gradient, so bigger than training batches)
MEMBER_FIELDS = ("dataset", "lr", "seed", "momentum")  # each member's own; every other config field must agree


def load_data(config: GrammarConfig, vocab: tuple[str, ...] | None = None) -> None:
    """Nothing is shared between trials: each seed draws its own words (cheap, and part of the
    seed-to-seed variation a sweep measures), so the sweep ships no data through Ray."""
    return None


@functools.lru_cache(maxsize=1 << 16)
def _valid(grammar: str, text: str) -> bool:
    """is_valid, remembered: most samples of a trained model are a few short words."""
    return is_valid(grammar, text)


def _concat(parts: Sequence[Sequences]) -> tuple[Sequences, np.ndarray]:
    """All parts as one Sequences, and where each part's sequences start in it."""
    starts = np.cumsum([0] + [len(p) for p in parts])[:-1]
    token_starts = np.cumsum([0] + [len(p.tokens) for p in parts])[:-1]
    offsets = np.concatenate([p.offsets[:-1] + s for p, s in zip(parts, token_starts)] + [[sum(len(p.tokens) for p in parts)]])
    return Sequences(np.concatenate([p.tokens for p in parts]), offsets.astype(np.int64)), starts


def _sum_of_squares(grad: torch.Tensor) -> torch.Tensor:
    """Each member's sum of squares of a `[K, rows, ...]` gradient, summing the rows last and in
    order (as an outer dimension), so the zero rows a padded vocabulary adds leave it bit for bit."""
    squares = grad * grad
    per_row = squares.flatten(2).sum(2) if grad.dim() > 2 else squares
    return per_row.T.contiguous().sum(0)


class GrammarGroup(FusedGroup):
    """K grammar configurations trained as one computation; `active` lists the members still
    training, in the order of the fused model's member dimension. `data` may be None (each
    member generates its own words; members with the same grammar and seed share them), one
    GrammarData (used by every member of that grammar) or a list with one per member.

    `on_batch`, when set, hears (steps done, steps in the epoch) after every step (one batch of
    every member). Timing metrics are the group's: `epoch_s` is its wall time for the epoch and a
    member's `tokens_per_s` counts that member's tokens over the group's training time."""

    config_cls = GrammarConfig
    load_data = staticmethod(load_data)
    member_fields = MEMBER_FIELDS

    def __init__(self, configs: Sequence[GrammarConfig], data: GrammarData | Sequence[GrammarData] | None = None):
        self.check_group(configs)
        self.configs = list(configs)
        base = self.configs[0]
        self.data = self._member_data(data)
        self.device = pick_device(base.device)
        self.rngs: list[np.random.Generator] = []
        self.torch_rngs: list[torch.Tensor] = []  # each member's torch RNG right after its init, as a solo run has it
        sizes = [len(d.vocab) for d in self.data]
        self.model = GroupLanguageModel(base.cell, sizes, base.embed_dim, base.hidden_dim, base.num_layers)
        self.model.compiled = base.compile
        for k, config in enumerate(self.configs):
            self.rngs.append(seed_everything(config.seed))
            solo = LanguageModel(
                sizes[k], base.embed_dim, base.hidden_dim, base.num_layers, base.cell, padding_idx=PAD
            )  # GrammarRun's
            self.torch_rngs.append(torch.get_rng_state())
            self.model.load_member_state_dict(k, solo.state_dict())
        self.model.to(self.device)
        self.optimizer = GroupSGD(self.model, [c.lr for c in self.configs], [c.momentum for c in self.configs])
        # every member's training and held-out words in one array each; member k's at its start
        distinct = list({id(d): d for d in self.data}.values())
        self._train, train_starts = _concat([d.train for d in distinct])
        self._held_out, held_starts = _concat([d.held_out for d in distinct])
        where = {id(d): i for i, d in enumerate(distinct)}
        self._train_start = np.array([train_starts[where[id(d)]] for d in self.data])
        self._held_start = np.array([held_starts[where[id(d)]] for d in self.data])
        self.padding_share = 0.0  # of the last epoch's training steps: padded slots / all slots
        self._start()

    def _member_data(self, data: GrammarData | Sequence[GrammarData] | None) -> list[GrammarData]:
        if isinstance(data, GrammarData) or data is None:
            cache = {} if data is None else {data.grammar: data}
            out = []
            for c in self.configs:
                key = c.dataset if c.dataset in cache else (c.dataset, c.seed)
                if key not in cache:
                    cache[key] = GrammarData.generate(c.dataset, c.n, c.seed, c.num_samples)
                out.append(cache[key])
        else:
            out = list(data)
        for c, d in zip(self.configs, out, strict=True):
            if d.grammar != c.dataset:
                raise ConfigError(f"data is {d.grammar!r} but config.dataset is {c.dataset!r}; pass matching data")
            if len(d.train) != len(out[0].train) or len(d.held_out) != len(out[0].held_out):
                raise ConfigError("members' data differ in size; give every member as many words (n, num_samples)")
        return out

    def run_epoch(self) -> dict[int, dict[str, Any]]:
        """Train one epoch, then score it: held-out loss, Synthesis and Completion."""
        start = time.perf_counter()
        results = self._train_epoch()
        self.epoch += 1
        held_out = self._held_out_loss()
        scores = self._scores()
        seconds = time.perf_counter() - start
        for j, member in enumerate(self.active):
            results[member].update({metrics.EPOCH: self.epoch, metrics.HELD_OUT_LOSS_PER_TOKEN: held_out[j]})
            results[member].update(scores[j])
            results[member][metrics.EPOCH_S] = seconds
        self._drop([m for m in self.active if results[m][metrics.DIVERGED]])
        return {m: results[m] for m in sorted(results)}

    def epoch_steps(self) -> list[np.ndarray]:
        """The next epoch's steps, each `[K, b]` of indices into the joined training words (row j:
        active member j's batch). Draws from the members' batch generators: call once per epoch."""
        base, lengths = self.configs[0], self._train.lengths
        per_member = []
        for member in self.active:
            d = self.data[member]
            steps = group_batches(
                base.batching, d.train.lengths, base.batch_size, order_rng(base.order_seed, self.epoch), [self.rngs[member]]
            )  # fmt: skip
            per_member.append([step[0] + self._train_start[member] for step in steps])
        steps = [np.stack(rows) for rows in zip(*per_member)]
        real = sum(int(lengths[s].sum()) - s.size for s in steps)
        padded = sum(s.size * (int(lengths[s].max()) - 1) for s in steps)
        self.padding_share = 1 - real / padded
        return steps

    def _train_epoch(self) -> dict[int, dict[str, Any]]:
        """One pass of SGD over length-bucketed batches: input = sequence without its last token,
        target = the sequence shifted by one. Sums stay on the device until the end of the epoch."""
        K = len(self.active)
        steps = self.epoch_steps()
        zeros = torch.zeros(K, device=self.device)
        loss_sum, real_loss_sum, grad_norm_sum = zeros, zeros.clone(), zeros.clone()
        real_tokens = np.zeros(K, dtype=np.int64)
        start = time.perf_counter()
        for done, step in enumerate(steps, start=1):
            padded, lengths = self._train.pad(step, static=self.configs[0].cuda_graphs)  # [K, b, W]
            batch = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1))).to(self.device, non_blocking=True)
            loss, real_loss, norm = self.step(batch, torch.from_numpy(lengths).to(self.device, non_blocking=True))
            loss_sum += loss
            real_loss_sum += real_loss
            grad_norm_sum += norm
            real_tokens += lengths.sum(1) - lengths.shape[1]
            if self.on_batch is not None:
                self.on_batch(done, len(steps))
        loss_sums = loss_sum.tolist()  # also waits for the GPU, so the timing below is honest
        seconds = time.perf_counter() - start
        results = {}
        for j, (member, loss_sum_value, real_loss, norm) in enumerate(
            zip(self.active, loss_sums, real_loss_sum.tolist(), grad_norm_sum.tolist())
        ):
            loss_per_token = real_loss / int(real_tokens[j])
            # Not finite is not the only way to blow up: at lr 1e3 to 1e8 the loss stays finite while
            # the model collapses onto one word (brackets: "()" forever, which still scores 100% valid).
            # A mean loss over the epoch worse than guessing uniformly over the vocabulary (log V) means
            # the model knows less than nothing about the data; UNIFORM_SLACK spares untrained runs.
            worse_than_uniform = loss_per_token > math.log(len(self.data[member].vocab)) + UNIFORM_SLACK
            results[member] = {
                metrics.TRAIN_LOSS_SUM: loss_sum_value,
                metrics.LOSS_PER_TOKEN: loss_per_token,
                metrics.GRAD_NORM: norm / len(steps),
                metrics.TOKENS_PER_S: int(real_tokens[j]) / seconds,
                metrics.DIVERGED: not math.isfinite(loss_sum_value) or not math.isfinite(loss_per_token) or worse_than_uniform,
            }
        return results

    def fused_step(self, batch: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One SGD step of every active member on its batch: `batch` time-major `[W, K, b]`,
        `lengths` `[K, b]`. Returns each member's loss, summed loss over real targets and gradient
        norm before clipping, left on the device (no sync)."""
        config = self.configs[0]
        W, K, b = batch.shape
        logits = self.model(batch[:-1])  # [K, V, (W - 1) * b]
        targets = batch[1:].transpose(0, 1).reshape(K, -1)
        # sums over time first, then over the batch: a sum over an outer dimension runs in order, so
        # the steps a member is padded with in a group (zeros, at the end) leave its sums bit for bit
        per_token = F.cross_entropy(logits, targets, reduction="none").view(K, W - 1, b)
        real = (targets != PAD).float().view(K, W - 1, b)
        real_loss = (per_token * real).sum(1).sum(1)
        if config.mask_padding:  # = ignore_index=PAD
            loss = real_loss / real.sum((1, 2))
        else:  # the mean over the member's own padded batch, `.pad` targets behind `.end` included
            own = (torch.arange(W - 1, device=batch.device)[None, :] < lengths.max(1).values[:, None] - 1).float()
            loss = (per_token * own[:, :, None]).sum(1).sum(1) / (own.sum(1) * b)
        self.optimizer.zero_grad()
        loss.sum().backward()  # each member's gradient is that of its own loss
        grads = [p.grad for p in self.model.parameters()]
        norm = torch.stack([_sum_of_squares(g) for g in grads]).sum(0).sqrt()  # each member's, over all its parameters
        if config.clip_grad is not None:
            scale = (config.clip_grad / (norm + 1e-6)).clamp(max=1.0)  # as clip_grads_with_norm_
            for g in grads:
                g.mul_(scale.view(-1, *[1] * (g.dim() - 1)))
        self.optimizer.step()
        return loss.detach(), real_loss.detach(), norm

    @torch.no_grad()
    def _held_out_loss(self) -> list[float]:
        """Each active member's mean cross-entropy per real target token (`.end` included) on its
        held-out strings: a collapsed model can sample valid words but cannot predict words it
        never drew from. All members in one pass, each on its own strings, similar lengths together."""
        members = self.active
        n = len(self.data[members[0]].held_out)
        order = np.stack([np.argsort(self.data[m].held_out.lengths, kind="stable") + self._held_start[m] for m in members])
        loss_sum = torch.zeros(len(members), device=self.device)
        for cols in np.array_split(np.arange(n), max(1, math.ceil(n / HELD_OUT_BATCH))):
            padded, _ = self._held_out.pad(order[:, cols])
            batch = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1))).to(self.device)
            logits = self.model(batch[:-1])
            targets = batch[1:].transpose(0, 1).reshape(len(members), -1)
            per_token = F.cross_entropy(logits, targets, ignore_index=PAD, reduction="none")
            loss_sum += per_token.view(len(members), batch.shape[0] - 1, -1).sum(1).sum(1)  # as in fused_step
        targets = [int(self.data[m].held_out.lengths.sum() - n) for m in members]
        return [s / t for s, t in zip(loss_sum.tolist(), targets)]

    def _scores(self) -> list[dict[str, Any]]:
        """Synthesis (from `.start`) and Completion (of held-out first halves) at every temperature,
        all members sampled at once (rnnbench.sampling.sample_members).

        Each member's sampling generator is seeded from (seed, epoch), so samples are the same on a
        resumed run and drawing them never moves the training RNG. A model with non-finite weights has
        NaN logits and cannot sample: it scores 0 without trying. A diverged model whose weights are
        finite is sampled and judged like any other, so its scores show how it collapsed."""
        config, members = self.configs[0], self.active
        finite = torch.stack([p.flatten(1).isfinite().all(1) for p in self.model.parameters()]).all(0).tolist()
        generators = []
        for j, member in enumerate(members):
            generator = None
            if finite[j]:
                generator = torch.Generator(self.device)
                seed = self.configs[member].seed
                generator.manual_seed(int(np.random.SeedSequence([seed, self.epoch]).generate_state(1)[0]))
            generators.append(generator)
        prefixes = {"synth": [[[START]] * config.num_samples for _ in members], "compl": []}
        for member in members:
            held_out = self.data[member].held_out
            prefixes["compl"].append(
                [
                    held_out.tokens[a : a + 1 + (b - a - 2) // 2].tolist()  # `.start` + the first half of the characters
                    for a, b in zip(held_out.offsets[:-1].tolist(), held_out.offsets[1:].tolist())
                ][: config.num_samples]
            )
        names = {"synth": (metrics.synth_acc, metrics.synth_example), "compl": (metrics.compl_acc, metrics.compl_example)}
        scores: list[dict[str, Any]] = [{} for _ in members]
        for mode, mode_prefixes in prefixes.items():
            acc_name, example_name = names[mode]
            for t in config.temperatures:
                continuations = sample_members(self.model, mode_prefixes, t, config.max_len, END, generators)
                for j, member in enumerate(members):
                    if continuations[j] is None:
                        scores[j].update({acc_name(t): 0.0, example_name(t, True): None, example_name(t, False): None})
                        if mode == "synth":
                            scores[j][metrics.synth_distinct(t)] = 0.0
                        continue
                    judged, distinct = self._judge(member, mode_prefixes[j], continuations[j], acc_name(t), example_name, t)
                    scores[j].update(judged)
                    if mode == "synth":
                        scores[j][metrics.synth_distinct(t)] = distinct
        return scores

    def _judge(
        self,
        member: int,
        prefixes: list[list[int]],
        continuations: list[list[int]],
        acc_name: str,
        example_name: Callable[[float, bool], str],
        t: float,
    ) -> tuple[dict[str, Any], float]:
        """Share of valid samples, and the first valid and first invalid one as text; and the share
        of distinct valid texts among all samples. Valid means: `.end` came within max_len and the
        characters before it are in the language."""
        data = self.data[member]
        valid_count, distinct = 0, set()
        examples: dict[str, str | None] = {example_name(t, True): None, example_name(t, False): None}
        for prefix, new in zip(prefixes, continuations):
            ended = bool(new) and new[-1] == END
            text = data.vocab.decode(prefix[1:] + (new[:-1] if ended else new))
            valid = ended and _valid(data.grammar, text)
            valid_count += valid
            if valid:
                distinct.add(text)
            key = example_name(t, valid)
            if examples[key] is None:
                examples[key] = text
        return {acc_name: valid_count / len(prefixes), **examples}, len(distinct) / len(prefixes)


class GrammarRun(TrainingRun):
    """One grammar trial: a GrammarGroup of one member, with the solo run's surface (`config`,
    `data`, `epoch`, `diverged`, checkpoints as in rnnbench.train.common.TrainingRun); `model`
    is a copy of its weights as a LanguageModel."""

    config_cls = GrammarConfig
    load_data = staticmethod(load_data)

    def __init__(self, config: GrammarConfig, data: GrammarData | None = None):
        self.config = config
        self.group = GrammarGroup([config], None if data is None else [data])
        self.data = self.group.data[0]
        self.device = self.group.device
        self.epoch = 0
        self.diverged = False

    @property
    def on_batch(self) -> OnBatch | None:  # type: ignore[override]
        return self.group.on_batch

    @on_batch.setter
    def on_batch(self, hook: OnBatch | None) -> None:
        self.group.on_batch = hook

    @property
    def model(self) -> LanguageModel:  # type: ignore[override]
        """The run's weights now, as a LanguageModel (a copy: changing it does not change the run)."""
        state = self.state_dict()["model"]
        c = self.config
        model = LanguageModel(len(self.data.vocab), c.embed_dim, c.hidden_dim, c.num_layers, c.cell, padding_idx=PAD)
        model.load_state_dict(state)
        return model.to(self.device)

    def run_epoch(self) -> dict[str, Any]:
        result = self.group.run_epoch()[0]
        self.epoch, self.diverged = result[metrics.EPOCH], result[metrics.DIVERGED]
        return result

    def state_dict(self) -> dict[str, Any]:
        return self.group.member_state_dict(0)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        hook, self.group = self.group.on_batch, GrammarGroup([self.config], self.data)  # a group loads into a fresh one
        self.group.on_batch = hook
        self.group.load_state_dict({"members": [state]})
        self.epoch, self.diverged = state["epoch"], state["diverged"]

    @classmethod
    def restore(cls, path: Any, config: GrammarConfig | None = None, data: GrammarData | None = None) -> GrammarRun:
        """Continue the run saved at `path`, under its saved config unless a changed `config` is
        given (more epochs, another lr or momentum: the group always steps with its config's)."""
        state = load_checkpoint(path)
        run = cls(config or GrammarConfig(**state["config"]), data)
        run.load_state_dict(state)
        return run
