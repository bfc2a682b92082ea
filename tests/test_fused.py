"""The fused pieces against plain PyTorch: each hand-written recurrence against autograd
(gradcheck) and against nn.RNN / nn.LSTM / nn.GRU on copied weights; the grouped classifier
against K solo Classifiers; the grouped SGD against torch.optim.SGD."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rnnbench.data.batching import PAD
from rnnbench.errors import ConfigError
from rnnbench.fused import FUSED_CELLS, ElmanFunction, GroupClassifier, GroupSGD, GRUFunction, LSTMFunction, stacked_ids
from rnnbench.models import CELLS, CLASSIFIERS, Classifier

RECURRENT = [kind for kind in CLASSIFIERS if CELLS[kind] is not None]
NN_CELLS = {"elman": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
FUNCTIONS = {"elman": (ElmanFunction, 1), "lstm": (LSTMFunction, 4), "gru": (GRUFunction, 3)}


@pytest.mark.parametrize("kind", list(FUNCTIONS))
@pytest.mark.parametrize("steps", [1, 5])
def test_function_gradients_match_numerical_ones(kind, steps):
    function, gates = FUNCTIONS[kind]
    torch.manual_seed(0)
    K, B, H = 2, 3, 2
    inputs = [torch.randn(K, steps, B, gates * H), torch.randn(K, H, gates * H)]
    if kind == "gru":
        inputs.append(torch.randn(K, 1, gates * H))
    inputs = [x.double().requires_grad_() for x in inputs]
    assert torch.autograd.gradcheck(function.apply, inputs)


@pytest.mark.parametrize("kind", list(NN_CELLS))
def test_fused_cell_computes_what_the_nn_module_computes_for_each_member(kind):
    """Forward and every gradient of K members at once equal K nn modules run one by one."""
    K, T, B, E, H = 3, 6, 4, 5, 7
    modules = []
    for seed in range(K):
        torch.manual_seed(seed)
        modules.append(NN_CELLS[kind](E, H, batch_first=True).double())
    stacked = {
        "w_ih": torch.stack([m.weight_ih_l0.detach().T for m in modules]),
        "w_hh": torch.stack([m.weight_hh_l0.detach().T for m in modules]),
        "b_ih": torch.stack([m.bias_ih_l0.detach()[None] for m in modules]),
        "b_hh": torch.stack([m.bias_hh_l0.detach()[None] for m in modules]),
    }
    stacked = {name: p.clone().requires_grad_() for name, p in stacked.items()}
    x = torch.randn(K, B, T, E, dtype=torch.double)
    fused_x = x.transpose(1, 2).contiguous().requires_grad_()  # the fused layout is [K, T, B, E]
    hs = FUSED_CELLS[kind].run(fused_x, *stacked.values())
    weights = torch.randn_like(hs)  # a loss that weighs every output differently
    (hs * weights).sum().backward()
    for k, module in enumerate(modules):
        alone_x = x[k].clone().requires_grad_()
        out, _ = module(alone_x)
        torch.testing.assert_close(hs[k].transpose(0, 1), out)
        (out * weights[k].transpose(0, 1)).sum().backward()
        torch.testing.assert_close(fused_x.grad[k].transpose(0, 1), alone_x.grad)
        torch.testing.assert_close(stacked["w_ih"].grad[k].T, module.weight_ih_l0.grad)
        torch.testing.assert_close(stacked["w_hh"].grad[k].T, module.weight_hh_l0.grad)
        torch.testing.assert_close(stacked["b_ih"].grad[k, 0], module.bias_ih_l0.grad)
        torch.testing.assert_close(stacked["b_hh"].grad[k, 0], module.bias_hh_l0.grad)


def solo_models(kind: str, members: int, vocab: int = 23, sparse: bool = True) -> list[Classifier]:
    models = []
    for seed in range(members):
        torch.manual_seed(seed)
        models.append(Classifier(kind, vocab, 2, embed_dim=6, hidden_dim=5, sparse=sparse, padding_idx=PAD).double())
    return models


def group_of(models: list[Classifier], sparse: bool = True) -> GroupClassifier:
    first = models[0]
    group = GroupClassifier(first.kind, len(models), first.embed.num_embeddings, 2, 6, 5, sparse=sparse).double()
    for k, model in enumerate(models):
        group.load_member_state_dict(k, model.state_dict())
    return group


def padded_batch(members: int, rng: np.random.Generator, vocab: int = 23) -> tuple[np.ndarray, np.ndarray]:
    """Member k's `[B, T]` tokens with lengths 1..T (padding at the end, some empty reviews)."""
    lengths = rng.integers(0, 9, (members, 4))
    lengths[:, 0] = 8
    tokens = rng.integers(4, vocab, (members, 4, 8))
    tokens[np.arange(8) >= lengths[..., None]] = 0
    return tokens, np.maximum(lengths, 1)


