"""Errors that carry a one-line message naming the problem and the fix; CLIs print them and exit 2.
They live here, apart from the code that raises them, so a CLI can catch them without importing
that code (and torch, Ray or scipy with it)."""


class ConfigError(ValueError):
    """A setting is out of range or unknown; raised before any data is read or training starts."""


class DataError(RuntimeError):
    """A data source is missing, not in the expected layout, corrupt, or fails its checksum."""


class ResultsError(ValueError):
    """The path is not an experiment, the experiment is empty, or a column or value does not exist.

    The message is one line that names the problem and, where it helps, what does exist.
    """


class StorageError(RuntimeError):
    """The experiment's storage became full, read-only or unwritable mid-run. The run stopped at
    once, leaving a state that `--resume` finishes from; the CLIs print it and exit 1 (errored)."""
