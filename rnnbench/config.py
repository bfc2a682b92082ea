"""Command-line flags made from an experiment's config dataclass, so defaults live in one place."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line naming the problem and where to look, exit 2."""

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


def add_config_args(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """Add one `--field-name` flag per dataclass field. Flags not given stay out of the namespace,
    so the dataclass supplies its own defaults and callers can tell which flags the user set."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        kind, many = _scalar_type(hints[field.name])
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        flag = "--" + field.name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": field.name, "default": argparse.SUPPRESS, "help": f"default: {default}"}
        kwargs["type"] = _parse_bool if kind is bool else kind
        if many:
            kwargs["nargs"] = "+"
        parser.add_argument(flag, **kwargs)


def given_config(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The config fields the user set on the command line; list flags become tuples like the defaults."""
    values = {}
    for field in dataclasses.fields(cls):
        if hasattr(args, field.name):
            value = getattr(args, field.name)
            values[field.name] = tuple(value) if isinstance(value, list) else value
    return values


def config_from_args(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """Build the dataclass from parsed flags, its own defaults filling in the rest."""
    return cls(**{**given_config(cls, args), **overrides})
