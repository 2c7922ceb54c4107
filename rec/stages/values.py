"""Option values converted without pydantic, for the start-up time of every command.

typer >= 0.29 converts each option's value (even a default, even None) through a pydantic
TypeAdapter, built on first use. Importing pydantic and building the adapters costs about
half of `import numpy`, on every run: `rec recommend 42` is mostly start-up. rec's options
are all str, int, float, bool or lists of them, which `PlainValues` converts as pydantic
does, with the same messages; `plain_params` installs it where typer would build an adapter
(a parameter of another type, or an older typer without adapters, keeps typer's own).
"""

from __future__ import annotations

import math
from typing import List, Optional

import typer


class PlainValues:
    """An option's value as a str, int, float or bool (or a list of them), in a range when
    the option has one: what typer's pydantic adapter returns for these types, with the
    same error messages."""

    MESSAGES = {int: "Input should be a valid integer, unable to parse string as an integer",
                float: "Input should be a valid number, unable to parse string as a number",
                bool: "Input should be a valid boolean, unable to interpret input"}
    BOOLS = {**dict.fromkeys(("1", "on", "t", "true", "y", "yes"), True),
             **dict.fromkeys(("0", "off", "f", "false", "n", "no"), False)}

    def __init__(self, kind: type, low=None, high=None):
        self.kind, self.low, self.high = kind, low, high

    def coerce(self, value, param, ctx):
        if value is None:
            return () if param.multiple or param.nargs == -1 else None
        if isinstance(value, (list, tuple)):
            return [self.one(item, param, ctx) for item in value]
        return self.one(value, param, ctx)

    def one(self, value, param, ctx):
        if self.kind is str:
            return str(value)
        if self.kind is bool:  # a flag's value is a bool already; an envvar's is text
            if isinstance(value, (bool, int, float)) and value in (0, 1):
                return bool(value)
            if str(value).strip().lower() in self.BOOLS:
                return self.BOOLS[str(value).strip().lower()]
            raise typer.BadParameter(self.MESSAGES[bool], ctx=ctx, param=param)
        try:
            number = self.kind(value)
        except (TypeError, ValueError):
            number = self.integral(value)
            if number is None:
                raise typer.BadParameter(self.MESSAGES[self.kind], ctx=ctx, param=param)
        if self.high is not None and not number <= self.high:  # nan: out of any range
            raise typer.BadParameter(f"Input should be less than or equal to {self.high}",
                                     ctx=ctx, param=param)
        if self.low is not None and not number >= self.low:
            raise typer.BadParameter(f"Input should be greater than or equal to {self.low}",
                                     ctx=ctx, param=param)
        return number

    def integral(self, value) -> Optional[int]:
        """'5.0' as an int, as pydantic reads it."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        whole = self.kind is int and math.isfinite(number) and number.is_integer()
        return int(number) if whole and "e" not in str(value).lower() else None


def plain_params(params: list) -> list:
    """`params`, each given a PlainValues conversion where typer's would build a pydantic
    adapter for a plain type (typer >= 0.29: a lazily built `_runtime_param`)."""
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is not None and getattr(param, "_runtime_param", False) is None:
            plain = plain_values(descriptor)
            if plain is not None:
                param._runtime_param = plain
    return params


def plain_values(descriptor) -> Optional[PlainValues]:
    """PlainValues for a parameter of a plain type; None for anything else (typer's own)."""
    info, kind = descriptor.parameter_info, descriptor.annotation
    kind = {List[str]: str, List[int]: int, List[float]: float}.get(kind, kind)
    plain = (kind in (str, int, float, bool) and descriptor.file_annotation is None
             and not descriptor.is_path and not descriptor.is_choice
             and info.parser is None and not info.clamp)
    return PlainValues(kind, info.min, info.max) if plain else None
