"""Temperature sampling from a LanguageModel (`sample`), or from every member of a
GroupLanguageModel at once (`sample_members`), all sequences in one batch, one LSTM step a token.

Each step feeds only the newest token and carries the LSTM state, so a sample of length L costs L
steps instead of the L^2 / 2 token reads of re-running the whole prefix every step.

A sample is made of the grammar's characters and may stop with `.end`; it never contains `.pad`,
`.start` or `.unk`, whatever weight the model gives them: their logits are masked before each pick.
"""

from __future__ import annotations

import numpy as np
import torch

from rnnbench.data.vocab import PAD, START, UNK
from rnnbench.fused import GroupLanguageModel
from rnnbench.models import LanguageModel

NEVER_SAMPLED = (PAD, START, UNK)  # `.end` is allowed: it is how a sample stops


def pick_tokens(logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """`[B, V]` logits → `[B]` tokens: argmax at temperature 0, else a draw from softmax(logits / t)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@torch.no_grad()
def sample(
    model: LanguageModel,
    prefixes: list[list[int]],
    temperature: float,
    max_len: int,
    end: int,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Continue every (non-empty) prefix until it emits `end` or has `max_len` new tokens.

    Returns the new tokens of each row, `end` included when it came. Rows walk through their own
    prefix first (teacher forcing, one token a step), so prefixes of different lengths share the
    batch and every row sees exactly what it would see alone."""
    device = next(model.parameters()).device
    lengths = torch.tensor([len(p) for p in prefixes], device=device)
    width = int(lengths.max())
    forced = torch.full((len(prefixes), width), PAD, dtype=torch.long)
    for row, prefix in enumerate(prefixes):
        forced[row, : len(prefix)] = torch.tensor(prefix)
    forced = forced.to(device)

    new = torch.full((len(prefixes), max_len), PAD, dtype=torch.long, device=device)
    done = torch.zeros(len(prefixes), dtype=torch.bool, device=device)
    never = torch.tensor(NEVER_SAMPLED, device=device)
    token, state = forced[:, 0], None
    for step in range(width - 1 + max_len):
        logits, state = model(token[:, None], state)
        picked = pick_tokens(logits[:, 0].index_fill(1, never, float("-inf")), temperature, generator)
        position = step + 1 - lengths  # index of `picked` among the row's new tokens; < 0: in prefix
        generating = (position >= 0) & (position < max_len) & ~done
        rows = generating.nonzero().squeeze(1)
        new[rows, position[rows]] = picked[rows]
        done |= generating & (picked == end)
        if step + 1 >= width and bool(done.all()):
            break
        token = torch.where(position < 0, forced[:, min(step + 1, width - 1)], picked)

    out = []
    for row in new.tolist():
        cut = row.index(end) + 1 if end in row else len(row)
        out.append(row[:cut])
    return out


@torch.no_grad()
def sample_members(
    model: GroupLanguageModel,
    prefixes: list[list[list[int]]],
    temperature: float,
    max_len: int,
    end: int,
    generators: list[torch.Generator | None],
) -> list[list[list[int]] | None]:
    """`sample` for every member of a GroupLanguageModel at once: member k continues its own
    prefixes (`prefixes[k]`, the same count for every member) with its own generator.

    A member draws exactly what it draws in a group of one: at t > 0 a pick is the argmax of
    logits / t - log(noise) with Exp(1) noise (the Gumbel trick torch.multinomial uses for one sample),
    each member's noise drawn from its own generator in a tensor of its own vocabulary's shape,
    and a member stops drawing at the step where it would stop alone (all its rows ended after
    its prefixes, or max_len), so its generator goes on to the next temperature in the same
    state. A member whose generator is None is not sampled (None in the result)."""
    K, S = len(prefixes), len(prefixes[0])
    device = model.params["out.bias"].device
    lengths_np = np.array([[len(p) for p in rows] for rows in prefixes])
    widths = lengths_np.max(1)
    width = int(widths.max())
    forced_np = np.full((K, S, width), PAD, dtype=np.int64)
    for k, rows in enumerate(prefixes):
        for row, prefix in enumerate(rows):
            forced_np[k, row, : len(prefix)] = prefix
    forced, lengths = torch.from_numpy(forced_np).to(device), torch.from_numpy(lengths_np).to(device)

    new = torch.full((K, S, max_len), PAD, dtype=torch.long, device=device)
    done = torch.zeros(K, S, dtype=torch.bool, device=device)
    never = torch.tensor(NEVER_SAMPLED, device=device)
    running = [k for k in range(K) if generators[k] is not None]
    table = model._input_table()
    token, state = forced[:, :, 0], None
    for step in range(width - 1 + max_len):
        logits, state = model.step(token, state, table)
        logits = logits.index_fill(2, never, float("-inf"))
        if temperature == 0:
            picked = logits.argmax(dim=-1)
        else:  # argmax of softmax(logits / t) / noise, without the softmax (its sum is the same in a row)
            noise = torch.full_like(logits, float("inf"))
            for k in running:
                V = model.vocab_sizes[k]
                noise[k, :, :V] = torch.empty(S, V, device=device).exponential_(generator=generators[k])
            picked = (logits / temperature - noise.log()).argmax(dim=-1)
        position = step + 1 - lengths  # index of `picked` among the row's new tokens; < 0: in prefix
        generating = (position >= 0) & (position < max_len) & ~done
        rows = generating.nonzero(as_tuple=True)
        new[rows[0], rows[1], position[rows]] = picked[rows]
        done |= generating & (picked == end)
        all_done = done.all(dim=1).tolist()
        running = [k for k in running if not (step + 1 >= widths[k] and all_done[k]) and step + 1 < widths[k] - 1 + max_len]
        if not running:
            break
        token = torch.where(position < 0, forced[:, :, min(step + 1, width - 1)], picked)

    out: list[list[list[int]] | None] = []
    for k, member in enumerate(new.tolist()):
        if generators[k] is None:
            out.append(None)
            continue
        out.append([row[: row.index(end) + 1] if end in row else row for row in member])
    return out
