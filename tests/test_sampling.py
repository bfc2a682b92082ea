"""Sampling emits the grammar's characters and `.end`, never `.pad`, `.start` or `.unk`, however
strongly the model favours them."""

from __future__ import annotations

import pytest
import torch

from rnnbench.data.grammars import Vocab
from rnnbench.data.vocab import END, PAD, START, UNK
from rnnbench.models import LanguageModel
from rnnbench.sampling import sample

VOCAB = Vocab.for_grammar("brackets")
PREFIXES = [[START]] * 20 + [[START, 4, 4], [START, 4, 5, 4]]  # empty and part-written words


def biased_model(biases: dict[int, float]) -> LanguageModel:
    """A random model whose output bias makes the given tokens by far the likeliest."""
    torch.manual_seed(0)
    model = LanguageModel(len(VOCAB), padding_idx=PAD)
    with torch.no_grad():
        for token, bias in biases.items():
            model.out.bias[token] = bias
    return model


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_special_tokens_other_than_end_are_never_sampled(temperature):
    model = biased_model({PAD: 50.0, START: 40.0, UNK: 30.0})
    samples = sample(model, PREFIXES, temperature, max_len=30, end=END, generator=torch.Generator().manual_seed(0))
    assert len(samples) == len(PREFIXES) and all(samples)
    emitted = {token for row in samples for token in row}
    assert not emitted & {PAD, START, UNK}
    assert emitted <= {END, *range(4, len(VOCAB))}


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_end_may_still_be_sampled(temperature):
    model = biased_model({PAD: 50.0, END: 20.0})
    samples = sample(model, PREFIXES, temperature, max_len=30, end=END, generator=torch.Generator().manual_seed(0))
    assert samples == [[END]] * len(PREFIXES)
