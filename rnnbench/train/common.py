"""Pieces both training loops share: device choice, seeding, RNG state, checkpoint files and the
batch-progress hook."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import torch

# Called after every training batch with (batches done, batches in the epoch), so a caller can show
# progress within an epoch that takes minutes; the loops never wait for it or look at what it does.
OnBatch: TypeAlias = Callable[[int, int], None]


def pick_device(name: str = "auto") -> torch.device:
    """`auto` takes the GPU when torch sees one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch (model init, sampling) and return the numpy generator that orders batches."""
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """Everything random that the next epoch depends on, for checkpoints."""
    state: dict[str, Any] = {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write atomically (temp file + rename) so a crash never leaves a half checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as tmp:
        torch.save(state, tmp)
    os.replace(tmp.name, path)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load on the CPU; the loops move tensors to their own device."""
    return torch.load(path, map_location="cpu", weights_only=False)


class TrainingRun:
    """What both loops share: a config, model, optimizer, RNG, epoch counter and diverged flag,
    the epoch loop, and how a run goes into a checkpoint and comes back out of one. Subclasses set
    these in __init__, name their config class and data loader, and define `run_epoch()`, which
    calls `on_batch` (when set) after every training batch."""

    config_cls: type  # the run's config dataclass
    load_data: Callable[..., Any]  # (config, vocab=None) -> the data a run of that config trains on
    config: Any
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator
    epoch: int
    diverged: bool
    on_batch: OnBatch | None = None

    def run_epoch(self) -> dict[str, Any]:
        raise NotImplementedError

    def epochs(self) -> Iterator[dict[str, Any]]:
        """Train epoch after epoch, one metrics dict each; stops after config.epochs or right
        after a diverged epoch."""
        while self.epoch < self.config.epochs and not self.diverged:
            yield self.run_epoch()

    @classmethod
    def restore(cls, path: str | os.PathLike, config: Any = None, data: Any = None) -> Any:
        """Continue the run saved at `path`, under its saved config unless a changed `config` is
        given: e.g. more epochs, another lr or momentum (which then win over the saved
        optimizer's), or `final=True` to go on on the official train/test split, the data then
        encoded with the checkpoint's vocabulary."""
        state = load_checkpoint(path)
        config = config or cls.config_cls(**state["config"])
        if data is None:
            vocab = state.get("vocab")
            data = cls.load_data(config, vocab=None if vocab is None else tuple(vocab))
        run = cls(config, data)
        run.load_state_dict(state)
        for group in run.optimizer.param_groups:
            group.update(lr=config.lr, momentum=getattr(config, "momentum", group.get("momentum", 0)))
        return run

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": dataclasses.asdict(self.config),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_state(self.rng),
            "epoch": self.epoch,
            "diverged": self.diverged,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_rng_state(self.rng, state["rng"])
        self.epoch = state["epoch"]
        self.diverged = state["diverged"]

    def save(self, path: str | os.PathLike) -> None:
        save_checkpoint(self.state_dict(), path)
