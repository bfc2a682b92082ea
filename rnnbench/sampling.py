"""Temperature sampling from a LanguageModel, all sequences in one batch, one LSTM step a token.

Each step feeds only the newest token and carries the LSTM state, so a sample of length L costs L
steps instead of the L^2 / 2 token reads of re-running the whole prefix every step.

A sample is made of the grammar's characters and may stop with `.end`; it never contains `.pad`,
`.start` or `.unk`, whatever weight the model gives them: their logits are masked before each pick.
"""

from __future__ import annotations

import torch

from rnnbench.data.vocab import PAD, START, UNK
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
