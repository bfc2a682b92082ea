"""K classifiers of one architecture trained as ONE computation (horizontal fusion, as in HFTA:
Wang et al., MLSys 2021).

At batch 32 the study's models are bound by kernel launches and latency, not by arithmetic, so
K members that share the architecture and the data shapes but each have their own weights, lr and
batches can train for little more than the cost of one: every weight gets a leading member
dimension K, the Linear layers become batched matrix products (bmm) over K, the K embedding
tables become one table of K*V rows, and the recurrences are autograd Functions written by hand
so that a time step costs one batched matrix product and a few pointwise kernels for all K.

Layouts (K members, T time steps, B sequences per member, H hidden units, G = gates * H):

    token rows   [K, T, B]      member k's ids offset by k * V (see `stacked_ids`)
    activations  [K, T, B, ·]   so time step t is the slice [:, t], a batch of K `[B, ·]` matrices
    weights      [K, in, out]   the transpose of nn.Linear's `[out, in]`; biases [K, 1, out]

Each member's loss is its own mean cross-entropy and the group's loss is their sum, so each
member's gradient is exactly its own; `GroupSGD` then steps every member with its own lr and
momentum. `GroupClassifier.member_state_dict(k)` is member k as a `Classifier` state dict, and
`load_member_state_dict` the way back, so a member moves between a group and a solo run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnbench.data.batching import PAD
from rnnbench.errors import ConfigError
from rnnbench.names import CLASSIFIERS, LM_CELLS
from rnnbench.native import NativeLSTMFunction, available_for

# --- recurrences ------------------------------------------------------------------------------
# Each Function takes `xw` [K, T, B, G], the input projections of all time steps (computed by one
# bmm before the loop, or looked up), and the recurrent weight [K, H, G], and returns the hidden
# states [K, T, B, H] (h_{-1} = 0). Forward loops over time with one baddbmm and a few pointwise
# ops per step and keeps what backward needs; backward first turns what it kept into per-step
# factors for all steps at once, then loops over time in reverse with one baddbmm and a few
# multiplications per step, and finally gets the recurrent weight's gradient, sum_t h_{t-1}^T
# d(pre-activation)_t, accumulated step by step. Padding sits at the end of each row
# and the recurrences run left to right, so a sequence's real steps never see its padding and no
# lengths are needed here.
#
# Inside, every tensor is time-major, [T, K, B, ·], and the outputs are transposed views of that:
# the per-step slice [t] is then contiguous, which a batched product writing into it needs to be
# one MKL call (into a [K, T, ...] slice torch falls back to one call per member: 6x slower on the
# CPU at K = 120, measured in benchmarks/bench_grammar_group.py).


def _tanh_(x: Tensor) -> Tensor:
    """tanh in place as 2 sigmoid(2x) - 1: on this CPU torch's tanh kernel is ~6x slower than its
    sigmoid (170 against 29 us for 61k floats, torch 2.14), and tanh is most of an LSTM step's work."""
    return x.mul_(2).sigmoid_().mul_(2).sub_(1)


def _tanh(x: Tensor, out: Tensor | None = None) -> Tensor:
    """tanh(x) into `out` (new when None), as `_tanh_`."""
    out = torch.mul(x, 2, out=out) if out is not None else x * 2
    return out.sigmoid_().mul_(2).sub_(1)


def _time_major(x: Tensor) -> Tensor:
    """A fresh contiguous [T, K, ...] copy of a [K, T, ...] tensor (a transposed view of one)."""
    return x.transpose(0, 1).clone(memory_format=torch.contiguous_format)


def _add_weight_grad(grad: Tensor, h_before: Tensor, dpre: Tensor) -> None:
    """grad += h_{t-1}^T dpre_t summed over the batch, for one step: in the backward loop, while
    both are in cache (2.8x faster than one einsum over all steps, which copies both to member-major)."""
    grad.baddbmm_(h_before.transpose(1, 2), dpre)


def _shifted(states: Tensor) -> Tensor:
    """[T, K, B, H] states at t - 1 for every t (zeros at t = 0)."""
    return F.pad(states[:-1], (0, 0, 0, 0, 0, 0, 1, 0))


class ElmanFunction(torch.autograd.Function):
    """h_t = tanh(xw_t + h_{t-1} W_hh). xw holds both biases (nn.RNN's bias_ih + bias_hh)."""

    @staticmethod
    def forward(ctx, xw: Tensor, w_hh: Tensor) -> Tensor:
        hs = _time_major(xw)  # becomes the output step by step, in place: two kernels a step
        h = hs.unbind(0)
        _tanh_(h[0])
        for t in range(1, len(h)):
            _tanh_(h[t].baddbmm_(h[t - 1], w_hh))
        ctx.save_for_backward(w_hh, hs)
        return hs.transpose(0, 1)

    @staticmethod
    def backward(ctx, grad_hs: Tensor) -> tuple[Tensor, Tensor]:
        w_hh, hs = ctx.saved_tensors
        dtanh = 1 - hs * hs
        dpre = _time_major(grad_hs)  # becomes d(pre-activation), in place
        d, s, h, w_t = dpre.unbind(0), dtanh.unbind(0), hs.unbind(0), w_hh.transpose(1, 2)
        grad_w = w_hh.new_zeros(w_hh.shape)  # contiguous, as a batched product writing into it needs
        d[-1].mul_(s[-1])
        for t in range(len(d) - 2, -1, -1):
            _add_weight_grad(grad_w, h[t], d[t + 1])
            d[t].baddbmm_(d[t + 1], w_t).mul_(s[t])
        return dpre.transpose(0, 1), grad_w


