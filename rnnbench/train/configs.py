"""The trial configs of the training loops, apart from the loops so that they import no torch.

Every CLI builds its flags from these dataclasses (rnnbench.config), so `--help` and a bad flag
answer without the second or more that importing torch takes; the model registries they check
names against (rnnbench.models) are imported only when a config is built."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rnnbench import metrics as M
from rnnbench.data.datasets import get_text_dataset
from rnnbench.data.grammars import check_grammar
from rnnbench.errors import ConfigError

MAX_SEED = 2**32 - 1  # numpy and torch both take seeds up to here


def require_positive(**values: float | int) -> None:
    """Raise a one-line ConfigError for the first value that is not a finite number > 0."""
    for name, value in values.items():
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"{name} must be > 0 and finite, got {value!r}; pass a positive {name}")


def require_non_negative(**values: float | int) -> None:
    """Raise a one-line ConfigError for the first value that is not a finite number >= 0."""
    for name, value in values.items():
        if not (value >= 0 and math.isfinite(value)):
            raise ConfigError(f"{name} must be >= 0 and finite, got {value!r}; pass a non-negative {name}")


def require_seed(**seeds: int) -> None:
    for name, value in seeds.items():
        if not 0 <= value <= MAX_SEED:
            raise ConfigError(f"{name} must be >= 0 and <= {MAX_SEED}, got {value}; pass a seed in that range")


def check_batching_and_device(batching: str, device: str) -> None:
    """The two names both loops take: how batches are cut, and where the trial runs."""
    if batching not in ("bucket", "random"):
        raise ConfigError(f"unknown batching {batching!r}; use 'bucket' or 'random'")
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda[:N]")


@dataclass(frozen=True)
class ClassifierConfig:
    """One text-classifier trial (IMDB by default). Defaults are the study's settings."""

    model: str = "lstm"  # mlp, elman, elman_naive, lstm or gru
    dataset: str = "imdb"  # a text dataset of rnnbench.data.datasets
    lr: float = 0.1
    epochs: int = 10
    batch_size: int = 32
    seed: int = 0
    momentum: float = 0.0
    embed_dim: int = 300
    hidden_dim: int = 300
    batching: str = "bucket"  # bucket (similar lengths together) or random
    order_seed: int = 0  # orders the length buckets' steps; trials trained as a group share it
    final: bool = False  # False: train 20,000 / val 5,000; True: official train 25,000 / test 25,000
    split_seed: int = 0  # draws the validation split; keep it fixed across trials
    max_vocab: int | None = None
    min_count: int = 1
    subset: int | None = None  # train on this many reviews (and evaluate on a quarter as many)
    data: str | None = None  # the dataset's folder or tarball; None: $RNNBENCH_<DATASET>, cache, download
    device: str = "auto"
    compile: bool = False  # fused groups: the LSTM's per-step elementwise work as torch.compile'd kernels (for GPUs)

    def __post_init__(self) -> None:
        from rnnbench.models import CLASSIFIERS  # here, not at the top: see the module docstring

        get_text_dataset(self.dataset)  # an unknown name is a one-line error here
        if self.model not in CLASSIFIERS:
            raise ConfigError(f"unknown model {self.model!r}; choose one of {', '.join(CLASSIFIERS)}")
        check_batching_and_device(self.batching, self.device)
        require_positive(lr=self.lr, epochs=self.epochs, batch_size=self.batch_size)
        require_positive(embed_dim=self.embed_dim, hidden_dim=self.hidden_dim, min_count=self.min_count)
        for name in ("max_vocab", "subset"):
            if getattr(self, name) is not None:
                require_positive(**{name: getattr(self, name)})
        require_non_negative(momentum=self.momentum)
        require_seed(seed=self.seed, order_seed=self.order_seed, split_seed=self.split_seed)

    def reported_metrics(self) -> list[str]:
        """The metrics every epoch reports, for checking an objective before anything runs."""
        held_out = [M.TEST_LOSS, M.TEST_ACC] if self.final else [M.VAL_LOSS, M.VAL_ACC]
        return [M.TRAIN_LOSS, M.TRAIN_LOSS_SUM, M.TRAIN_ACC, *held_out, M.CHANCE_ACC]


@dataclass(frozen=True)
class GrammarConfig:
    """One grammar trial; the defaults are the study's settings.

    batch_size 32: with SGD at lr 1.0 and a per-token mean loss, 150,000 words make ~4,700 updates
    an epoch, which is what lets the model get near 100% valid samples within 2 epochs.
    grad_norm is the mean over the epoch's batches of the gradient norm before clipping.
    max_len bounds the tokens a sample may add, `.end` included."""

    dataset: str = "brackets"
    n: int = 150_000
    lr: float = 1.0
    epochs: int = 10
    batch_size: int = 32
    batching: str = "bucket"
    seed: int = 0
    momentum: float = 0.0
    order_seed: int = 0  # orders the length buckets' steps; trials trained as a group share it
    cell: str = "lstm"  # lstm or gru (rnnbench.models.LM_CELLS)
    num_layers: int = 1
    embed_dim: int = 32
    hidden_dim: int = 16
    mask_padding: bool = True
    clip_grad: float | None = None
    temperatures: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    num_samples: int = 100
    max_len: int = 100
    device: str = "auto"
    compile: bool = False  # the fused LSTM's per-step elementwise work as torch.compile'd kernels (for GPUs)

    def __post_init__(self) -> None:
        from rnnbench.models import LM_CELLS  # here, not at the top: see the module docstring

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
        require_non_negative(momentum=self.momentum)
        require_seed(seed=self.seed, order_seed=self.order_seed)
        if self.batch_size > self.n:
            raise ConfigError(
                f"batch_size {self.batch_size} is larger than the training set (n={self.n} words); "
                "pass a batch_size <= n or a larger n"
            )
        object.__setattr__(self, "temperatures", tuple(float(t) for t in self.temperatures))  # lists from JSON/flags
        if not self.temperatures or not all(t >= 0 and math.isfinite(t) for t in self.temperatures):
            raise ConfigError(f"temperatures must be >= 0, finite and not empty, got {self.temperatures}; e.g. 0 0.5 1")

    def reported_metrics(self) -> list[str]:
        """The metrics every epoch reports, for checking an objective before anything runs."""
        per_t = [f(t) for t in self.temperatures for f in (M.synth_acc, M.synth_distinct, M.compl_acc)]
        return [M.TRAIN_LOSS_SUM, M.LOSS_PER_TOKEN, M.HELD_OUT_LOSS_PER_TOKEN, M.GRAD_NORM, *per_t]
