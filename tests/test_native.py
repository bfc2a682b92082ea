"""The C++ LSTM recurrence (rnnbench/lstm_cpu.cpp, loaded by rnnbench.native) against the torch-ops
LSTMFunction it replaces on the CPU: forward and gradients with given and with looked-up inputs, the
members' independence, NaN, and GroupLanguageModel on either path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rnnbench.fused import GroupLanguageModel, LSTMFunction
from rnnbench.native import NativeLSTMFunction, available_for, native_lstm

if native_lstm() is None:
    pytest.skip("the C++ LSTM recurrence could not be built here (no C++ compiler or ninja)", allow_module_level=True)


def native(x, w_hh, ids, upstream):
    """Hidden states and the gradients of x (xw, or with ids the input table) and of w_hh `[K, 4H, H]`
    under the upstream gradient `upstream`, through NativeLSTMFunction (float32)."""
    x, w_hh = x.clone().requires_grad_(), w_hh.clone().requires_grad_()
    hs = NativeLSTMFunction.apply(x, w_hh, ids)
    hs.backward(upstream)
    return hs.detach(), x.grad, w_hh.grad


def reference(x, w_hh, ids, upstream):
    """The same through LSTMFunction in float64, ids looked up by indexing (whose backward scatter-adds)."""
    x, w_hh = x.double().requires_grad_(), w_hh.double().requires_grad_()
    xw = x if ids is None else x[torch.arange(len(x))[:, None, None], ids]
    hs = LSTMFunction.apply(xw, w_hh.transpose(1, 2))
    hs.backward(upstream.double())
    return hs.detach(), x.grad, w_hh.grad


def assert_near(actual, expected, rtol=1e-5):
    """Each tensor within rtol and an atol of 1e-6 times its largest magnitude: float32 rounding, no more."""
    for a, e in zip(actual, expected, strict=True):
        scale = e[e.isfinite()].abs().max().item()
        torch.testing.assert_close(a, e.to(a.dtype), rtol=rtol, atol=1e-6 * scale)


@pytest.mark.parametrize("H", [16, 20])  # 16 is compiled in; 20 takes the runtime-size loops
@pytest.mark.parametrize("T, B", [(7, 5), (1, 4), (6, 1)])
def test_native_matches_lstm_function(H, T, B):
    """Hidden states and the gradients of xw and w_hh equal LSTMFunction's (computed in float64) to
    float32 rounding, for a compiled-in and a generic hidden size, one step and one row included."""
    torch.manual_seed(100 * H + 10 * T + B)
    K = 3
    xw, w_hh, upstream = torch.randn(K, T, B, 4 * H), 0.5 * torch.randn(K, 4 * H, H), torch.randn(K, T, B, H)
    assert_near(native(xw, w_hh, None, upstream), reference(xw, w_hh, None, upstream))


@pytest.mark.parametrize("H", [16, 20])
def test_native_looks_up_the_input_table(H):
    """With each member's input table `[K, V, 4H]` and member-local ids, the result is LSTMFunction's
    on the looked-up xw, and the table's gradient is xw's added into the rows read (repeated ids add
    up; rows never read get exactly zero)."""
    torch.manual_seed(1)
    K, T, B, V = 3, 6, 4, 11
    table, w_hh, upstream = torch.randn(K, V, 4 * H), 0.5 * torch.randn(K, 4 * H, H), torch.randn(K, T, B, H)
    ids = torch.randint(0, V - 3, (K, T, B))  # the last 3 rows are never read
    got = native(table, w_hh, ids, upstream)
    assert_near(got, reference(table, w_hh, ids, upstream))
    assert not got[1][:, V - 3 :].any()


@pytest.mark.parametrize("lookup", [False, True])
def test_members_are_independent(lookup):
    """Member k of a group of 5 gets bit for bit (torch.equal) the hidden states and gradients it gets
    alone: the C++ runs one member's whole sequence at a time with the same code whatever K, and no
    reduction spans members, so not even rounding may differ; a read of another member's data shows."""
    torch.manual_seed(2)
    K, T, B, H, V = 5, 5, 3, 16, 7
    x = torch.randn(K, V, 4 * H) if lookup else torch.randn(K, T, B, 4 * H)
    ids = torch.randint(0, V, (K, T, B)) if lookup else None
    w_hh, upstream = 0.5 * torch.randn(K, 4 * H, H), torch.randn(K, T, B, H)
    group = native(x, w_hh, ids, upstream)
    for k in range(K):
        one = slice(k, k + 1)
        alone = native(x[one].clone(), w_hh[one].clone(), None if ids is None else ids[one].clone(), upstream[one].clone())
        for name, in_group, by_itself in zip(["hs", "grad x", "grad w_hh"], group, alone, strict=True):
            assert torch.equal(in_group[one], by_itself), f"member {k}'s {name}"


def test_nan_stays_in_its_member():
    """A member whose w_hh holds a NaN ends with NaN hidden states and NaN gradients (the C++ exp must
    pass NaN through: clamped to a finite value, a diverged member would look healthy), while the
    other members' results are finite and exactly what they are without the NaN."""
    torch.manual_seed(3)
    K, T, B, H = 3, 4, 2, 16
    xw, w_hh, upstream = torch.randn(K, T, B, 4 * H), 0.5 * torch.randn(K, 4 * H, H), torch.randn(K, T, B, H)
    clean = native(xw, w_hh, None, upstream)
    w_hh[1, 5, 3] = float("nan")
    hs, grad_x, grad_w = result = native(xw, w_hh, None, upstream)
    assert hs[1, -1].isnan().all()
    assert grad_x[1].isnan().any() and grad_w[1].isnan().any()
    for k in (0, 2):
        for with_nan, without in zip(result, clean, strict=True):
            assert with_nan[k].isfinite().all() and torch.equal(with_nan[k], without[k])


@pytest.mark.parametrize("num_layers", [1, 2])
def test_group_language_model_is_the_same_on_either_path(num_layers):
    """GroupLanguageModel's logits and every parameter's gradient with the C++ recurrence (the first
    layer looking its inputs up in the table) equal those with LSTMFunction (`native = False`),
    within float32 rounding."""
    torch.manual_seed(4)
    vocab, T, B = [6, 9, 15], 7, 5
    model = GroupLanguageModel("lstm", vocab, embed_dim=8, hidden_dim=16, num_layers=num_layers)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    tokens = torch.stack([torch.randint(0, v, (T, B)) for v in vocab], dim=1)  # [T, K, B], member-local
    targets = torch.stack([torch.randint(0, v, (T * B,)) for v in vocab])

    def run():
        for p in model.parameters():
            p.grad = None
        logits = model(tokens)
        F.cross_entropy(logits, targets).backward()
        return [logits.detach()] + [p.grad.clone() for p in model.parameters()]

    assert available_for(model.params["embed.weight"])
    in_cpp = run()
    model.native = False
    assert_near(in_cpp, run())
