"""The trial configs of the training loops, apart from the loops so that they import no torch.

Every CLI builds its flags from these dataclasses (rnnbench.config), so `--help` and a bad flag
answer without the second or more that importing torch takes; the model names they check come
from rnnbench.names. Each field's meaning (and its choices, where finitely many) is its
`setting(...)`, the one place `--help` reads them from."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnbench import metrics as M
from rnnbench.data.datasets import TEXT_DATASETS, get_text_dataset
from rnnbench.data.grammars import GRAMMARS, check_grammar
from rnnbench.errors import ConfigError
from rnnbench.names import CLASSIFIERS, LM_CELLS

MAX_SEED = 2**32 - 1  # numpy and torch both take seeds up to here
BATCHINGS = ("bucket", "random")  # similar lengths together, or any order (rnnbench.data.batching)
DEVICE_HELP = "auto (a GPU if there is one, else the CPU), cpu, cuda or cuda:N"
GRAPHS_HELP = "fused groups on a GPU: each training step replayed from a CUDA graph (steps padded to 8 widths per doubling)"


def setting(default: Any, meaning: str, choices: tuple[str, ...] | None = None) -> Any:
    """A config field with what it means (saying what a None default does) and, for a name, the
    names it takes: `--help` shows both, and the flag refuses any other name."""
    return field(default=default, metadata={"help": meaning, "choices": choices})


def require_positive(**values: float | int) -> None:
    """Raise a one-line ConfigError for the first value that is not a finite number > 0."""
    for name, value in values.items():
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"{name} must be > 0 and finite, got {value!r}; pass a positive {name}")


def require_momentum(momentum: float) -> None:
    """SGD momentum of 1 or more never forgets a gradient: the updates grow without bound."""
    if not 0 <= momentum < 1:
        raise ConfigError(f"momentum must be >= 0 and < 1, got {momentum!r}; e.g. 0.9, or 0 for plain SGD")


def require_seed(**seeds: int) -> None:
    for name, value in seeds.items():
        if not 0 <= value <= MAX_SEED:
            raise ConfigError(f"{name} must be >= 0 and <= {MAX_SEED}, got {value}; pass a seed in that range")


def check_batching_and_device(batching: str, device: str) -> None:
    """The two names both loops take: how batches are cut, and where the trial runs."""
    if batching not in BATCHINGS:
        raise ConfigError(f"unknown batching {batching!r}; use 'bucket' or 'random'")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda[:N]")


def local_gpus() -> int:
    """The NVIDIA GPUs of this machine, read from the driver's /proc entries (no torch import)."""
    folder = Path("/proc/driver/nvidia/gpus")
    return len(list(folder.iterdir())) if folder.is_dir() else 0


def check_local_device(device: str, gpus: int) -> None:
    """A cuda device must be one of this machine's `gpus`: checked by the CLIs that run here, before
    anything starts (torch would fail only at the first tensor, with a traceback). Not a config
    check: a cluster's workers may have GPUs that the machine starting the sweep lacks."""
    cuda = re.fullmatch(r"cuda(?::(\d+))?", device)  # other names are the config's to refuse
    if cuda and int(cuda[1] or 0) >= gpus:
        has = f"has {gpus} GPUs (cuda:0 to cuda:{gpus - 1})" if gpus else "has no GPU"
        raise ConfigError(f"--device {device}: this machine {has}; use --device auto or cpu")


@dataclass(frozen=True)
class ClassifierConfig:
    """One text-classifier trial (IMDB by default). Defaults are the study's settings."""

    model: str = setting("lstm", "the encoder before the max pool (mlp: none; elman_naive: a Python loop)", CLASSIFIERS)
    dataset: str = setting("imdb", "the text dataset", tuple(TEXT_DATASETS))
    lr: float = setting(0.1, "SGD learning rate")
    epochs: int = setting(10, "passes over the training split")
    batch_size: int = setting(32, "reviews per SGD step")
    seed: int = setting(0, "seeds the initial weights and the batches' shuffling")
    momentum: float = setting(0.0, "SGD momentum, in [0, 1)")
    embed_dim: int = setting(300, "word embedding size")
    hidden_dim: int = setting(300, "hidden layer size")
    batching: str = setting("bucket", "bucket: reviews of similar length share a batch; random: any", BATCHINGS)
    order_seed: int = setting(0, "orders the length buckets' steps; trials trained as a group share it")
    final: bool = setting(False, "false: train 20,000 / validate 5,000; true: official train 25,000 / test 25,000")
    split_seed: int = setting(0, "draws the validation split; keep it fixed across trials")
    max_vocab: int | None = setting(None, "keep this many most frequent words (default: every word)")
    min_count: int = setting(1, "keep words seen at least this often in training")
    subset: int | None = setting(None, "train on this many reviews, evaluate on a quarter as many (default: all)")
    data: str | None = setting(None, "the dataset's folder or tarball (default: $RNNBENCH_<DATASET>, the cache, a download)")
    device: str = setting("auto", DEVICE_HELP)
    compile: bool = setting(False, "fused groups: the LSTM's per-step work as torch.compile'd kernels (for GPUs)")
    cuda_graphs: bool = setting(False, GRAPHS_HELP)

    def __post_init__(self) -> None:
        get_text_dataset(self.dataset)  # an unknown name is a one-line error here
        if self.model not in CLASSIFIERS:
            raise ConfigError(f"unknown model {self.model!r}; choose one of {', '.join(CLASSIFIERS)}")
        check_batching_and_device(self.batching, self.device)
        require_positive(lr=self.lr, epochs=self.epochs, batch_size=self.batch_size)
        require_positive(embed_dim=self.embed_dim, hidden_dim=self.hidden_dim, min_count=self.min_count)
        for name in ("max_vocab", "subset"):
            if getattr(self, name) is not None:
                require_positive(**{name: getattr(self, name)})
        require_momentum(self.momentum)
        require_seed(seed=self.seed, order_seed=self.order_seed, split_seed=self.split_seed)

    def reported_metrics(self) -> list[str]:
        """The metrics every epoch reports, for checking an objective before anything runs."""
        held_out = [M.TEST_LOSS, M.TEST_ACC] if self.final else [M.VAL_LOSS, M.VAL_ACC]
        return [M.TRAIN_LOSS, M.TRAIN_LOSS_SUM, M.TRAIN_ACC, *held_out, M.CHANCE_ACC]

    def headline(self) -> dict[str, str]:
        """The metrics `python -m rnnbench.train` shows per epoch, by their column header."""
        loss, acc = (M.TEST_LOSS, M.TEST_ACC) if self.final else (M.VAL_LOSS, M.VAL_ACC)
        return {M.TRAIN_LOSS: "train loss", loss: loss.replace("_", " "), acc: acc.replace("_", " ")}


