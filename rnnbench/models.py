"""The study's models: three sentiment classifiers (plus a hand-written Elman for reference) and
the next-token LSTM used on the grammars."""

from __future__ import annotations

import torch
from torch import nn

from rnnbench.data.batching import PAD
from rnnbench.errors import ConfigError

CLASSIFIERS = ("mlp", "elman", "elman_naive", "lstm")


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


def _encoder(kind: str, embed_dim: int, hidden_dim: int) -> nn.Module | None:
    if kind == "elman":
        return nn.RNN(embed_dim, hidden_dim, batch_first=True)
    if kind == "elman_naive":
        return NaiveElman(embed_dim, hidden_dim)
    if kind == "lstm":
        return nn.LSTM(embed_dim, hidden_dim, batch_first=True)
    return None


class Classifier(nn.Module):
    """Embedding → encoder → Linear → ReLU → max over the real (unpadded) positions → Linear.

    The encoder is nothing for `mlp` (the Linear then acts per token), `nn.RNN` for `elman`,
    `NaiveElman` for `elman_naive` and `nn.LSTM` for `lstm`. Padding sits at the end of each row
    and the recurrences run left to right, so masking the pool is all it takes for a padded
    review to give the same logits as the review alone."""

    def __init__(
        self, kind: str, vocab_size: int, num_classes: int = 2, embed_dim: int = 300, hidden_dim: int = 300,
        sparse: bool = False,
    ):
        super().__init__()
        if kind not in CLASSIFIERS:
            raise ConfigError(f"unknown model {kind!r}; choose one of {', '.join(CLASSIFIERS)}")
        self.kind = kind
        # sparse=True: a batch's embedding gradient touches only its own words' rows, instead of a
        # dense vocab x 300 matrix (20M floats on IMDB) zeroed, filled and stepped every batch
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD, sparse=sparse)
        self.encoder = _encoder(kind, embed_dim, hidden_dim)
        self.hidden = nn.Linear(embed_dim if kind == "mlp" else hidden_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, num_classes)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """tokens `[B, T]` padded with PAD, lengths `[B]` (each >= 1) → logits `[B, K]`."""
        x = self.embed(tokens)
        if self.encoder is not None:
            x, _ = self.encoder(x)
        h = torch.relu(self.hidden(x))
        padded = torch.arange(tokens.shape[1], device=tokens.device)[None, :] >= lengths[:, None]
        pooled = h.masked_fill(padded[:, :, None], float("-inf")).amax(dim=1)
        return self.out(pooled)


class LanguageModel(nn.Module):
    """Embedding(V, 32) → LSTM(32, 16, layers) → Linear(16, V): next-token logits at every step."""

    def __init__(self, vocab_size: int, embed_dim: int = 32, hidden_dim: int = 16, num_layers: int = 1):
        super().__init__()
        if not 1 <= num_layers <= 3:
            raise ConfigError(f"num_layers must be 1, 2 or 3, got {num_layers}")
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, num_layers=num_layers, batch_first=True)
        self.out = nn.Linear(hidden_dim, vocab_size)

    def forward(
        self, tokens: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """tokens `[B, T]` → logits `[B, T, V]` and the LSTM state, so sampling can go on one token
        at a time without re-reading the prefix."""
        output, state = self.lstm(self.embed(tokens), state)
        return self.out(output), state
