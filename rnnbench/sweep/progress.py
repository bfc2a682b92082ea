"""The sweep's status line: members done, how far running trials are into their epoch, the best
setting so far by the task's one rule (objective and --how; diverged members never count) and an
ETA learned from the member-epochs finished in this run."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import ray
from ray import tune

from rnnbench.errors import ConfigError
from rnnbench.sweep.members import MEMBERS
from rnnbench.sweep.trainable import BOARD

STATUS_EVERY_S = "RNNBENCH_STATUS_EVERY_S"  # environment: seconds between status lines (default 20)
WIDTH = 100  # columns of a status line


@ray.remote(num_cpus=0)
class BatchBoard:
    """Where each running trial is in its current epoch, {trial id: (epoch, batches done, batches)}:
    trials post to it (rnnbench.sweep.trainable) and the status line reads it. A Tune result per
    batch would do the same but wake the schedulers; a file would not reach the driver from
    another node."""

    def __init__(self) -> None:
        self.places: dict[str, tuple[int, int, int]] = {}

    def post(self, trial_id: str, epoch: int, done: int, total: int) -> None:
        self.places[trial_id] = (epoch, done, total)

    def read(self) -> dict[str, tuple[int, int, int]]:
        return self.places


def status_every_s() -> float:
    """The status line's interval: $RNNBENCH_STATUS_EVERY_S, else 20 s."""
    value = os.environ.get(STATUS_EVERY_S, "20")
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise ConfigError(f"{STATUS_EVERY_S} must be a number of seconds >= 0, got {value!r}; set it to e.g. 20")
    return seconds


def best_setting(curves: dict[str, dict[int, list[float]]], sign: int, how: str) -> tuple[str, float, int] | None:
    """The setting whose seed-mean curve scores best by `how` (its best epoch, or its last), with
    that score and its number of seeds there; None before any value."""
    scored = []
    for setting, curve in curves.items():
        means = {epoch: sum(values) / len(values) for epoch, values in curve.items() if values}
        if means:
            epoch = max(means, key=lambda e: sign * means[e]) if how == "peak" else max(means)
            scored.append((setting, means[epoch], len(curve[epoch])))
    return max(scored, key=lambda s: sign * s[1], default=None)


class Progress(tune.Callback):
    """One status line at most every `every_s` seconds, and `beat()` (the driver's heartbeat) with it."""

    def __init__(
        self,
        metric: str,
        mode: str,
        how: str,
        total: int,
        done_before: int = 0,
        beat: Callable[[], None] = lambda: None,
        every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.metric, self.sign, self.how = metric, (1 if mode == "max" else -1), how
        self.total, self.done_before, self.beat = total, done_before, beat
        self.every_s = status_every_s() if every_s is None else every_s
        self.clock = clock
        self.start = clock()
        self.last = -float("inf")
        self.epochs: dict[str, int] = {}  # member -> newest epoch reported in this run
        self.finished: list[tuple[float, int]] = []  # (clock, member-epochs of this run) after each result
        self.curves: dict[str, dict[int, list[float]]] = {}  # setting -> epoch -> members' values
        self.board: Any = None  # the BatchBoard's handle, from setup() on (it lives while we hold it)
        self.reading: Any = None  # the board's answer on its way, asked for by the previous line
        self.places: dict[str, tuple[int, int, int]] = {}  # the board's latest answer

    def setup(self, **info: Any) -> None:
        self.start = self.clock()
        self.board = BatchBoard.options(name=BOARD, get_if_exists=True).remote()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.observe(trial.trial_id, result)

    def observe(self, trial_id: str, result: dict[str, Any]) -> None:
        """Take in one trial's epoch: each member's newest epoch and its objective value."""
        for name, report in (result.get(MEMBERS) or {}).items():
            member = f"{trial_id}/{name}"
            self.epochs[member] = max(self.epochs.get(member, 0), int(report["epoch"]))
            value = report.get(self.metric)
            if report.get("diverged") is not True and isinstance(value, (int, float)) and value == value:
                curve = self.curves.setdefault(report["setting"], {})
                values = curve.setdefault(int(report["epoch"]), [])
                values.append(float(value))
        self.finished.append((self.clock(), sum(self.epochs.values())))

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = self.clock()
        if now - self.last >= self.every_s:
            self.last = now
            print(self.line(trials, now), file=sys.stderr, flush=True)
            self.beat()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        print(self.line(trials, self.clock()), file=sys.stderr, flush=True)
        if self.board is not None:
            ray.kill(self.board)
            self.board = None

    def done(self) -> int:
        """Member-epochs in the record: those from before this run, and this run's."""
        return self.done_before + sum(self.epochs.values())

    def line(self, trials: list, now: float) -> str:
        """The status, at most WIDTH columns a line: counts, the running trials' mean share of their
        epoch and the ETA on the first; the best setting so far on a second, once there is one."""
        status = [trial.status for trial in trials]
        done = min(self.done(), self.total) if self.total else self.done()
        parts = [
            f"[{time.strftime('%H:%M:%S')}] member-epochs {done}/{self.total or '?'}",
            f"trials {status.count('RUNNING')} running, {status.count('PENDING')} pending, {status.count('TERMINATED')} ended",
        ]
        within = self.within_epoch([trial for trial in trials if trial.status == "RUNNING"])
        if within:
            parts.append(f"{100 * sum(within.values()) / len(within):.0f}% into their epoch")
        eta = self.eta_s(now)
        if eta is not None:
            parts.append(f"ETA {eta / 60:.0f} min")
        lines = [" | ".join(parts)]
        best = best_setting(self.curves, self.sign, self.how)
        if best is not None:
            lines.append(f"  best so far: {self.metric} {best[1]:.4f}, {best[0]} ({self.how} epoch, n = {best[2]} seeds)")
        return "\n".join(text if len(text) <= WIDTH else text[: WIDTH - 3] + "..." for text in lines)

    def eta_s(self, now: float) -> float | None:
        """Seconds left at the pace of the later half of this run: member-epochs still to train over
        those finished per second since the run's midpoint (since its start while nothing had
        finished by then). A whole-run pace stays low all run long when cheap members finish first
        (an IMDB grid's MLPs); epochs from before a resume do not count toward the pace."""
        ran, done = sum(self.epochs.values()), self.done()
        if not ran or not self.total or done >= self.total or now <= self.start:
            return None
        midpoint = (self.start + now) / 2
        before = max((count for at, count in self.finished if at <= midpoint), default=0)
        since, recent = (midpoint, ran - before) if before and ran > before else (self.start, ran)
        return (now - since) / recent * (self.total - done)

    def within_epoch(self, running: list) -> dict[Any, float]:
        """Each running trial's share of its current epoch's batches done, from the board. The line
        never waits for the board: it uses the latest answer that has arrived and asks for the next."""
        if not running or self.board is None:
            return {}
        try:
            if self.reading is not None and ray.wait([self.reading], timeout=0)[0]:
                self.places = ray.get(self.reading)
                self.reading = None
            if self.reading is None:
                self.reading = self.board.read.remote()
        except ray.exceptions.RayActorError:
            self.board = None  # a lost board costs the lines their within-epoch part, never the sweep
        shares = {}
        for trial in running:
            epoch, done, total = self.places.get(trial.trial_id, (0, 0, 1))
            if epoch > int((trial.last_result or {}).get("epoch", 0)):
                shares[trial] = done / total
        return shares
