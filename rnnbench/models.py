"""The study's models: the sentiment classifiers (MLP, Elman, LSTM, GRU, plus a hand-written Elman
for reference) and the next-token language model used on the grammars."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from rnnbench.errors import ConfigError
from rnnbench.names import CLASSIFIERS, LM_CELLS


class NaiveElman(nn.Module):
    """h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), looped over time in Python.

    The study's "horribly slow" variant. Same parameter names and shapes as `nn.RNN`, so weights can
    be copied between the two to check that they compute the same thing."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.weight_ih_l0 = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh_l0 = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias_ih_l0 = nn.Parameter(torch.empty(hidden_size))
        self.bias_hh_l0 = nn.Parameter(torch.empty(hidden_size))
        bound = hidden_size**-0.5
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = x @ self.weight_ih_l0.T + self.bias_ih_l0
        h = x.new_zeros(x.shape[0], self.weight_hh_l0.shape[0])
        outputs = []
        for t in range(x.shape[1]):
            h = torch.tanh(inputs[:, t] + h @ self.weight_hh_l0.T + self.bias_hh_l0)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h[None]


# The recurrent encoder of each cell kind, built as `CELLS[kind](input_size, hidden_size)`; None: no
# recurrence (the MLP reads each token on its own). A new cell is one entry here, its name in
# rnnbench.names.CLASSIFIERS, and one in rnnbench.fused.FUSED_CELLS for trial groups.
CELLS: dict[str, Callable[..., nn.Module] | None] = {
    "mlp": None,
    "elman": partial(nn.RNN, batch_first=True),
    "elman_naive": NaiveElman,
    "lstm": partial(nn.LSTM, batch_first=True),
    "gru": partial(nn.GRU, batch_first=True),
}


class Classifier(nn.Module):
    """Embedding → encoder → Linear → ReLU → max over the real (unpadded) positions → Linear.

    The encoder is `CELLS[kind]`: nothing for `mlp` (the Linear then acts per token), `nn.RNN` for
    `elman`, `NaiveElman` for `elman_naive`, `nn.LSTM` for `lstm`, `nn.GRU` for `gru`. Padding sits at the end of each row
    and the recurrences run left to right, so masking the pool is all it takes for a padded
    review to give the same logits as the review alone."""

    def __init__(
        self,
        kind: str,
        vocab_size: int,
        num_classes: int = 2,
        embed_dim: int = 300,
        hidden_dim: int = 300,
        sparse: bool = False,
        *,
        padding_idx: int,
    ):
        super().__init__()
        if kind not in CLASSIFIERS:
            raise ConfigError(f"unknown model {kind!r}; choose one of {', '.join(CLASSIFIERS)}")
        self.kind = kind
        # sparse=True: a batch's embedding gradient touches only its own words' rows, instead of a
        # dense vocab x 300 matrix (20M floats on IMDB) zeroed, filled and stepped every batch
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx, sparse=sparse)
        cell = CELLS[kind]
        self.encoder = None if cell is None else cell(embed_dim, hidden_dim)
        self.hidden = nn.Linear(embed_dim if kind == "mlp" else hidden_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, num_classes)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """tokens `[B, T]` padded with `padding_idx`, lengths `[B]` (each >= 1) → logits `[B, K]`."""
        x = self.embed(tokens)
        if self.encoder is not None:
            x, _ = self.encoder(x)
        h = torch.relu(self.hidden(x))
        padded = torch.arange(tokens.shape[1], device=tokens.device)[None, :] >= lengths[:, None]
        pooled = h.masked_fill(padded[:, :, None], float("-inf")).amax(dim=1)
        return self.out(pooled)


RecurrentState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # GRU: h; LSTM: (h, c)


class LanguageModel(nn.Module):
    """Embedding(V, 32) → LSTM or GRU(32, 16, layers) → Linear(16, V): next-token logits at every step."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 32,
        hidden_dim: int = 16,
        num_layers: int = 1,
        cell: str = "lstm",
        *,
        padding_idx: int,
    ):
        super().__init__()
        if not 1 <= num_layers <= 3:
            raise ConfigError(f"num_layers must be 1, 2 or 3, got {num_layers}")
        if cell not in LM_CELLS:
            raise ConfigError(f"unknown cell {cell!r} for the language model; choose one of {', '.join(LM_CELLS)}")
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
        self.rnn = CELLS[cell](embed_dim, hidden_dim, num_layers=num_layers)
        self.out = nn.Linear(hidden_dim, vocab_size)

    def forward(self, tokens: torch.Tensor, state: RecurrentState | None = None) -> tuple[torch.Tensor, RecurrentState]:
        """tokens `[B, T]` → logits `[B, T, V]` and the recurrent state, so sampling can go on one
        token at a time without re-reading the prefix."""
        output, state = self.rnn(self.embed(tokens), state)
        return self.out(output), state
