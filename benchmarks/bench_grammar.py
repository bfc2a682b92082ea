"""Grammar language models: does the study's setting reach >= 90% valid samples within 2 epochs,
and what does scoring cost next to an epoch of training?

    python -m benchmarks.bench_grammar            # both grammars, n=150,000, 2 epochs, lr 1.0

(a) trains each grammar with the study's defaults and prints per-epoch Synthesis / Completion
accuracy at every temperature and the epoch time. (b) then times one epoch's scoring (100 sequences
x 5 temperatures x 2 modes) with rnnbench's batched, state-carrying sampler against the naive
sampler below, on the same trained model, and gives each as a share of the epoch's time.
(c) one epoch of brackets with random batches (the most padding), padding masked or not, to check
the study's claim that training without the mask is much slower.
"""

from __future__ import annotations

import argparse
import time

import torch

from rnnbench import metrics as M
from rnnbench.data.grammars import END, START, is_valid
from rnnbench.models import LanguageModel
from rnnbench.sampling import pick_tokens, sample
from rnnbench.train.autoregressor import GrammarConfig, GrammarRun


@torch.no_grad()
def naive_sample(
    model: LanguageModel,
    prefixes: list[list[int]],
    temperature: float,
    max_len: int,
    end: int,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """The reference: one sequence at a time, the whole sequence so far re-read at every step."""
    out = []
    for prefix in prefixes:
        seq = list(prefix)
        while len(seq) - len(prefix) < max_len:
            logits, _ = model(torch.tensor([seq]))
            seq.append(int(pick_tokens(logits[:, -1], temperature, generator)))
            if seq[-1] == end:
                break
        out.append(seq[len(prefix) :])
    return out


def score_all(run: GrammarRun, sampler) -> tuple[float, dict[str, float]]:
    """Seconds for one epoch's worth of sampling with `sampler`, and the Synthesis accuracies."""
    held = run.data.held_out
    prefixes = {
        "synth": [[START]] * run.config.num_samples,
        "compl": [held.tokens[a : a + 1 + (b - a - 2) // 2].tolist() for a, b in zip(held.offsets[:-1], held.offsets[1:])],
    }
    generator, accs = torch.Generator().manual_seed(0), {}
    start = time.perf_counter()
    for mode, mode_prefixes in prefixes.items():
        for t in run.config.temperatures:
            rows = sampler(run.model, mode_prefixes, t, run.config.max_len, END, generator)
            valid = [
                bool(r) and r[-1] == END and is_valid(run.data.grammar, run.data.vocab.decode(p[1:] + r[:-1]))
                for p, r in zip(mode_prefixes, rows)
            ]
            accs[f"{mode}@t{t:g}"] = sum(valid) / len(valid)
    return time.perf_counter() - start, accs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=150_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--grammars", nargs="+", default=["brackets", "ndfa"])
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    for grammar in args.grammars:
        config = GrammarConfig(dataset=grammar, n=args.n, epochs=args.epochs, device="cpu")
        run = GrammarRun(config)
        print(f"\n== {grammar}: n={config.n:,} lr={config.lr} batch={config.batch_size} ({config.batching})")
        epoch_s = []
        for r in run.epochs():
            epoch_s.append(r[M.EPOCH_S])
            synth = " ".join(f"{r[M.synth_acc(t)]:.2f}" for t in config.temperatures)
            compl = " ".join(f"{r[M.compl_acc(t)]:.2f}" for t in config.temperatures)
            print(
                f"epoch {r[M.EPOCH]}: {r[M.EPOCH_S]:.1f} s, {r[M.TOKENS_PER_S]:,.0f} tok/s, "
                f"loss/token {r[M.LOSS_PER_TOKEN]:.3f} | synth@t{config.temperatures} {synth} | compl {compl}"
            )
        fast_s, fast_acc = score_all(run, sample)
        naive_s, naive_acc = score_all(run, naive_sample)
        train_s = epoch_s[-1] - fast_s  # the last epoch's time without its own (batched) scoring
        print(
            f"scoring one epoch: batched {fast_s:.2f} s ({fast_s / (train_s + fast_s):.1%} of the epoch), "
            f"naive {naive_s:.2f} s ({naive_s / (train_s + naive_s):.1%}), naive/batched {naive_s / fast_s:.0f}x"
        )
        assert fast_acc.keys() == naive_acc.keys()
        print("  accuracies (batched / naive, different random draws):",
              {k: (fast_acc[k], naive_acc[k]) for k in fast_acc})  # fmt: skip
    print("\n== masking: brackets, 1 epoch, random batches")
    for mask in (True, False):
        config = GrammarConfig(n=args.n, epochs=1, batching="random", mask_padding=mask, device="cpu")
        r = next(GrammarRun(config).epochs())
        synth = " ".join(f"{r[M.synth_acc(t)]:.2f}" for t in config.temperatures)
        print(f"mask_padding={mask}: {r[M.EPOCH_S]:.1f} s, loss/token {r[M.LOSS_PER_TOKEN]:.3f} | synth {synth}")


if __name__ == "__main__":
    main()
