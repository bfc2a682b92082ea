"""Kill a sweep at an exact point of OUR writes (or of the driver's start and report), in whichever
process makes it, so a test can SIGKILL it there instead of after a guessed sleep.

A point is a call of one of rnnbench's own functions:

  ray-start     before `ray.init` (the driver)
  before-state  before a member's state file is written (record.write_atomic of a state-<n>.pt; a Ray worker)
  after-state   right after that state file is in place
  before-row    before a member's row is appended (record.append_row; a Ray worker)
  after-row     right after the row is appended (before its states are pruned)
  after-prune   right after a member's old states are pruned (record.prune_states; a Ray worker)
  tell          before the search tells Optuna a configuration's score (optuna.Study.tell; the driver)
  summary       before the closing report (sweep.summary.summarize, or sweep.search.report for a search)

How it reaches Ray's workers: the harness runs the sweep with tests/killhook on PYTHONPATH and the
point in the environment (`armed`). Ray's workers inherit the driver's environment, so every Python
process of the run imports tests/killhook/sitecustomize.py at start-up, which calls `install()`
here. That adds an import hook and nothing else (cheap in Ray's helper processes): when a module
that owns the point is imported, its function is wrapped. Passes are counted across processes in
a counter file (fcntl.flock, one line appended per pass). The N-th pass writes the signal file
(JSON: point, n, pid, argv, what) and blocks forever; so does every later pass, in any process,
so nothing is written past the point. The test (`killed_at`) waits for the signal file and
SIGKILLs every process of the driver's session (start_new_session): the driver, the local Ray it
started and Ray's workers (which move to process groups of their own, so a killpg alone would leave
them to die with their raylet, a moment later).

`Paused` is the same with a pause instead of a kill: the N-th pass waits for a release file (the
other passes go on), so a test can change the world at that point (fill the disk) and let it run.

No private name of Ray or Optuna is used: only public functions of rnnbench, `ray.init` and
`optuna.Study.tell` are wrapped. This module imports the standard library only, at module level.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import importlib.abc
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HOOK_DIR = Path(__file__).resolve().parent / "killhook"
POINT, COUNT, SIGNAL, COUNTER = (
    "RNNBENCH_KILLPOINT",
    "RNNBENCH_KILLPOINT_N",
    "RNNBENCH_KILLPOINT_SIGNAL",
    "RNNBENCH_KILLPOINT_COUNTER",
)
PAUSE = "RNNBENCH_KILLPOINT_PAUSE"  # set: the n-th pass waits for the release file instead of blocking for good
DEADLINE_S = 300.0  # a generous bound on any wait; each wait ends as soon as its condition holds
STATE_FILE = re.compile(r"state-\d+\.pt")


@dataclasses.dataclass(frozen=True)
class Target:
    """One function to wrap: `module.attribute`, stopping `when` ("before" or "after") the call,
    counting only calls that `counts(args, kwargs)` accepts."""

    module: str
    attribute: str
    when: str = "before"
    counts: Callable[[tuple, dict], bool] | None = None
    what: Callable[[tuple, dict], str] | None = None


def _state_path(args: tuple, kwargs: dict) -> bool:
    path = kwargs.get("path", args[1] if len(args) > 1 else "")
    return bool(STATE_FILE.fullmatch(str(path).rsplit("/", 1)[-1]))


def _path(args: tuple, kwargs: dict) -> str:
    return str(kwargs.get("path", args[1] if len(args) > 1 else ""))


def _folder(args: tuple, kwargs: dict) -> str:
    return str(kwargs.get("folder", args[1] if len(args) > 1 else ""))


def _row(args: tuple, kwargs: dict) -> str:
    row = kwargs.get("row", args[2] if len(args) > 2 else {})
    return f"{_folder(args, kwargs)} epoch {row.get('epoch')}"


POINTS: dict[str, list[Target]] = {
    "ray-start": [Target("ray", "init")],
    "before-state": [Target("rnnbench.record", "write_atomic", "before", _state_path, _path)],
    "after-state": [Target("rnnbench.record", "write_atomic", "after", _state_path, _path)],
    "before-row": [Target("rnnbench.record", "append_row", "before", None, _row)],
    "after-row": [Target("rnnbench.record", "append_row", "after", None, _row)],
    "after-prune": [Target("rnnbench.record", "prune_states", "after", None, _folder)],
    # optuna.Study is defined in optuna.study.study and re-exported; the class is what is patched
    "tell": [Target("optuna.study.study", "Study.tell")],
    # the CLIs import these names when they import the modules, after the hook wrapped them
    "summary": [Target("rnnbench.sweep.summary", "summarize"), Target("rnnbench.sweep.search", "report")],
}
WRITE_POINTS = ("before-state", "after-state", "before-row", "after-row", "after-prune")  # in Ray's workers


# --- inside the sweep's processes ---------------------------------------------------------------


def _release_file(signal_file: Path) -> Path:
    return signal_file.with_name("release")


def _pass(point: str, n: int, signal_file: Path, counter: Path, what: str) -> None:
    """Count this pass; on the n-th write the signal file, and from the n-th on never return (or,
    to pause, wait on the n-th for the release file and let every pass go on)."""
    with open(counter, "a+") as out:
        fcntl.flock(out, fcntl.LOCK_EX)
        out.write(f"{os.getpid()} {what}\n")
        out.flush()
        out.seek(0)
        count = len(out.read().splitlines())
        fcntl.flock(out, fcntl.LOCK_UN)
    if count < n:
        return
    if count == n:
        info = {"point": point, "n": n, "pid": os.getpid(), "argv": sys.argv, "what": what}
        partial = signal_file.with_name(signal_file.name + ".partial")
        partial.write_text(json.dumps(info))
        partial.replace(signal_file)  # whole, or not there
    if os.environ.get(PAUSE):
        while count == n and not _release_file(signal_file).exists():
            time.sleep(0.05)
        return
    threading.Event().wait()


def _wrap(original: Callable, target: Target, point: str, n: int, signal_file: Path, counter: Path) -> Callable:
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        counted = target.counts is None or target.counts(args, kwargs)
        what = target.what(args, kwargs) if counted and target.what else ""
        if counted and target.when == "before":
            _pass(point, n, signal_file, counter, what)
        result = original(*args, **kwargs)
        if counted and target.when == "after":
            _pass(point, n, signal_file, counter, what)
        return result

    wrapper.__killpoint__ = True  # type: ignore[attr-defined]
    return wrapper


def _patch(module: Any, target: Target, point: str, n: int, signal_file: Path, counter: Path) -> None:
    owner = module
    *path, name = target.attribute.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    if not getattr(original, "__killpoint__", False):
        setattr(owner, name, _wrap(original, target, point, n, signal_file, counter))


class _Loader(importlib.abc.Loader):
    """The module's own loader, then the patch."""

    def __init__(self, loader: Any, patch: Callable[[Any], None]):
        self.loader, self.patch = loader, patch

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        self.patch(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_resource_reader, ... of the real loader
        return getattr(self.loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the hooked modules with the other finders and wraps their loader."""

    def __init__(self, patches: dict[str, Callable[[Any], None]]):
        self.patches = patches

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name not in self.patches:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _Loader(spec.loader, self.patches[name])
        return spec


def install() -> None:
    """Arm the point named in the environment in this process (called by killhook/sitecustomize.py)."""
    point = os.environ.get(POINT)
    if not point:
        return
    n, signal_file, counter = int(os.environ[COUNT]), Path(os.environ[SIGNAL]), Path(os.environ[COUNTER])
    patches: dict[str, Callable[[Any], None]] = {}
    for target in POINTS[point]:

        def patch(module: Any, target: Target = target) -> None:
            _patch(module, target, point, n, signal_file, counter)

        if target.module in sys.modules:  # already imported (not at start-up, but be exact)
            patch(sys.modules[target.module])
        else:
            patches[target.module] = patch
    sys.meta_path.insert(0, _Finder(patches))


# --- in the test --------------------------------------------------------------------------------


@dataclasses.dataclass
class Reached:
    """Where a killed run stopped: the process that reached the point, and the run's stderr."""

    point: str
    n: int
    pid: int
    argv: list[str]
    what: str
    driver_pid: int
    stderr: str

    @property
    def in_driver(self) -> bool:
        return self.pid == self.driver_pid

    @property
    def in_ray_worker(self) -> bool:
        """A process of Ray's, not the driver: Ray's workers run ray/_private/workers/default_worker.py."""
        return not self.in_driver and any("default_worker.py" in arg for arg in self.argv)


def armed(point: str, n: int, folder: Path, pause: bool = False) -> dict[str, str]:
    """The environment (on top of os.environ) that arms `point` at its n-th pass in every process
    (to block there for good, or with `pause` until `folder`/release exists)."""
    if point not in POINTS:
        raise ValueError(f"unknown kill point {point!r}; one of {', '.join(POINTS)}")
    if n < 1:
        raise ValueError(f"the pass to stop at counts from 1, got {n}")
    folder.mkdir(parents=True, exist_ok=True)
    pythonpath = os.pathsep.join(p for p in (str(HOOK_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return {
        "PYTHONPATH": pythonpath,
        POINT: point,
        COUNT: str(n),
        SIGNAL: str(folder / "reached.json"),
        COUNTER: str(folder / "passes.txt"),
        **({PAUSE: "1"} if pause else {}),
    }


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    """Poll `condition` every 0.1 s until it holds; fail naming `what` after `deadline_s`."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {deadline_s:g} s")
        time.sleep(0.1)


def session(sid: int) -> list[int]:
    """The live (not zombie) processes of a session, from /proc. A sweep started with
    start_new_session=True is its session: the driver, the local Ray it starts, and Ray's workers
    (which move to process groups of their own, but stay in the session)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(proc.name))
    return found


def kill_session(sid: int) -> None:
    """SIGKILL the session's process group (the driver, Ray's raylet and GCS), then every other
    process of the session by pid (Ray's workers), until none is left alive."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(sid, signal.SIGKILL)

    def gone() -> bool:
        for pid in session(sid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return not session(sid)

    wait_for(gone, f"the processes of session {sid} to end")


def killed_at(point: str, n: int, argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Reached:
    """Run `argv` (a sweep: [python, script, args...]) until the n-th pass at `point` in any of
    its processes, SIGKILL its processes there (the driver and its local Ray), wait until no
    process of its session is left, and say where it stopped."""
    folder = log.with_suffix(".kill")
    with log.open("w") as stderr:
        driver = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, **(env or {}), **armed(point, n, folder)},
            start_new_session=True,  # its own process group: the driver and the Ray it starts
        )
        signal_file = folder / "reached.json"
        try:
            wait_for(lambda: signal_file.exists() or driver.poll() is not None, f"{point} #{n} of {' '.join(argv[1:3])}")
        finally:
            kill_session(driver.pid)
            driver.wait()
    text = log.read_text()
    assert signal_file.exists(), f"never reached {point} #{n} (exit {driver.returncode}): {text[-3000:]}"
    info = json.loads(signal_file.read_text())
    return Reached(point, n, info["pid"], info["argv"], info["what"], driver.pid, text)


def passes(reached_folder: Path) -> list[str]:
    """The passes a killed run counted, `pid what` each."""
    counter = reached_folder / "passes.txt"
    return counter.read_text().splitlines() if counter.exists() else []


class Paused:
    """A run paused at the n-th pass at `point` (in whichever process), for the test to change the
    world there (fill the disk, remount it read-only) before `release()` lets it go on. As a
    context manager it kills what is left of the run on the way out."""

    def __init__(self, point: str, n: int, argv: Sequence[str], log: Path, env: dict[str, str] | None = None):
        self.folder, self.log = log.with_suffix(".pause"), log
        self.stderr = log.open("w")
        self.driver = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
            env={**os.environ, **(env or {}), **armed(point, n, self.folder, pause=True)},
            start_new_session=True,
        )
        signal_file = self.folder / "reached.json"
        wait_for(lambda: signal_file.exists() or self.driver.poll() is not None, f"{point} #{n} of {' '.join(argv[1:3])}")
        assert signal_file.exists(), f"never reached {point} #{n} (exit {self.driver.returncode}): {log.read_text()[-3000:]}"
        info = json.loads(signal_file.read_text())
        self.reached = Reached(point, n, info["pid"], info["argv"], info["what"], self.driver.pid, "")

    def release(self) -> None:
        (self.folder / "release").touch()

    def wait(self) -> tuple[int, str]:
        """Wait for the run to end by itself: its exit code and stderr."""
        wait_for(lambda: self.driver.poll() is not None, "the released run to end")
        self.stderr.close()
        return self.driver.returncode, self.log.read_text()

    def __enter__(self) -> Paused:
        return self

    def __exit__(self, *exc: Any) -> None:
        kill_session(self.driver.pid)
        self.driver.wait()
        self.stderr.close()
