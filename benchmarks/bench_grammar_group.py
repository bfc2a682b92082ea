"""The grammar study's members fused into one GrammarGroup against the same members one at a time,
side by side in one process.

    python -m benchmarks.bench_grammar_group --out bench_grammar_group.json          # the study's 120, 1 epoch
    python -m benchmarks.bench_grammar_group --members 8 --n 20000 --out /tmp/b.json  # a few minutes

Members: the study's grid (brackets, ndfa) x lrs (0.01 ... 3.0) x seeds 0-9, the first `--members`
of it in grid order, default settings (n = 150,000, batch 32, embedding 32, hidden 16, 5 temperatures
x 100 samples). Contenders, each one whole epoch, training and scoring:

(a) fused: one GrammarGroup per grammar (as the sweep's `--group all` trains them), with the C++
    recurrence on a CPU, then the same with the recurrence in torch operations (`--no-torch-ops`
    skips it), then one of all members (`--no-mixed` skips it); `--compile`: with compiled LSTM
    cells (GrammarConfig.compile); `--cuda-graphs`: (a) and (b) replay their steps from CUDA graphs.
    Each epoch is split into training, held-out loss,
    sampling (rnnbench.sampling.sample_members) and judging (validators), and the padding share
    of its steps is reported.
(b) serial, rnnbench: GrammarRun (the group of one) for `--serial-members` members (one per grammar
    by default: members trained one after another do not speed each other up).
(c) serial, reference: the solo loop before fusing (nn.Embedding, nn.LSTM (oneDNN), nn.Linear,
    torch.optim.SGD; scores with rnnbench.sampling.sample), below, on the same members.
The serial contenders run before and after (a) and the faster of the two runs counts, so a change
of load during the run hits the fused side no better than the serial one.
member-epochs/s = members / seconds. (e) times the head and loss of one step with torch.func.vmap
against the batched product the group uses. (d) times the LSTM recurrence of one fused training step
(forward + backward at K = 120, B = 32, the epoch's mean width) with the hand-written backward
(rnnbench.fused.LSTMFunction), with plain autograd over the same forward, and in C++
(rnnbench.native.NativeLSTMFunction).
Prints a table and writes the numbers as JSON after every part.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from rnnbench import metrics as M
from rnnbench.data.batching import PAD
from rnnbench.data.grammars import END, START, GrammarData, is_valid
from rnnbench.fused import LSTMFunction
from rnnbench.models import LanguageModel
from rnnbench.native import NativeLSTMFunction, available_for
from rnnbench.sampling import sample
from rnnbench.train import autoregressor
from rnnbench.train.autoregressor import GrammarConfig, GrammarGroup, GrammarRun

LRS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


def grid(base: GrammarConfig, members: int) -> list[GrammarConfig]:
    cells = [(d, lr, s) for d in ("brackets", "ndfa") for lr in LRS for s in range(10)]
    return [dataclasses.replace(base, dataset=d, lr=lr, seed=s) for d, lr, s in cells[:members]]


def fused(configs: list[GrammarConfig], native: bool = True) -> dict[str, Any]:
    """One GrammarGroup epoch, its parts timed; `native=False`: the recurrence in torch operations."""
    start = time.perf_counter()
    group = GrammarGroup(configs)
    group.model.native = native
    setup_s = time.perf_counter() - start
    parts = {"sampling_s": 0.0, "judging_s": 0.0, "held_out_s": 0.0}
    sample_members, judge, held_out = autoregressor.sample_members, group._judge, group._held_out_loss

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                parts[name] += time.perf_counter() - t

        return wrapper

    autoregressor.sample_members = timed("sampling_s", sample_members)
    group._judge, group._held_out_loss = timed("judging_s", judge), timed("held_out_s", held_out)
    try:
        start = time.perf_counter()
        reports = group.run_epoch()
        epoch_s = time.perf_counter() - start
    finally:
        autoregressor.sample_members = sample_members
    member, first = next(iter(reports.items()))
    train = group.data[member].train
    train_s = (len(train.tokens) - len(train)) / first[M.TOKENS_PER_S]  # its targets over its tokens/s: the group's seconds
    return {
        "members": len(configs), "setup_s": setup_s, "epoch_s": epoch_s, "train_s": train_s, **parts,
        "padding_share": group.padding_share, "diverged": sum(r[M.DIVERGED] for r in reports.values()),
        "member_epochs_per_s": len(configs) / epoch_s, "epoch_s_reported": first[M.EPOCH_S],
    }  # fmt: skip


def serial(configs: list[GrammarConfig]) -> dict[str, Any]:
    """GrammarRun, one member after another: seconds of each member's epoch."""
    seconds = []
    for config in configs:
        run = GrammarRun(config)
        start = time.perf_counter()
        run.run_epoch()
        seconds.append(time.perf_counter() - start)
    return {"epoch_s": seconds, "member_epochs_per_s": len(configs) / sum(seconds)}


