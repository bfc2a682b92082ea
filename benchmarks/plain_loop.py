"""A deliberately plain reference loop, the way one first writes it: reviews as Python lists,
shuffled random batches, each padded to its longest review with pad_sequence. Same model, same
optimizer, same loss as rnnbench's loop; only batching and data handling differ."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from rnnbench.data.batching import Sequences
from rnnbench.models import Classifier


def plain_epoch(model: Classifier, train: Sequences, lr: float, batch_size: int, seed: int, device: str = "cpu") -> float:
    """Train one epoch; return real (non-padding) tokens per second."""
    reviews = [train.tokens[train.offsets[i] : train.offsets[i + 1]].tolist() for i in range(len(train))]
    labels = train.labels.tolist()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    order = np.random.default_rng(seed).permutation(len(reviews)).tolist()
    model.train()
    start = time.perf_counter()
    for i in range(0, len(order), batch_size):
        batch = order[i : i + batch_size]
        tokens = pad_sequence([torch.tensor(reviews[j]) for j in batch], batch_first=True).to(device)
        lengths = torch.tensor([len(reviews[j]) for j in batch]).to(device)
        loss = F.cross_entropy(model(tokens, lengths), torch.tensor([labels[j] for j in batch]).to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if device != "cpu":
        torch.cuda.synchronize()
    return sum(map(len, reviews)) / (time.perf_counter() - start)