@dataclass(frozen=True)
class GrammarConfig:
    """One grammar trial; the defaults are the study's settings.

    batch_size 32: with SGD at lr 1.0 and a per-token mean loss, 150,000 words make ~4,700 updates
    an epoch, which is what lets the model get near 100% valid samples within 2 epochs.
    grad_norm is the mean over the epoch's batches of the gradient norm before clipping."""

    dataset: str = setting("brackets", "the grammar the words come from", tuple(GRAMMARS))
    n: int = setting(150_000, "training words generated from the seed")
    lr: float = setting(1.0, "SGD learning rate")
    epochs: int = setting(10, "passes over the training words")
    batch_size: int = setting(32, "words per SGD step")
    batching: str = setting("bucket", "bucket: words of similar length share a batch; random: any", BATCHINGS)
    seed: int = setting(0, "seeds the words, the initial weights and the sampling")
    momentum: float = setting(0.0, "SGD momentum, in [0, 1)")
    order_seed: int = setting(0, "orders the length buckets' steps; trials trained as a group share it")
    cell: str = setting("lstm", "the recurrent cell", LM_CELLS)
    num_layers: int = setting(1, "stacked recurrent layers: 1, 2 or 3")
    embed_dim: int = setting(32, "token embedding size")
    hidden_dim: int = setting(16, "recurrent state size")
    mask_padding: bool = setting(True, "leave the padding out of the loss")
    clip_grad: float | None = setting(None, "clip the gradient norm to this (default: no clipping)")
    temperatures: tuple[float, ...] = setting((0.0, 0.25, 0.5, 0.75, 1.0), "sampling temperatures scored every epoch")
    num_samples: int = setting(100, "samples per temperature, for Synthesis and for Completion")
    max_len: int = setting(100, "tokens a sample may add, the end token included")
    device: str = setting("auto", DEVICE_HELP)
    compile: bool = setting(False, "the fused LSTM's per-step work as torch.compile'd kernels (for GPUs)")
    cuda_graphs: bool = setting(False, GRAPHS_HELP)

    def __post_init__(self) -> None:
        check_grammar(self.dataset)
        require_positive(
            n=self.n, lr=self.lr, epochs=self.epochs, batch_size=self.batch_size, embed_dim=self.embed_dim,
            hidden_dim=self.hidden_dim, num_samples=self.num_samples, max_len=self.max_len,
        )  # fmt: skip
        if self.cell not in LM_CELLS:
            raise ConfigError(f"unknown cell {self.cell!r}; choose one of {', '.join(LM_CELLS)}")
        if self.num_layers not in (1, 2, 3):
            raise ConfigError(f"num_layers must be 1, 2 or 3, got {self.num_layers}; the study used 1 to 3")
        if self.clip_grad is not None:
            require_positive(clip_grad=self.clip_grad)
        check_batching_and_device(self.batching, self.device)
        require_momentum(self.momentum)
        require_seed(seed=self.seed, order_seed=self.order_seed)
        if self.batch_size > self.n:
            raise ConfigError(
                f"batch_size {self.batch_size} is larger than the training set (n={self.n} words); "
                "pass a batch_size <= n or a larger n"
            )
        object.__setattr__(self, "temperatures", tuple(float(t) for t in self.temperatures))  # lists from JSON/flags
        if not self.temperatures or not all(t >= 0 and math.isfinite(t) for t in self.temperatures):
            raise ConfigError(f"temperatures must be >= 0, finite and not empty, got {self.temperatures}; e.g. 0 0.5 1")
        if len(set(self.temperatures)) < len(self.temperatures):
            raise ConfigError(f"temperatures repeat a value, got {self.temperatures}; give each temperature once")

    def reported_metrics(self) -> list[str]:
        """The metrics every epoch reports, for checking an objective before anything runs."""
        per_t = [f(t) for t in self.temperatures for f in (M.synth_acc, M.synth_distinct, M.compl_acc)]
        return [M.TRAIN_LOSS_SUM, M.LOSS_PER_TOKEN, M.HELD_OUT_LOSS_PER_TOKEN, M.GRAD_NORM, *per_t]

    def headline(self) -> dict[str, str]:
        """The metrics `python -m rnnbench.train` shows per epoch, by their column header: the
        losses, and the share of valid samples and completions at the hottest temperature."""
        t = max(self.temperatures)
        return {
            M.LOSS_PER_TOKEN: "train loss/token",
            M.HELD_OUT_LOSS_PER_TOKEN: "held-out loss/token",
            M.synth_acc(t): f"synth@{t:g}",
            M.compl_acc(t): f"compl@{t:g}",
        }
