"""The classifiers: padding must not change a review's logits; the naive Elman equals nn.RNN; the
cell table gives every kind its encoder, the language model included."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnbench.data.batching import PAD
from rnnbench.errors import ConfigError
from rnnbench.models import CELLS, CLASSIFIERS, LM_CELLS, Classifier, LanguageModel


@pytest.mark.parametrize("kind", CLASSIFIERS)
def test_padding_does_not_change_logits(kind):
    torch.manual_seed(0)
    model = Classifier(kind, vocab_size=50, embed_dim=16, hidden_dim=12, padding_idx=PAD).eval()
    review = torch.randint(4, 50, (1, 7))
    alone = model(review, torch.tensor([7]))
    batch = torch.zeros(3, 19, dtype=torch.long)
    batch[0] = torch.randint(4, 50, (19,))
    batch[1, :7] = review[0]
    batch[2, :3] = torch.randint(4, 50, (3,))
    in_batch = model(batch, torch.tensor([19, 7, 3]))
    torch.testing.assert_close(in_batch[1:2], alone, rtol=1e-5, atol=1e-6)


def test_naive_elman_computes_what_nn_rnn_computes():
    torch.manual_seed(0)
    fast = Classifier("elman", vocab_size=30, embed_dim=8, hidden_dim=6, padding_idx=PAD)
    naive = Classifier("elman_naive", vocab_size=30, embed_dim=8, hidden_dim=6, padding_idx=PAD)
    naive.load_state_dict(fast.state_dict())
    tokens = torch.randint(1, 30, (4, 11))
    lengths = torch.tensor([11, 5, 8, 1])
    torch.testing.assert_close(naive(tokens, lengths), fast(tokens, lengths), rtol=1e-5, atol=1e-6)


def test_study_sizes_are_the_defaults():
    model = Classifier("lstm", vocab_size=100, padding_idx=PAD)
    assert model.embed.embedding_dim == 300 and model.encoder.hidden_size == 300
    assert model.out.out_features == 2
    lm = LanguageModel(vocab_size=10, padding_idx=PAD)
    assert isinstance(lm.rnn, nn.LSTM)
    assert (lm.embed.embedding_dim, lm.rnn.hidden_size, lm.rnn.num_layers) == (32, 16, 1)


@pytest.mark.parametrize("kind, encoder", [("mlp", type(None)), ("elman", nn.RNN), ("lstm", nn.LSTM), ("gru", nn.GRU)])
def test_each_kind_gets_its_cell(kind, encoder):
    assert isinstance(Classifier(kind, vocab_size=10, embed_dim=4, hidden_dim=3, padding_idx=PAD).encoder, encoder)


def test_language_model_runs_a_gru_and_carries_its_state():
    torch.manual_seed(0)
    lm = LanguageModel(vocab_size=12, num_layers=2, cell="gru", padding_idx=PAD)
    tokens = torch.randint(1, 12, (3, 6))
    whole, _ = lm(tokens)
    first, state = lm(tokens[:, :4])
    rest, _ = lm(tokens[:, 4:], state)
    assert isinstance(lm.rnn, nn.GRU) and lm.rnn.num_layers == 2
    torch.testing.assert_close(torch.cat([first, rest], dim=1), whole)


def test_unknown_model_or_cell_is_a_config_error():
    with pytest.raises(ConfigError, match="mlp, elman, elman_naive, lstm, gru"):
        Classifier("transformer", vocab_size=10, padding_idx=PAD)
    with pytest.raises(ConfigError, match="unknown cell 'elman'.*lstm, gru"):
        LanguageModel(vocab_size=10, cell="elman", padding_idx=PAD)


def test_the_torch_free_names_are_the_cells_there_are():
    """rnnbench.names lists the models for --help and the config checks; each must have its cell."""
    assert CLASSIFIERS == tuple(CELLS) and set(LM_CELLS) <= set(CELLS)
