"""Fused trial groups on one GPU: how many members one group packs before throughput stops rising.

    python -m benchmarks.gpu_group --data path/to/aclImdb_labelled.tar.gz --out gpu_out
    python -m benchmarks.gpu_group --device cpu --tiny --out /tmp/try     # a minute, no GPU, no data

Writes gpu_group.json and gpu_group.txt to --out, rewritten after every configuration, so a run
cut short keeps what it measured. Needs only torch, numpy, pooch and this repository (no Ray).

(a) Packing curve: for each model and each group size K, a GroupRun of K members (the model's
    study lr, seeds 0..K-1) on the full 20,000-review training split trains the epoch's widest
    step and `--warmup` steps, then `--steps` timed steps of the epoch's order. Every
    configuration times the same steps (the step order depends on order_seed and the epoch only).
    member-epochs/s = K * (share of the epoch's padded tokens in the timed steps) / seconds.
    Training only; evaluation is not timed.
(b) The unfused ClassifierRun (cuDNN on a GPU), one full epoch per model: training seconds
    (its member-epochs/s, comparable with (a)) and epoch seconds with evaluation.
(c) Peak GPU memory of each configuration (the widest step included), and the padding share
    of the epoch's steps at that K.
(d) Agreement: a group of 2 and the same 2 configs alone, one epoch on a subset, on this device;
    and torch.autograd.gradcheck of each fused recurrence on this device (float64, tiny sizes).
(e) With --full-epoch K: one whole GroupRun epoch of K members per model, evaluation included,
    as a sweep would run it (the study's grid is 6 lrs x 5 seeds = 30 members per model).
A configuration that fails (out of memory, say) is recorded with its error and the run goes on;
larger groups of that model are then skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnbench import metrics as M
from rnnbench.data.batching import padding_share
from rnnbench.data.tiny_imdb import write_tiny_imdb
from rnnbench.fused import ElmanFunction, GRUFunction, LSTMFunction
from rnnbench.train.classifier import ClassifierConfig, ClassifierRun, load_data
from rnnbench.train.group import GroupRun

STUDY_LR = {"mlp": 0.03, "elman": 0.1, "lstm": 0.3}


class Report:
    """Results so far, rewritten to JSON and a text table after every configuration."""

    def __init__(self, out: Path, header: dict[str, Any]):
        self.out, self.results = out, {"header": header, "solo": [], "packing": [], "agreement": [], "full_epoch": []}
        out.mkdir(parents=True, exist_ok=True)

    def add(self, section: str, record: dict[str, Any]) -> None:
        self.results[section].append(record)
        print(json.dumps(record), flush=True)
        partial = self.out / "gpu_group.json.tmp"
        partial.write_text(json.dumps(self.results, indent=1))
        os.replace(partial, self.out / "gpu_group.json")
        (self.out / "gpu_group.txt").write_text(self.table())

    def table(self) -> str:
        h = self.results["header"]
        lines = [
            f"{h['device_name']}, torch {h['torch']}, {h['date']}; {h['train_reviews']} training reviews, "
            f"vocabulary {h['vocab']}, batch {h['batch_size']}, dims {h['dims']}, TF32 matmul {h['tf32_matmul']}",
            f"gradcheck on this device: {h['gradcheck']}",
            "",
            "(b) unfused ClassifierRun, one epoch:",
            "| model | train s | member-epochs/s (train) | epoch s with eval | peak MiB |",
            "|---|---|---|---|---|",
        ]
        for r in self.results["solo"]:
            lines.append(
                f"| {r['model']} | {r.get('train_s', '-')} | {r.get('member_epochs_per_s', r['status'])} | "
                f"{r.get('epoch_s', '-')} | {r.get('peak_mib', '-')} |"
            )
        lines += [
            "",
            "(a, c) fused GroupRun, timed slice of an epoch (training only):",
            "| model | members | member-epochs/s | x unfused | step ms | padding | peak MiB | status |",
            "|---|---|---|---|---|---|---|---|",
        ]
        solo = {r["model"]: r.get("member_epochs_per_s") for r in self.results["solo"]}
        for r in self.results["packing"]:
            rate = r.get("member_epochs_per_s")
            ratio = f"{rate / solo[r['model']]:.2f}" if rate and solo.get(r["model"]) else "-"
            lines.append(
                f"| {r['model']} | {r['members']} | {rate if rate is not None else '-'} | {ratio} | "
                f"{r.get('step_ms', '-')} | {r.get('padding_share', '-')} | {r.get('peak_mib', '-')} | {r['status']} |"
            )
        if self.results["agreement"]:
            lines += ["", "(d) group of 2 vs alone, one epoch:"]
            lines += [json.dumps(r) for r in self.results["agreement"]]
        if self.results["full_epoch"]:
            lines += ["", "(e) one whole GroupRun epoch, evaluation included:"]
            lines += [json.dumps(r) for r in self.results["full_epoch"]]
        return "\n".join(lines) + "\n"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_mib(device: torch.device) -> int | None:
    return torch.cuda.max_memory_allocated() // 2**20 if device.type == "cuda" else None


def failure(error: BaseException) -> str:
    kind = "oom" if isinstance(error, torch.cuda.OutOfMemoryError) else type(error).__name__
    return f"{kind}: {str(error).splitlines()[0][:200]}" if str(error) else kind


def check_cells(device: torch.device) -> dict[str, bool]:
    """gradcheck of each hand-written recurrence on this device, float64, tiny sizes."""
    results = {}
    for function, gates in ((ElmanFunction, 1), (LSTMFunction, 4), (GRUFunction, 3)):
        generator = torch.Generator(device).manual_seed(0)
        shapes = [(2, 5, 3, gates * 2), (2, 2, gates * 2)] + ([(2, 1, gates * 2)] if function is GRUFunction else [])
        inputs = [torch.randn(s, generator=generator, device=device, dtype=torch.float64, requires_grad=True) for s in shapes]
        results[function.__name__] = bool(torch.autograd.gradcheck(function.apply, inputs, raise_exception=False))
    return results


def measure_solo(config: ClassifierConfig, data) -> dict[str, Any]:
    """One full epoch of the unfused loop; its training time gives member-epochs/s. A short epoch
    on 256 reviews first, so library start-up (cuBLAS, cuDNN) is not timed."""
    warm = dataclasses.replace(data, train=data.train.subset(np.arange(min(256, len(data.train)))))
    ClassifierRun(config, warm).run_epoch()
    run = ClassifierRun(config, data)
    reset_peak(run.device)
    metrics = run.run_epoch()
    train_s = len(data.train.tokens) / metrics[M.TOKENS_PER_S]
    return {
        "train_s": round(train_s, 3),
        "member_epochs_per_s": round(1 / train_s, 4),
        "epoch_s": round(metrics[M.EPOCH_S], 3),
        "peak_mib": peak_mib(run.device),
    }


def measure_group(configs: list[ClassifierConfig], data, steps: int, warmup: int) -> dict[str, Any]:
    """The widest step and `warmup` steps untimed, then `steps` timed steps of the epoch's order."""
    start = time.perf_counter()
    run = GroupRun(configs, data)
    build_s = time.perf_counter() - start
    reset_peak(run.device)
    epoch = run.epoch_steps()
    lengths = data.train.lengths
    work = np.array([step.shape[1] * lengths[step].max() for step in epoch], dtype=np.float64)
    run.train_step(epoch[int(work.argmax())])
    for step in epoch[:warmup]:
        run.train_step(step)
    sync(run.device)
    timed = epoch[warmup : warmup + steps]
    start = time.perf_counter()
    for step in timed:
        losses, _ = run.train_step(step)
    sync(run.device)
    seconds = time.perf_counter() - start
    share = work[warmup : warmup + len(timed)].sum() / work.sum()
    return {
        "member_epochs_per_s": round(len(configs) * share / seconds, 4),
        "step_ms": round(1000 * seconds / len(timed), 2),
        "timed_steps": len(timed),
        "timed_share": round(float(share), 4),
        "build_s": round(build_s, 2),
        "padding_share": round(padding_share(epoch, lengths), 4),
        "peak_mib": peak_mib(run.device),
        "finite_losses": int(torch.isfinite(losses).sum()),
    }