def reference(configs: list[GrammarConfig]) -> dict[str, Any]:
    """The solo loop before fusing, on each member's own data and batches (as GrammarRun draws them)."""
    seconds = []
    for config in configs:
        data = GrammarData.generate(config.dataset, config.n, config.seed, config.num_samples)
        steps = GrammarGroup([config], [data]).epoch_steps()
        torch.manual_seed(config.seed)
        device = torch.device("cpu" if config.device == "auto" else config.device)
        model = LanguageModel(
            len(data.vocab), config.embed_dim, config.hidden_dim, config.num_layers, config.cell, padding_idx=PAD
        ).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
        start = time.perf_counter()
        for step in steps:
            padded, _ = data.train.pad(step[0])
            batch = torch.from_numpy(padded).to(device)
            logits, _ = model(batch[:, :-1])
            targets = batch[:, 1:].flatten()
            per_token = F.cross_entropy(logits.flatten(0, 1), targets, reduction="none")
            real = (targets != PAD).float()
            loss = (per_token * real).sum() / real.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])
            optimizer.step()
        loss.item()
        held = data.held_out
        prefixes = {
            "synth": [[START]] * config.num_samples,
            "compl": [held.tokens[a : a + 1 + (b - a - 2) // 2].tolist() for a, b in zip(held.offsets[:-1], held.offsets[1:])],
        }
        generator = torch.Generator(device).manual_seed(0)
        with torch.no_grad():
            for mode_prefixes in prefixes.values():
                for t in config.temperatures:
                    rows = sample(model, mode_prefixes, t, config.max_len, END, generator)
                    [
                        bool(r) and r[-1] == END and is_valid(data.grammar, data.vocab.decode(p[1:] + r[:-1]))
                        for p, r in zip(mode_prefixes, rows)
                    ]
        seconds.append(time.perf_counter() - start)
    return {"epoch_s": seconds, "member_epochs_per_s": len(configs) / sum(seconds)}


def autograd_lstm(xw: torch.Tensor, w_hh: torch.Tensor) -> torch.Tensor:
    """The forward of LSTMFunction in plain torch ops, so autograd records it: `[K, T, B, G]` → `[K, T, B, H]`."""
    H = w_hh.shape[1]
    h = c = xw.new_zeros(xw.shape[0], xw.shape[2], H)
    out = []
    for t in range(xw.shape[1]):
        gates = torch.baddbmm(xw[:, t], h, w_hh)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        out.append(h)
    return torch.stack(out, dim=1)


def backward_choice(members: int, width: int, repeats: int = 5) -> dict[str, Any]:
    """Seconds of forward + backward of the recurrence alone: hand-written in torch operations
    (LSTMFunction), plain autograd over the same forward, and the C++ loop (NativeLSTMFunction,
    on the same input projections; on a CPU only)."""
    torch.manual_seed(0)
    xw = (torch.randn(width, members, 32, 64) * 0.5).transpose(0, 1).requires_grad_()
    w_hh = (torch.randn(members, 16, 64) * 0.25).requires_grad_()
    weights = torch.randn(members, width, 32, 16)
    contenders = [("hand_written_s", LSTMFunction.apply), ("autograd_s", autograd_lstm)]
    if available_for(xw):
        contenders.append(("cpp_s", lambda x, w: NativeLSTMFunction.apply(x, w.transpose(1, 2))))
    times: dict[str, float] = {}
    for name, fn in contenders * 2:
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            (fn(xw, w_hh) * weights).sum().backward()
            best = min(best, time.perf_counter() - start)
        times[name] = min(times.get(name, math.inf), best)
    ratios = {"autograd_over_hand": times["autograd_s"] / times["hand_written_s"]}
    if "cpp_s" in times:
        ratios["hand_over_cpp"] = times["hand_written_s"] / times["cpp_s"]
    return {"members": members, "width": width, **times, **ratios}


def head_choice(members: int, width: int, vocab: int = 15, repeats: int = 5) -> dict[str, Any]:
    """Seconds of the LM head and loss, forward + backward: torch.func.vmap over F.linear and
    cross_entropy (the batching rules torch has) against one baddbmm with classes second."""
    torch.manual_seed(0)
    hs = torch.randn(members, width * 32, 16, requires_grad=True)
    weight, bias = torch.randn(members, vocab, 16, requires_grad=True), torch.randn(members, vocab, requires_grad=True)
    targets = torch.randint(0, vocab, (members, width * 32))

    def vmapped() -> torch.Tensor:
        loss = torch.func.vmap(lambda w, b, h, y: F.cross_entropy(F.linear(h, w, b), y, reduction="none"))
        return loss(weight, bias, hs, targets)

    def batched() -> torch.Tensor:
        return F.cross_entropy(torch.baddbmm(bias.unsqueeze(2), weight, hs.transpose(1, 2)), targets, reduction="none")

    times: dict[str, float] = {}
    for name, fn in (("vmap_s", vmapped), ("bmm_classes_second_s", batched)) * 2:
        for _ in range(repeats):
            start = time.perf_counter()
            fn().sum().backward()
            times[name] = min(times.get(name, math.inf), time.perf_counter() - start)
    return {"members": members, "width": width, **times, "vmap_over_bmm": times["vmap_s"] / times["bmm_classes_second_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=120)
    parser.add_argument("--n", type=int, default=150_000)
    parser.add_argument("--serial-members", type=int, nargs="+", default=[40, 100], help="grid positions trained one at a time")
    parser.add_argument("--width", type=int, default=17, help="time steps in (d): the study grid's mean step width")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="the groups with compile=True (compiled LSTM cells)")
    parser.add_argument("--cuda-graphs", action="store_true", help="every contender of rnnbench with cuda_graphs=True (GPU only)")
    parser.add_argument("--mixed", action=argparse.BooleanOptionalAction, default=True, help="also all members in one group")
    parser.add_argument(
        "--torch-ops",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also the groups with the recurrence in torch ops",
    )
    parser.add_argument("--out", type=Path, default=Path("bench_grammar_group.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = GrammarConfig(n=args.n, epochs=1, device=args.device, cuda_graphs=args.cuda_graphs)
    configs = grid(dataclasses.replace(base, compile=args.compile), args.members)
    alone = [grid(base, 120)[i] for i in args.serial_members]
    results: dict[str, Any] = {
        "header": {
            "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cpus", "torch": torch.__version__,
            "threads": args.threads, "device": args.device, "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "n": args.n, "members": args.members, "serial": [dataclasses.asdict(c) for c in alone],
        },
        "load_average": [os.getloadavg()],
    }  # fmt: skip

    def save(name: str, value: Any) -> None:
        results.setdefault(name, []).append(value)
        results["load_average"].append(os.getloadavg())
        args.out.write_text(json.dumps(results, indent=1))
        print(name, json.dumps(value), "load", os.getloadavg()[0], flush=True)

    save("reference", reference(alone))
    save("serial", serial(alone))
    per_grammar = [fused([c for c in configs if c.dataset == d]) for d in dict.fromkeys(c.dataset for c in configs)]
    save(
        "fused_per_grammar", {"groups": per_grammar, "member_epochs_per_s": len(configs) / sum(g["epoch_s"] for g in per_grammar)}
    )
    if args.torch_ops:
        per_grammar = [
            fused([c for c in configs if c.dataset == d], native=False) for d in dict.fromkeys(c.dataset for c in configs)
        ]
        save(
            "fused_per_grammar_torch_ops",
            {"groups": per_grammar, "member_epochs_per_s": len(configs) / sum(g["epoch_s"] for g in per_grammar)},
        )
    if args.mixed:
        save("fused", fused(configs))
    save("serial", serial(alone))
    save("reference", reference(alone))
    save("backward", backward_choice(min(args.members, 120), args.width))
    save("head", head_choice(min(args.members, 120), args.width))
    best_serial = max(r["member_epochs_per_s"] for r in results["serial"])
    best_reference = max(r["member_epochs_per_s"] for r in results["reference"])
    print(f"one at a time: GrammarRun {best_serial:.3f}, reference nn.LSTM loop {best_reference:.3f} member-epochs/s")
    for f in [*results["fused_per_grammar"][0]["groups"], *results.get("fused", [])]:
        print(
            f"{f['members']} members fused: epoch {f['epoch_s']:.0f} s (training {f['train_s']:.0f} s, held-out "
            f"{f['held_out_s']:.1f} s, sampling {f['sampling_s']:.1f} s, judging {f['judging_s']:.1f} s), padding "
            f"{f['padding_share']:.1%}: {f['member_epochs_per_s']:.3f} member-epochs/s"
        )
    for name in ("fused_per_grammar", "fused_per_grammar_torch_ops", "fused"):
        if name in results:
            rate = results[name][0]["member_epochs_per_s"]
            print(
                f"{name}: {rate:.3f} member-epochs/s = {rate / best_serial:.1f}x GrammarRun, {rate / best_reference:.1f}x reference"
            )
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
