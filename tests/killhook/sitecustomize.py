"""Loaded at start-up by every Python process whose PYTHONPATH has this folder: the sweep driver
and Ray's workers, which inherit its environment. Arms the kill point named in the environment
(tests/killpoints.py); does nothing without one."""

import os

if os.environ.get("RNNBENCH_KILLPOINT"):
    import importlib.util
    import sys
    from pathlib import Path

    _spec = importlib.util.spec_from_file_location("rnnbench_killpoints", Path(__file__).resolve().parents[1] / "killpoints.py")
    _module = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    _module.install()
