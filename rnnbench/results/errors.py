"""The one error the results layer raises for bad input; the CLI prints it on one line and exits 2."""


class ResultsError(ValueError):
    """The path is not an experiment, the experiment is empty, or a column or value does not exist.

    The message is one line that names the problem and, where it helps, what does exist.
    """


class ResultsWarning(UserWarning):
    """Something was skipped while reading (a truncated result line, an unreadable state file)."""