def lstm_cell_forward(pre: Tensor, c_prev: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One LSTM step after the products: gate pre-activations `[K, B, 4H]` and c_{t-1} → the gates'
    activations (i, f, g, o), c_t and h_t."""
    i, f, g, o = pre.chunk(4, dim=-1)
    i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
    c = f * c_prev + i * g
    return torch.cat([i, f, g, o], dim=-1), c, o * c.tanh()


def lstm_cell_backward(dh: Tensor, dc_next: Tensor, act: Tensor, c: Tensor, c_prev: Tensor) -> tuple[Tensor, Tensor]:
    """One step of the LSTM's backward: dh_t (recurrent part included), dc_{t+1} f_{t+1}, the step's
    activations, c_t and c_{t-1} → d(pre-activations) `[K, B, 4H]` and dc_t f_t for the step before."""
    i, f, g, o = act.chunk(4, dim=-1)
    tanh_c = c.tanh()
    dc = dc_next + dh * o * (1 - tanh_c * tanh_c)
    d = torch.cat([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g * g), dh * tanh_c * o * (1 - o)], dim=-1)
    return d, dc * f


@functools.cache
def compiled_lstm_cells() -> tuple[Callable, Callable]:
    """lstm_cell_forward and lstm_cell_backward as torch.compile'd kernels: each step's elementwise
    work in one kernel instead of ~10 (on a GPU, where kernel launches are what the grammar LSTM
    costs; on a CPU, generated C++). Compiled on first use (tens of seconds; cached on disk by torch)."""
    return torch.compile(lstm_cell_forward), torch.compile(lstm_cell_backward)


class LSTMFunction(torch.autograd.Function):
    """nn.LSTM's cell (gates i, f, g, o in that order): c_t = f c_{t-1} + i g, h_t = o tanh(c_t).
    xw holds both biases (bias_ih + bias_hh). With `compiled` the elementwise work of each step runs
    in the two compiled kernels of `compiled_lstm_cells` instead of eager operations."""

    @staticmethod
    def forward(ctx, xw: Tensor, w_hh: Tensor, compiled: bool = False) -> Tensor:
        ctx.compiled = compiled
        if compiled:
            return LSTMFunction._compiled_forward(ctx, xw, w_hh)
        H = w_hh.shape[1]
        x = xw.transpose(0, 1)  # time-major view: read only
        acts = x.new_empty(x.shape)  # pre-activations, turned into the gates' activations in place
        cs = acts.new_empty(*acts.shape[:3], H)
        hs = torch.empty_like(cs)
        a, c, h = acts.unbind(0), cs.unbind(0), hs.unbind(0)
        i, f, g, o = (acts[..., k * H : (k + 1) * H].unbind(0) for k in range(4))
        if_ = acts[..., : 2 * H].unbind(0)
        tanh_c = acts.new_empty(c[0].shape)
        for t in range(len(a)):
            if t > 0:
                torch.baddbmm(x[t], h[t - 1], w_hh, out=a[t])
            else:
                a[0].copy_(x[0])
            if_[t].sigmoid_()
            _tanh_(g[t])
            o[t].sigmoid_()
            if t == 0:
                torch.mul(i[0], g[0], out=c[0])
            else:
                torch.mul(f[t], c[t - 1], out=c[t]).addcmul_(i[t], g[t])
            torch.mul(o[t], _tanh(c[t], out=tanh_c), out=h[t])
        ctx.save_for_backward(w_hh, hs, cs, acts)
        return hs.transpose(0, 1)

    @staticmethod
    def _compiled_forward(ctx, xw: Tensor, w_hh: Tensor) -> Tensor:
        step, _ = compiled_lstm_cells()
        x = xw.transpose(0, 1)
        h = c = x.new_zeros(*x.shape[1:3], w_hh.shape[1])
        acts, cs, hs = [], [], []
        for t in range(len(x)):
            act, c, h = step(x[t] if t == 0 else torch.baddbmm(x[t], h, w_hh), c)
            acts.append(act), cs.append(c), hs.append(h)
        hs_t = torch.stack(hs)
        ctx.save_for_backward(w_hh, hs_t, torch.stack(cs), torch.stack(acts))
        return hs_t.transpose(0, 1)

    @staticmethod
    def backward(ctx, grad_hs: Tensor) -> tuple[Tensor, Tensor, None]:
        if ctx.compiled:
            return (*LSTMFunction._compiled_backward(ctx, grad_hs), None)
        w_hh, hs, cs, acts = ctx.saved_tensors
        H = w_hh.shape[1]
        i, f, g, o = acts.chunk(4, dim=-1)
        tanh_c = _tanh(cs)
        # for all steps at once: how dh and dc reach the gates' pre-activations
        dc_by_dh = o * (1 - tanh_c * tanh_c)
        do_by_dh = tanh_c * o * (1 - o)
        difg_by_dc = torch.cat([g * i * (1 - i), _shifted(cs) * f * (1 - f), i * (1 - g * g)], dim=-1)
        del tanh_c
        dpre = torch.empty_like(acts)
        dhs = _time_major(grad_hs)  # becomes dh_t, in place
        d, dh = dpre.unbind(0), dhs.unbind(0)
        d_ifg, d_o = dpre[..., : 3 * H].unflatten(-1, (3, H)).unbind(0), dpre[..., 3 * H :].unbind(0)
        e, q, r = dc_by_dh.unbind(0), do_by_dh.unbind(0), difg_by_dc.unflatten(-1, (3, H)).unbind(0)
        f, h, w_t = f.unbind(0), hs.unbind(0), w_hh.transpose(1, 2)
        grad_w = w_hh.new_zeros(w_hh.shape)  # contiguous, as a batched product writing into it needs
        dc = torch.zeros_like(dh[0])  # holds dc_{t+1} f_{t+1}, then dc_t
        for t in range(len(d) - 1, -1, -1):
            if t < len(d) - 1:
                _add_weight_grad(grad_w, h[t], d[t + 1])
                dh[t].baddbmm_(d[t + 1], w_t)
            dc.addcmul_(dh[t], e[t])
            torch.mul(r[t], dc.unsqueeze(-2), out=d_ifg[t])
            torch.mul(dh[t], q[t], out=d_o[t])
            dc.mul_(f[t])
        return dpre.transpose(0, 1), grad_w, None

    @staticmethod
    def _compiled_backward(ctx, grad_hs: Tensor) -> tuple[Tensor, Tensor]:
        _, step = compiled_lstm_cells()
        w_hh, hs, cs, acts = ctx.saved_tensors
        grad = grad_hs.transpose(0, 1)
        grad_w, w_t = w_hh.new_zeros(w_hh.shape), w_hh.transpose(1, 2)
        dc, zero, d = torch.zeros_like(cs[0]), torch.zeros_like(cs[0]), None
        dpre = []
        for t in range(len(cs) - 1, -1, -1):
            dh = grad[t] if d is None else torch.baddbmm(grad[t], d, w_t)
            d, dc = step(dh, dc, acts[t], cs[t], cs[t - 1] if t > 0 else zero)
            dpre.append(d)
            if t > 0:
                _add_weight_grad(grad_w, hs[t - 1], d)
        return torch.stack(dpre[::-1]).transpose(0, 1), grad_w


class GRUFunction(torch.autograd.Function):
    """nn.GRU's cell (gates r, z, n in that order), with hh = h_{t-1} W_hh + b_hh:
    r, z = sigmoid(xw_rz + hh_rz), n = tanh(xw_n + r hh_n), h_t = n + z (h_{t-1} - n).
    xw holds bias_ih only: b_hh's n part sits inside r * (...), so it comes in separately."""

    @staticmethod
    def forward(ctx, xw: Tensor, w_hh: Tensor, b_hh: Tensor) -> Tensor:
        H = w_hh.shape[1]
        xw = xw.transpose(0, 1)  # time-major view: read only
        hhs = b_hh.unsqueeze(0).expand_as(xw).clone(memory_format=torch.contiguous_format)  # b_hh, then + h_{t-1} W_hh
        rzs = xw.new_empty(*xw.shape[:3], 2 * H)
        ns = xw.new_empty(*xw.shape[:3], H)
        hs = torch.empty_like(ns)
        hh, rz, n, h = hhs.unbind(0), rzs.unbind(0), ns.unbind(0), hs.unbind(0)
        x_rz, x_n = xw[..., : 2 * H].unbind(0), xw[..., 2 * H :].unbind(0)
        hh_rz, hh_n = hhs[..., : 2 * H].unbind(0), hhs[..., 2 * H :].unbind(0)
        r, z = rzs[..., :H].unbind(0), rzs[..., H:].unbind(0)
        diff = xw.new_empty(n[0].shape)
        for t in range(len(h)):
            if t > 0:
                hh[t].baddbmm_(h[t - 1], w_hh)
            torch.add(x_rz[t], hh_rz[t], out=rz[t]).sigmoid_()
            _tanh_(torch.addcmul(x_n[t], r[t], hh_n[t], out=n[t]))
            if t == 0:
                torch.addcmul(n[0], z[0], n[0], value=-1, out=h[0])
            else:
                torch.addcmul(n[t], z[t], torch.sub(h[t - 1], n[t], out=diff), out=h[t])
        ctx.save_for_backward(w_hh, hs, hhs[..., 2 * H :], rzs, ns)
        return hs.transpose(0, 1)

    @staticmethod
    def backward(ctx, grad_hs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        w_hh, hs, hh_n, rzs, ns = ctx.saved_tensors
        H = w_hh.shape[1]
        r, z = rzs.chunk(2, dim=-1)
        # for all steps at once: how dh reaches the pre-activations of r, z, n (= xw's gradient)
        # and the n part of hh (r, z parts of hh get the same gradient as xw's)
        dn_by_dh = (1 - z) * (1 - ns * ns)
        dr_by_dh = dn_by_dh * hh_n * r * (1 - r)
        dz_by_dh = (_shifted(hs) - ns) * z * (1 - z)
        dx_by_dh = torch.cat([dr_by_dh, dz_by_dh, dn_by_dh], dim=-1).unflatten(-1, (3, H))
        dhh_by_dh = torch.cat([dr_by_dh, dz_by_dh, dn_by_dh * r], dim=-1).unflatten(-1, (3, H))
        del dn_by_dh, dr_by_dh, dz_by_dh
        dxw = hs.new_empty(*hs.shape[:3], 3 * H)
        dhh = torch.empty_like(dxw)
        dhs = _time_major(grad_hs)  # becomes dh_t, in place
        dx, dh_all = dxw.unflatten(-1, (3, H)).unbind(0), dhh.unflatten(-1, (3, H)).unbind(0)
        px, ph, zs, dhh_t, dh = dx_by_dh.unbind(0), dhh_by_dh.unbind(0), z.unbind(0), dhh.unbind(0), dhs.unbind(0)
        h, w_t = hs.unbind(0), w_hh.transpose(1, 2)
        grad_w = w_hh.new_zeros(w_hh.shape)  # contiguous, as a batched product writing into it needs
        for t in range(len(dh) - 1, -1, -1):
            if t < len(dh) - 1:  # h_t reaches h_{t+1} directly (through z) and through hh_{t+1}
                _add_weight_grad(grad_w, h[t], dhh_t[t + 1])
                dh[t].addcmul_(dh[t + 1], zs[t + 1]).baddbmm_(dhh_t[t + 1], w_t)
            torch.mul(px[t], dh[t].unsqueeze(-2), out=dx[t])
            torch.mul(ph[t], dh[t].unsqueeze(-2), out=dh_all[t])
        return dxw.transpose(0, 1), grad_w, dhh.sum(dim=(0, 2)).unsqueeze(1)


def _project(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """[K, T, B, in] @ [K, in, out] + [K, 1, out] for all positions at once: one bmm."""
    return torch.baddbmm(bias, x.flatten(1, 2), weight).view(*x.shape[:3], weight.shape[2])


def _elman(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, compiled: bool = False) -> Tensor:
    return ElmanFunction.apply(_project(x, w_ih, b_ih + b_hh), w_hh)


def _lstm(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, compiled: bool = False) -> Tensor:
    return LSTMFunction.apply(_project(x, w_ih, b_ih + b_hh), w_hh, compiled)


def _gru(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, compiled: bool = False) -> Tensor:
    return GRUFunction.apply(_project(x, w_ih, b_ih), w_hh, b_hh)


class FusedCell(NamedTuple):
    gates: int  # rows of weight_ih per hidden unit, as in the nn module's weights
    # (x, w_ih, w_hh, b_ih, b_hh, compiled) → hs; `compiled` (LSTM only): LSTMFunction's compiled step kernels
    run: Callable[..., Tensor]


# The grouped counterpart of rnnbench.models.CELLS (mlp has no recurrence). The naive Elman has
# nn.RNN's weights and computes the same function, so it fuses as the Elman does.
FUSED_CELLS: dict[str, FusedCell] = {
    "elman": FusedCell(1, _elman),
    "elman_naive": FusedCell(1, _elman),
    "lstm": FusedCell(4, _lstm),
    "gru": FusedCell(3, _gru),
}


# --- the grouped classifier -------------------------------------------------------------------


def stacked_ids(tokens: np.ndarray, members: int, vocab_size: int) -> np.ndarray:
    """Rows of the stacked embedding table, `[K, T, B]`, for member k's padded tokens `[K, B, T]`
    (or for one `[B, T]` batch every member reads, as in evaluation). Padding of every member
    reads the shared all-zero row K * V."""
    tokens = np.broadcast_to(tokens, (members, *tokens.shape[-2:]))
    offsets = (np.arange(members, dtype=np.int64) * vocab_size)[:, None, None]
    rows = np.where(tokens == PAD, members * vocab_size, tokens + offsets)
    return np.ascontiguousarray(rows.transpose(0, 2, 1))


# Classifier parameter name → (GroupClassifier parameter, how member k's value sits in it):
# "weight": stacked[k] is the transpose of the nn weight; "bias": stacked[k, 0] is the nn bias.
_ENCODER = {
    "encoder.weight_ih_l0": ("weight_ih", "weight"),
    "encoder.weight_hh_l0": ("weight_hh", "weight"),
    "encoder.bias_ih_l0": ("bias_ih", "bias"),
    "encoder.bias_hh_l0": ("bias_hh", "bias"),
}
_HEAD = {
    "hidden.weight": ("hidden_weight", "weight"),
    "hidden.bias": ("hidden_bias", "bias"),
    "out.weight": ("out_weight", "weight"),
    "out.bias": ("out_bias", "bias"),
}


class GroupClassifier(nn.Module):
    """K `rnnbench.models.Classifier`s of one kind and size as stacked weights; `forward` runs all
    K at once. Load each member with `load_member_state_dict(k, classifier.state_dict())`.

    The embedding is one table of K*V + 1 rows: member k's table is rows [k*V, (k+1)*V) and the
    last row is one all-zero row that every member's padding reads (the `padding_idx`, so padding
    gets no gradient, as in the solo model). `sparse=True` gives it sparse gradients."""

    def __init__(
        self, kind: str, members: int, vocab_size: int, num_classes: int = 2, embed_dim: int = 300,
        hidden_dim: int = 300, sparse: bool = False,
    ):  # fmt: skip
        super().__init__()
        if kind not in CLASSIFIERS:
            raise ConfigError(f"unknown model {kind!r}; choose one of {', '.join(CLASSIFIERS)}")
        self.kind, self.vocab_size, self.sparse = kind, vocab_size, sparse
        self.compiled = False  # the LSTM's per-step elementwise work as compiled kernels (LSTMFunction)
        self.cell = FUSED_CELLS.get(kind)
        self.embed = nn.Parameter(torch.zeros(members * vocab_size + 1, embed_dim))
        width, K = embed_dim, members
        if self.cell is not None:
            G = self.cell.gates * hidden_dim
            self.weight_ih = nn.Parameter(torch.zeros(K, embed_dim, G))
            self.weight_hh = nn.Parameter(torch.zeros(K, hidden_dim, G))
            self.bias_ih = nn.Parameter(torch.zeros(K, 1, G))
            self.bias_hh = nn.Parameter(torch.zeros(K, 1, G))
            width = hidden_dim
        self.hidden_weight = nn.Parameter(torch.zeros(K, width, hidden_dim))
        self.hidden_bias = nn.Parameter(torch.zeros(K, 1, hidden_dim))
        self.out_weight = nn.Parameter(torch.zeros(K, hidden_dim, num_classes))
        self.out_bias = nn.Parameter(torch.zeros(K, 1, num_classes))

    @property
    def members(self) -> int:
        return self.out_bias.shape[0]

    def forward(self, rows: Tensor, lengths: Tensor) -> Tensor:
        """rows `[K, T, B]` from `stacked_ids`, lengths `[K, B]` (each >= 1) → logits `[K, B, C]`."""
        x = F.embedding(rows, self.embed, padding_idx=self.embed.shape[0] - 1, sparse=self.sparse)
        if self.cell is not None:
            x = self.cell.run(x, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.compiled)
        h = torch.relu(_project(x, self.hidden_weight, self.hidden_bias))
        padded = torch.arange(rows.shape[1], device=rows.device)[None, :, None] >= lengths[:, None, :]
        pooled = h.masked_fill(padded[..., None], float("-inf")).amax(dim=1)
        return torch.baddbmm(self.out_bias, pooled, self.out_weight)

    # --- members as solo Classifier state dicts ------------------------------------------------

    def layout(self) -> dict[str, tuple[str, str]]:
        """Classifier parameter name → (own parameter name, "embed" | "weight" | "bias"), in the
        Classifier's parameter order (which its optimizer state dict numbers by)."""
        encoder = _ENCODER if self.cell is not None else {}
        return {"embed.weight": ("embed", "embed"), **encoder, **_HEAD}

    def member_view(self, stacked: Tensor, how: str, k: int) -> Tensor:
        """Member k's part of a stacked tensor (a parameter, its gradient or a momentum buffer),
        shaped as in the solo Classifier. A view: writing to it writes the stacked tensor."""
        if how == "embed":
            return stacked[k * self.vocab_size : (k + 1) * self.vocab_size]
        return stacked[k].T if how == "weight" else stacked[k, 0]

    def member_state_dict(self, k: int, stacked: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Member k as a Classifier state dict (CPU copies). `stacked` (own name → tensor shaped
        like that parameter, e.g. momentum buffers) converts those instead of the weights."""
        source = stacked if stacked is not None else dict(self.named_parameters())
        return {
            name: self.member_view(source[own], how, k).detach().to("cpu", copy=True).contiguous()
            for name, (own, how) in self.layout().items()
        }

    @torch.no_grad()
    def load_member_state_dict(self, k: int, state: dict[str, Tensor], stacked: dict[str, Tensor] | None = None) -> None:
        """Copy a Classifier state dict into member k (or into `stacked` tensors, as above)."""
        layout = self.layout()
        if set(state) != set(layout):
            raise ConfigError(
                f"a {self.kind} member needs parameters {sorted(layout)}, got {sorted(state)}; "
                "load a state dict of the same model kind"
            )
        target = stacked if stacked is not None else dict(self.named_parameters())
        for name, (own, how) in layout.items():
            view = self.member_view(target[own], how, k)
            if view.shape != state[name].shape:
                raise ConfigError(
                    f"{name} has shape {tuple(state[name].shape)}, the group's members {tuple(view.shape)}; "
                    "load a state dict of the same sizes and vocabulary"
                )
            view.copy_(state[name])

    def by_member(self, name: str, tensor: Tensor) -> Tensor:
        """A parameter-shaped tensor with the member as its first dimension (the embedding without its padding row)."""
        return tensor[:-1].unflatten(0, (-1, self.vocab_size)) if name == "embed" else tensor

    def keep(self, name: str, tensor: Tensor, index: Sequence[int]) -> Tensor:
        """The members `index` of a parameter-shaped tensor."""
        return keep_rows(tensor, index, self.vocab_size if name == "embed" else None)

    def keep_members(self, index: Sequence[int]) -> None:
        """Drop every member not in `index` (e.g. the diverged ones); the kept ones are renumbered
        0.. in `index` order."""
        for name, parameter in self.named_parameters():
            parameter.data = self.keep(name, parameter.data, index)
            parameter.grad = None


def keep_rows(stacked: Tensor, index: Sequence[int], vocab_size: int | None = None) -> Tensor:
    """The members `index` of a stacked tensor; with `vocab_size`, of a stacked embedding table
    (K*V rows + the shared padding row, which is kept)."""
    picked = torch.as_tensor(list(index), dtype=torch.long, device=stacked.device)
    if vocab_size is None:
        return stacked.index_select(0, picked)
    tables = stacked[:-1].unflatten(0, (-1, vocab_size)).index_select(0, picked)
    return torch.cat([tables.flatten(0, 1), stacked[-1:]])


# --- the grouped language model ---------------------------------------------------------------


class GroupLanguageModel:
    """K `rnnbench.models.LanguageModel`s of one cell kind and size as stacked weights, laid out as
    `torch.func.stack_module_state` lays out K copies of one module: every LanguageModel parameter
    under its own name, with a leading member dimension. Vocabularies may differ (members of
    different grammars): tables are padded to the largest vocabulary V; a member's rows beyond its
    own are never read and its logits there are -inf, so they get no gradient and are never sampled.

    The first layer's input projection is a lookup: embed @ W_ih^T + b is a `[V, G]` table per
    member (V is 6 to 15 words), computed once a step, so the work per token is the recurrence
    (the hand-written Functions above) and the head (one bmm)."""

    sparse = False  # for GroupSGD: every gradient is dense
    compiled = False  # the LSTM's per-step elementwise work as compiled kernels (LSTMFunction); the GRU ignores it
    native = True  # an LSTM's recurrence in C++ where it can run (rnnbench.native); False: LSTMFunction, to compare

    def __init__(
        self, cell: str, vocab_sizes: Sequence[int], embed_dim: int = 32, hidden_dim: int = 16, num_layers: int = 1,
        device: torch.device | str = "cpu",
    ):  # fmt: skip
        if cell not in LM_CELLS:
            raise ConfigError(f"unknown cell {cell!r} for the language model; choose one of {', '.join(LM_CELLS)}")
        self.cell, self.num_layers, self.hidden_dim = cell, num_layers, hidden_dim
        self.vocab_sizes = list(vocab_sizes)
        K, V, G = len(self.vocab_sizes), max(self.vocab_sizes), FUSED_CELLS[cell].gates * hidden_dim
        shapes = {"embed.weight": (V, embed_dim)}
        for layer in range(num_layers):
            shapes[f"rnn.weight_ih_l{layer}"] = (G, embed_dim if layer == 0 else hidden_dim)
            shapes[f"rnn.weight_hh_l{layer}"] = (G, hidden_dim)
            shapes[f"rnn.bias_ih_l{layer}"] = (G,)
            shapes[f"rnn.bias_hh_l{layer}"] = (G,)
        shapes.update({"out.weight": (V, hidden_dim), "out.bias": (V,)})
        self.params = {name: torch.zeros(K, *shape, device=device, requires_grad=True) for name, shape in shapes.items()}
        self._masks()

    def _masks(self) -> None:
        """The -inf logits beyond each member's vocabulary (None when all share one), the row
        offsets of the stacked tables, and the factor that keeps padding's embedding row at zero."""
        device, V = self.params["out.bias"].device, self.params["out.bias"].shape[1]
        sizes = torch.tensor(self.vocab_sizes, device=device)
        outside = torch.arange(V, device=device) >= sizes[:, None]
        self.vocab_mask = outside.float().masked_fill(outside, float("-inf"))[:, None, :] if outside.any() else None
        self.offsets = torch.arange(len(self.vocab_sizes), device=device) * V
        self.keep_embedding = (torch.arange(V, device=device) != PAD).float()[None, :, None]

    @property
    def members(self) -> int:
        return len(self.vocab_sizes)

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        return iter(self.params.items())

    def parameters(self) -> Iterator[Tensor]:
        return iter(self.params.values())

    def by_member(self, name: str, tensor: Tensor) -> Tensor:
        return tensor

    def keep(self, name: str, tensor: Tensor, index: Sequence[int]) -> Tensor:
        return tensor.index_select(0, torch.as_tensor(list(index), dtype=torch.long, device=tensor.device))

    def keep_members(self, index: Sequence[int]) -> None:
        """Drop every member not in `index`; the kept ones are renumbered 0.. in `index` order."""
        with torch.no_grad():
            self.params = {name: self.keep(name, p, index).requires_grad_() for name, p in self.params.items()}
        self.vocab_sizes = [self.vocab_sizes[j] for j in index]
        self._masks()

    def to(self, device: torch.device | str) -> GroupLanguageModel:
        with torch.no_grad():
            self.params = {name: p.to(device).requires_grad_() for name, p in self.params.items()}
        self._masks()
        return self

    # --- computing ------------------------------------------------------------------------------

    def _input_table(self) -> Tensor:
        """embed @ W_ih^T + bias of every member, `[K * V, G]` (LSTM: both biases; GRU: bias_ih)."""
        p = self.params
        bias = p["rnn.bias_ih_l0"] + p["rnn.bias_hh_l0"] if self.cell == "lstm" else p["rnn.bias_ih_l0"]
        embed = p["embed.weight"] * self.keep_embedding  # the padding row stays zero and gets no gradient
        return torch.baddbmm(bias.unsqueeze(1), embed, p["rnn.weight_ih_l0"].transpose(1, 2)).flatten(0, 1)

    def forward(self, tokens: Tensor) -> Tensor:
        """Member-local token ids, time-major `[T, K, B]` (padding at the end of each sequence) →
        logits `[K, V, T * B]` (classes second, as cross_entropy takes them: 17x faster on the CPU
        than a last dimension of V = 15 words). An LSTM on a CPU runs its recurrence in C++
        (rnnbench.native) unless `compiled` or not `native`."""
        p, (T, K, B) = self.params, tokens.shape
        table = self._input_table()
        in_cpp = self.cell == "lstm" and self.native and not self.compiled and available_for(table)
        if not in_cpp:  # the first layer's xw; index_select, not F.embedding: its backward is one index_add_ (4x faster here)
            hs = table.index_select(0, (tokens + self.offsets[None, :, None]).flatten()).view(T, K, B, -1).transpose(0, 1)
        for layer in range(self.num_layers):
            w_hh = p[f"rnn.weight_hh_l{layer}"]
            if layer == 0 and in_cpp:  # the C++ loop looks the inputs up in the table itself, member-major
                hs = NativeLSTMFunction.apply(table.view(K, -1, table.shape[1]), w_hh, tokens.transpose(0, 1))
                continue
            if layer > 0:
                bias = p[f"rnn.bias_ih_l{layer}"] + (p[f"rnn.bias_hh_l{layer}"] if self.cell == "lstm" else 0)
                hs = _project(hs, p[f"rnn.weight_ih_l{layer}"].transpose(1, 2), bias.unsqueeze(1))
            if in_cpp:
                hs = NativeLSTMFunction.apply(hs, w_hh)
            elif self.cell == "lstm":
                hs = LSTMFunction.apply(hs, w_hh.transpose(1, 2), self.compiled)
            else:
                hs = GRUFunction.apply(hs, w_hh.transpose(1, 2), p[f"rnn.bias_hh_l{layer}"].unsqueeze(1))
        K, T, B, H = hs.shape
        logits = torch.baddbmm(p["out.bias"].unsqueeze(2), p["out.weight"], hs.reshape(K, T * B, H).transpose(1, 2))
        return logits if self.vocab_mask is None else logits + self.vocab_mask.transpose(1, 2)

    __call__ = forward

    @torch.no_grad()
    def step(self, tokens: Tensor, state: list[tuple[Tensor, Tensor]] | None, table: Tensor) -> tuple[Tensor, list]:
        """One token a row, `[K, R]`, through every layer from `state` (None: zeros) → logits
        `[K, R, V]` and the new state. `table` is `_input_table()`, computed once per sampling run."""
        p, H = self.params, self.hidden_dim
        x = F.embedding(tokens + self.offsets[:, None], table)
        if state is None:
            zero = x.new_zeros(*tokens.shape, H)
            state = [(zero, zero)] * self.num_layers
        new = []
        for layer, (h, c) in enumerate(state):
            if layer > 0:
                bias = p[f"rnn.bias_ih_l{layer}"] + (p[f"rnn.bias_hh_l{layer}"] if self.cell == "lstm" else 0)
                x = torch.baddbmm(bias.unsqueeze(1), x, p[f"rnn.weight_ih_l{layer}"].transpose(1, 2))
            w_hh = p[f"rnn.weight_hh_l{layer}"].transpose(1, 2)
            if self.cell == "lstm":
                gates = torch.baddbmm(x, h, w_hh)
                i, f, _, o = gates.sigmoid().chunk(4, dim=-1)  # one kernel over all gates, g's wasted
                c = torch.addcmul(f * c, i, _tanh(gates[..., 2 * H : 3 * H]))
                h = o * _tanh(c)
            else:
                hh = torch.baddbmm(p[f"rnn.bias_hh_l{layer}"].unsqueeze(1), h, w_hh)
                r, z = torch.sigmoid(x[..., : 2 * H] + hh[..., : 2 * H]).chunk(2, dim=-1)
                n = _tanh_(torch.addcmul(x[..., 2 * H :], r, hh[..., 2 * H :]))
                h = n + z * (h - n)
            new.append((h, c))
            x = h
        logits = torch.baddbmm(p["out.bias"].unsqueeze(1), x, p["out.weight"].transpose(1, 2))
        return (logits if self.vocab_mask is None else logits + self.vocab_mask), new

    # --- members as solo LanguageModel state dicts ----------------------------------------------

    def member_view(self, name: str, stacked: Tensor, k: int) -> Tensor:
        """Member k's part of a stacked tensor, shaped as in its solo LanguageModel (a view)."""
        if name in ("embed.weight", "out.weight", "out.bias"):
            return stacked[k, : self.vocab_sizes[k]]
        return stacked[k]

    def member_state_dict(self, k: int, stacked: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Member k as a LanguageModel state dict (CPU copies); `stacked` converts those tensors
        (e.g. momentum buffers) instead of the weights."""
        source = stacked if stacked is not None else self.params
        return {name: self.member_view(name, source[name], k).detach().to("cpu", copy=True) for name in self.params}

    @torch.no_grad()
    def load_member_state_dict(self, k: int, state: dict[str, Tensor], stacked: dict[str, Tensor] | None = None) -> None:
        """Copy a LanguageModel state dict into member k (or into `stacked` tensors)."""
        if set(state) != set(self.params):
            raise ConfigError(
                f"a {self.cell} language model of {self.num_layers} layer(s) needs parameters {sorted(self.params)}, "
                f"got {sorted(state)}; load a state dict of the same cell and layers"
            )
        target = stacked if stacked is not None else self.params
        for name in self.params:
            view = self.member_view(name, target[name], k)
            if view.shape != state[name].shape:
                raise ConfigError(
                    f"{name} has shape {tuple(state[name].shape)}, member {k}'s {tuple(view.shape)}; "
                    "load a state dict of the same sizes and vocabulary"
                )
            view.copy_(state[name])


# --- the grouped optimizer --------------------------------------------------------------------


class GroupSGD:
    """torch.optim.SGD's update for every member of a grouped model (GroupClassifier,
    GroupLanguageModel: `named_parameters()`, `by_member`, `keep`, `sparse`), each with its own lr and
    momentum: buf = m buf + grad (buf starts at zero, so the first step's buf is the gradient,
    as torch's), p -= lr buf; with every momentum 0 that is p -= lr grad. A sparse embedding
    gradient (plain SGD only) updates just the rows it touches, each with its member's lr."""

    def __init__(self, model: GroupClassifier | GroupLanguageModel, lrs: Sequence[float], momenta: Sequence[float]):
        if model.sparse and any(m > 0 for m in momenta):
            raise ConfigError("momentum needs dense embedding gradients; build the GroupClassifier with sparse=False")
        self.model = model
        first = next(iter(model.named_parameters()))[1]
        device, dtype = first.device, first.dtype
        self.lr = torch.tensor(list(lrs), dtype=dtype, device=device)
        self.momentum = torch.tensor(list(momenta), dtype=dtype, device=device)
        use_buffers = bool((self.momentum > 0).any())
        self.buffers = {name: torch.zeros_like(p) for name, p in model.named_parameters()} if use_buffers else None

    def zero_grad(self) -> None:
        for parameter in self.model.parameters():
            parameter.grad = None

    @torch.no_grad()
    def step(self) -> None:
        neg_lr = -self.lr
        for name, p in self.model.named_parameters():
            if p.grad is None:
                continue
            if p.grad.is_sparse:  # scale each touched row by its member's lr, then add as torch's SGD does
                grad = p.grad.coalesce()
                member = torch.clamp(grad.indices()[0] // self.model.vocab_size, max=len(neg_lr) - 1)
                scaled = grad.values() * neg_lr[member].unsqueeze(1)
                p.add_(torch.sparse_coo_tensor(grad.indices(), scaled, grad.shape, check_invariants=False, is_coalesced=True))
                continue
            step = self.model.by_member(name, p.grad)
            if self.buffers is not None:
                step = self.model.by_member(name, self.buffers[name]).mul_(_per_member(self.momentum, step)).add_(step)
            self.model.by_member(name, p).addcmul_(step, _per_member(neg_lr, step))

    def keep_members(self, index: Sequence[int]) -> None:
        """Keep the state of the members the model keeps (call with the same `index`)."""
        picked = torch.as_tensor(list(index), dtype=torch.long, device=self.lr.device)
        self.lr, self.momentum = self.lr[picked], self.momentum[picked]
        if self.buffers is not None:
            self.buffers = {n: self.model.keep(n, b, index) for n, b in self.buffers.items()}


def _per_member(values: Tensor, like: Tensor) -> Tensor:
    """A `[K]` vector shaped to broadcast over a `[K, ...]` tensor."""
    return values.view(-1, *[1] * (like.dim() - 1))
