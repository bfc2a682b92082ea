"""Run a sweep script as its driver, frozen for good at a chosen point of its n-th pass there, so a
test can SIGKILL it exactly there instead of after a guessed sleep.

    python tests/killpoints.py POINT N SIGNAL_FILE -- SCRIPT [ARGS...]

One function of the driver process is wrapped (Ray's workers run unchanged); on its N-th call the
wrapper writes SIGNAL_FILE and then blocks forever. The caller waits for the file and kills the
process group. POINT is one of:

  ray-start              before `ray.init` runs
  first-report           before the driver processes a trial's result (TuneController._on_training_result)
  checkpoint-registered  right after Ray registers a trial's checkpoint (_CheckpointManager.register_checkpoint)
  checkpoint-deleted     right after Ray deletes a checkpoint beyond num_to_keep (checkpoint_manager._delete_fs_path)
  summary                at the start of the closing report (summary.summarize; search.report for a search)
"""

from __future__ import annotations

import functools
import os
import runpy
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def targets(point: str) -> tuple[list[tuple[Any, str]], bool]:
    """The (owner, attribute) pairs to wrap for a point, and whether to stop after the call (else before)."""
    if point == "ray-start":
        import ray

        return [(ray, "init")], False
    if point == "first-report":
        from ray.tune.execution.tune_controller import TuneController

        return [(TuneController, "_on_training_result")], False
    if point == "checkpoint-registered":
        from ray.train._internal.checkpoint_manager import _CheckpointManager

        return [(_CheckpointManager, "register_checkpoint")], True
    if point == "checkpoint-deleted":
        # register_checkpoint calls the module's own name for it, so that is the one to wrap
        import ray.train._internal.checkpoint_manager as checkpoint_manager

        return [(checkpoint_manager, "_delete_fs_path")], True
    if point == "summary":
        import rnnbench.sweep.search
        import rnnbench.sweep.summary

        # both CLIs import these names inside run(), after this patch
        return [(rnnbench.sweep.summary, "summarize"), (rnnbench.sweep.search, "report")], False
    raise SystemExit(f"error: unknown kill point {point!r}; see tests/killpoints.py")


def freeze(signal_file: Path) -> None:
    """Tell the waiting test where we are (written whole, then renamed), then never return."""
    partial = signal_file.with_name(signal_file.name + ".partial")
    partial.write_text(f"{os.getpid()}\n")
    partial.replace(signal_file)
    threading.Event().wait()


def arm(point: str, n: int, signal_file: Path) -> None:
    """Wrap the point's functions; their calls are counted together."""
    pairs, after = targets(point)
    calls = 0

    def wrap(original: Callable) -> Callable:
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            mine = calls
            if mine == n and not after:
                freeze(signal_file)
            result = original(*args, **kwargs)
            if mine == n and after:
                freeze(signal_file)
            return result

        return wrapper

    for owner, attribute in pairs:
        setattr(owner, attribute, wrap(getattr(owner, attribute)))


def main(argv: list[str]) -> None:
    if len(argv) < 5 or argv[3] != "--":
        raise SystemExit("usage: python tests/killpoints.py POINT N SIGNAL_FILE -- SCRIPT [ARGS...]")
    point, n, signal_file, script, args = argv[0], int(argv[1]), Path(argv[2]), argv[4], argv[5:]
    # as the sweep CLIs do for a local Ray, and before the `import ray` below: Ray on 127.0.0.1 only
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    arm(point, n, signal_file)
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))  # as if the script had been run itself
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
