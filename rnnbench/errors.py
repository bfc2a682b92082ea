"""Errors that carry a one-line message naming the problem and the fix; CLIs print them and exit 2."""


class ConfigError(ValueError):
    """A setting is out of range or unknown; raised before any data is read or training starts."""


class DataError(RuntimeError):
    """A data source is missing, not in the expected layout, corrupt, or fails its checksum."""
