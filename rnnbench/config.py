"""Command-line flags made from an experiment's config dataclass, so defaults live in one place."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, NoReturn

HELP_WIDTH = 100  # --help lines, whatever the terminal: readable in a pager, a log or a README


def help_formatter(prog: str) -> argparse.HelpFormatter:
    """--help at HELP_WIDTH columns; descriptions keep their own line breaks (their examples)."""
    return argparse.RawDescriptionHelpFormatter(prog, width=HELP_WIDTH)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line naming the problem and where to look, exit 2;
    `--help` is HELP_WIDTH columns wide; and a flag is taken only when written in full, since a
    grid's `--seed 3` would otherwise silently mean `--seeds 3`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{"formatter_class": help_formatter, "allow_abbrev": False, **kwargs})

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def _scalar_type(annotation: Any) -> tuple[type, bool]:
    """The flag's element type and whether it takes a list, from a field's type hint."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _scalar_type(args[0])
    if origin in (tuple, list):
        return typing.get_args(annotation)[0], True
    return annotation, False


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def shown(value: Any) -> str:
    """A value as it is typed on the command line: `true`, `0.1 0.3`, `mlp`."""
    if isinstance(value, bool):
        return str(value).lower()
    return " ".join(map(shown, value)) if isinstance(value, (list, tuple)) else str(value)


def field_help(field: dataclasses.Field) -> str:
    """The field's meaning and default; a None default is described by the meaning itself."""
    meaning = field.metadata["help"]
    return meaning if field.default is None else f"{meaning} (default: {shown(field.default)})"


def add_config_args(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """Add one `--field-name` flag per dataclass field, its help and choices from the field's
    metadata (rnnbench.train.configs.setting). Flags not given stay out of the namespace, so the
    dataclass supplies its own defaults and callers can tell which flags the user set."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        kind, many = _scalar_type(hints[field.name])
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            dest=field.name,
            default=argparse.SUPPRESS,
            help=field_help(field),
            type=_parse_bool if kind is bool else kind,
            choices=field.metadata["choices"],
            metavar="{true,false}" if kind is bool else None,
            nargs="+" if many else None,
        )


def given_config(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The config fields the user set on the command line; list flags become tuples like the defaults."""
    values = {}
    for field in dataclasses.fields(cls):
        if hasattr(args, field.name):
            value = getattr(args, field.name)
            values[field.name] = tuple(value) if isinstance(value, list) else value
    return values
