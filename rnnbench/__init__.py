"""rnnbench: seed-aware sweeps of small RNN experiments with honest statistics."""

__version__ = "0.1.0"