@pytest.mark.parametrize("kind", CLASSIFIERS)
def test_group_classifier_equals_its_members_alone(kind):
    """Logits and every gradient (the sparse embedding's too) of the group equal each solo model's."""
    models = solo_models(kind, 3)
    group = group_of(models)
    tokens, lengths = padded_batch(3, np.random.default_rng(0))
    rows = torch.from_numpy(stacked_ids(tokens, 3, 23))
    logits = group(rows, torch.from_numpy(lengths))
    labels = torch.tensor([[0, 1, 1, 0]] * 3)
    nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(3, 4).mean(1).sum().backward()
    grads = {name: p.grad.to_dense() for name, p in group.named_parameters()}
    for k, model in enumerate(models):
        alone = model(torch.from_numpy(tokens[k]), torch.from_numpy(lengths[k]))
        torch.testing.assert_close(logits[k], alone)
        nn.functional.cross_entropy(alone, labels[k]).backward()
        fused_grads = group.member_state_dict(k, grads)
        for name, p in model.named_parameters():
            torch.testing.assert_close(fused_grads[name], p.grad.to_dense(), msg=name)
    assert grads["embed"][-1].abs().sum() == 0  # the shared padding row gets no gradient


def test_a_diverged_member_leaves_the_others_untouched():
    models = solo_models("lstm", 3)
    group = group_of(models)
    with torch.no_grad():
        group.hidden_weight[1] = float("nan")
    tokens, lengths = padded_batch(3, np.random.default_rng(1))
    logits = group(torch.from_numpy(stacked_ids(tokens, 3, 23)), torch.from_numpy(lengths))
    logits.sum().backward()
    assert logits[1].isnan().all() and logits[[0, 2]].isfinite().all()
    for name, p in group.named_parameters():
        grad = p.grad.to_dense()
        members = grad[:-1].unflatten(0, (3, 23)) if name == "embed" else grad
        assert members[[0, 2]].isfinite().all(), name


@pytest.mark.parametrize("kind", ["mlp", "gru"])
def test_members_go_in_and_come_out_as_classifier_state_dicts(kind):
    models = solo_models(kind, 2)
    group = group_of(models)
    for k, model in enumerate(models):
        state = group.member_state_dict(k)
        assert list(state) == list(model.state_dict())
        for name, value in model.state_dict().items():
            assert torch.equal(state[name], value), name
        Classifier(kind, 23, 2, 6, 5, padding_idx=PAD).double().load_state_dict(state)  # strict: same names and shapes
    with pytest.raises(ConfigError, match="same model kind"):
        group.load_member_state_dict(0, solo_models("lstm" if kind == "mlp" else "mlp", 1)[0].state_dict())
    wrong = {**models[0].state_dict(), "out.bias": torch.zeros(3)}
    with pytest.raises(ConfigError, match="out.bias has shape"):
        group.load_member_state_dict(0, wrong)


@pytest.mark.parametrize("momenta", [(0.0, 0.0, 0.0), (0.9, 0.0, 0.5)])
def test_group_sgd_steps_each_member_as_torch_sgd_would(momenta):
    """Three steps, each member with its own lr and momentum; sparse embedding gradients when no
    member has momentum (as ClassifierRun does), dense ones otherwise."""
    sparse = not any(momenta)
    lrs = (0.5, 0.1, 0.02)
    models = solo_models("elman", 3, sparse=sparse)
    group = group_of(models, sparse=sparse)
    optimizer = GroupSGD(group, lrs, momenta)
    solo_optimizers = [torch.optim.SGD(m.parameters(), lr=lr, momentum=mo) for m, lr, mo in zip(models, lrs, momenta)]
    labels = torch.tensor([[0, 1, 1, 0]] * 3)
    rng = np.random.default_rng(2)
    for _ in range(3):
        tokens, lengths = padded_batch(3, rng)
        logits = group(torch.from_numpy(stacked_ids(tokens, 3, 23)), torch.from_numpy(lengths))
        optimizer.zero_grad()
        nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(3, 4).mean(1).sum().backward()
        optimizer.step()
        for k, (model, solo) in enumerate(zip(models, solo_optimizers)):
            solo.zero_grad()
            nn.functional.cross_entropy(model(torch.from_numpy(tokens[k]), torch.from_numpy(lengths[k])), labels[k]).backward()
            solo.step()
    for k, model in enumerate(models):
        for name, value in group.member_state_dict(k).items():
            torch.testing.assert_close(value, model.state_dict()[name], msg=name)


def test_keeping_members_drops_the_others_everywhere():
    models = solo_models("lstm", 4, sparse=False)
    group = group_of(models, sparse=False)
    optimizer = GroupSGD(group, (0.1, 0.2, 0.3, 0.4), (0.9, 0.9, 0.9, 0.9))
    group.keep_members([3, 1])
    optimizer.keep_members([3, 1])
    assert group.members == 2 and group.embed.shape[0] == 2 * 23 + 1
    assert optimizer.lr.tolist() == pytest.approx([0.4, 0.2]) and optimizer.buffers["embed"].shape == group.embed.shape
    for k, original in enumerate([3, 1]):
        for name, value in group.member_state_dict(k).items():
            assert torch.equal(value, models[original].state_dict()[name]), name


def test_unknown_kind_and_momentum_with_sparse_gradients_are_refused():
    with pytest.raises(ConfigError, match="unknown model 'transformer'"):
        GroupClassifier("transformer", 2, 10)
    with pytest.raises(ConfigError, match="dense embedding gradients"):
        GroupSGD(GroupClassifier("mlp", 2, 10, sparse=True), (0.1, 0.1), (0.0, 0.9))