def measure_agreement(base: ClassifierConfig, data, subset: int) -> dict[str, Any]:
    """Per-epoch metrics of a group of 2 against each config alone, on this device."""
    rows = np.random.default_rng(0).choice(len(data.train), min(subset, len(data.train)), replace=False)
    small = dataclasses.replace(data, train=data.train.subset(np.sort(rows)))
    configs = [dataclasses.replace(base, seed=0), dataclasses.replace(base, seed=1, lr=base.lr / 3)]
    grouped = GroupRun(configs, small).run_epoch()
    record: dict[str, Any] = {"model": base.model}
    for member, config in enumerate(configs):
        alone = ClassifierRun(config, small).run_epoch()
        for key in (M.TRAIN_LOSS_SUM, f"{data.eval_name}_loss", f"{data.eval_name}_acc"):
            record[f"m{member}_{key}"] = [round(grouped[member][key], 6), round(alone[key], 6)]
    return record


def measure_full_epoch(configs: list[ClassifierConfig], data) -> dict[str, Any]:
    """One whole epoch of a group, evaluation included, as a sweep runs it."""
    run = GroupRun(configs, data)
    reset_peak(run.device)
    metrics = run.run_epoch()
    first = metrics[0]
    accuracies = [m[f"{data.eval_name}_acc"] for m in metrics.values()]
    return {
        "epoch_s": round(first[M.EPOCH_S], 2), "train_s": round(len(data.train.tokens) / first[M.TOKENS_PER_S], 2),
        "member_epochs_per_s": round(len(configs) / first[M.EPOCH_S], 4), "peak_mib": peak_mib(run.device),
        "diverged": sum(m[M.DIVERGED] for m in metrics.values()), "eval_acc_min_max": [min(accuracies), max(accuracies)],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("RNNBENCH_IMDB"), help="aclImdb tarball or folder")
    parser.add_argument("--out", required=True, type=Path, help="folder for gpu_group.json and gpu_group.txt")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", nargs="+", default=["mlp", "elman", "lstm"])
    parser.add_argument("--members", nargs="*", type=int, default=[1, 2, 4, 8, 16, 30], help="group sizes of (a); none: skip it")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--budget-s", type=float, default=360, help="start no configuration after this many seconds")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 matrix products (as cuDNN's RNNs may use)")
    parser.add_argument("--full-epoch", type=int, default=0, metavar="K", help="also one whole epoch of K members per model")
    parser.add_argument("--tiny", action="store_true", help="generated data, small models, K 1 and 2: to try the script")
    args = parser.parse_args()
    began = time.perf_counter()
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    dims = dict(embed_dim=300, hidden_dim=300)
    if args.tiny:
        args.data = str(write_tiny_imdb(tempfile.mkdtemp()))
        args.members, args.steps, args.warmup, dims = [1, 2], 3, 1, dict(embed_dim=16, hidden_dim=16)
        args.full_epoch = 2
    base = ClassifierConfig(data=args.data, device=args.device, epochs=1, **dims)
    data = load_data(base)
    device = torch.device(args.device)
    report = Report(args.out, {
        "device_name": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "date": datetime.date.today().isoformat(), "host": platform.node(),
        "train_reviews": len(data.train), "vocab": len(data.vocab), "batch_size": base.batch_size, "dims": dims,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "steps": args.steps, "warmup": args.warmup, "data_load_s": round(time.perf_counter() - began, 1),
        "gradcheck": check_cells(device),
    })  # fmt: skip

    for model in args.models:
        config = dataclasses.replace(base, model=model, lr=STUDY_LR[model])
        try:
            report.add("solo", {"model": model, "status": "ok", **measure_solo(config, data)})
        except Exception as error:  # noqa: BLE001 - unattended: record and go on
            report.add("solo", {"model": model, "status": failure(error)})

    for model in args.models:
        failed = False
        for members in args.members:
            record: dict[str, Any] = {"model": model, "members": members}
            if failed or time.perf_counter() - began > args.budget_s:
                report.add("packing", {**record, "status": "skipped: " + ("a smaller group failed" if failed else "time budget")})
                continue
            configs = [dataclasses.replace(base, model=model, lr=STUDY_LR[model], seed=seed) for seed in range(members)]
            try:
                report.add("packing", {**record, "status": "ok", **measure_group(configs, data, args.steps, args.warmup)})
            except Exception as error:  # noqa: BLE001 - unattended: record and go on
                failed = True
                report.add("packing", {**record, "status": failure(error)})
            reset_peak(device)

    for model in args.models:
        if time.perf_counter() - began > args.budget_s:
            break
        config = dataclasses.replace(base, model=model, lr=STUDY_LR[model])
        try:
            report.add("agreement", measure_agreement(config, data, subset=2000))
        except Exception as error:  # noqa: BLE001 - unattended: record and go on
            report.add("agreement", {"model": model, "status": failure(error)})
    for model in args.models if args.full_epoch else []:
        record = {"model": model, "members": args.full_epoch}
        if time.perf_counter() - began > args.budget_s:
            report.add("full_epoch", {**record, "status": "skipped: time budget"})
            continue
        lrs = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]  # the study's grid: members cycle through its lrs
        configs = [dataclasses.replace(base, model=model, lr=lrs[k % 6], seed=k // 6) for k in range(args.full_epoch)]
        try:
            report.add("full_epoch", {**record, "status": "ok", **measure_full_epoch(configs, data)})
        except Exception as error:  # noqa: BLE001 - unattended: record and go on
            report.add("full_epoch", {**record, "status": failure(error)})
        reset_peak(device)
    print(report.table(), flush=True)
    print(f"total {time.perf_counter() - began:.0f} s", flush=True)


if __name__ == "__main__":
    main()
