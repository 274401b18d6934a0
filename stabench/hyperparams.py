"""Typed hyperparameters: dataclass fields with ranges, overrides, and `--set KEY=VALUE` parsing.

A field's type is bool, int, float, str, a `Literal[...]` of choices, or any of those `| None`
(written `none` on the command line). Numbers are finite; a field made with `hyperparameter(...)`
also declares its valid range.
"""
from __future__ import annotations

import dataclasses
import math
import operator
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from stabench.errors import StabenchError, did_you_mean

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_PLAIN = (bool, int, float, str)
_INT64 = (-2**63, 2**63 - 1)


def hyperparameter(default, *, at_least=None, above=None, at_most=None, below=None, identity: bool = True):
    """A dataclass field with a valid range; `identity=False` for a setting that never changes a result
    (where data lives), kept out of run_id and never applied when a record is read back."""
    bounds = {"at_least": at_least, "above": above, "at_most": at_most, "below": below}
    return dataclasses.field(default=default, metadata={"bounds": {k: v for k, v in bounds.items() if v is not None},
                                                        "identity": identity})


def field_types(params_class: type) -> dict[str, Any]:
    """The declared type of every field of a hyperparameter dataclass."""
    hints = typing.get_type_hints(params_class)
    return {field.name: hints[field.name] for field in dataclasses.fields(params_class)}


def _optional(kind: Any) -> tuple[Any, bool]:
    """(the type inside `X | None`, True) or (kind, False)."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if len(inner) == 1 and len(typing.get_args(kind)) == 2:
            return inner[0], True
    return kind, False


def _supported(kind: Any) -> bool:
    kind, _ = _optional(kind)
    return kind in _PLAIN or typing.get_origin(kind) is Literal


def check_params_class(params_class: type, owner: str) -> None:
    """Refuse, in one line, a hyperparameter dataclass with a field of a type `--set` cannot parse."""
    if not dataclasses.is_dataclass(params_class):
        raise StabenchError(f"{owner}: Params must be a dataclass, got {params_class!r}")
    for name, kind in field_types(params_class).items():
        if not _supported(kind):
            raise StabenchError(f"{owner}: hyperparameter `{name}` has type {kind}; supported: bool, int, float, "
                                "str, Literal[...], and any of those | None")
    try:
        params_class()
    except TypeError as error:
        raise StabenchError(f"{owner}: every hyperparameter needs a default ({error})") from None


def type_name(kind: Any) -> str:
    kind, optional = _optional(kind)
    if typing.get_origin(kind) is Literal:
        name = "one of " + ", ".join(map(str, typing.get_args(kind)))
    else:
        name = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(kind, str(kind))
    return name + (" or none" if optional else "")


def coerce(key: str, value: Any, kind: Any) -> Any:
    """`value` (a command-line string or a Python value) as the declared type, or a one-line error."""
    kind, optional = _optional(kind)
    if optional and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
        return None
    wrong = StabenchError(f"`{key}` expects {type_name(kind)}{' or none' if optional else ''}, got {value!r}")
    if typing.get_origin(kind) is Literal:
        choices = typing.get_args(kind)
        if value in choices:
            return value
        raise wrong
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise wrong
    if kind in (int, float):
        if isinstance(value, bool):
            raise wrong
        if isinstance(value, str):
            try:
                number = float(value) if kind is float or not value.strip().lstrip("+-").isdigit() else int(value)
            except ValueError:
                raise wrong from None
        elif isinstance(value, (int, float)):
            number = value
        else:
            raise wrong
        if isinstance(number, float) and not math.isfinite(number):
            raise StabenchError(f"`{key}` must be a finite number, got {value!r}")
        if kind is int:
            if isinstance(number, float):
                if not number.is_integer():
                    raise wrong
                number = int(number)
            if not _INT64[0] <= number <= _INT64[1]:  # what a tensor's size or a seed can take
                raise StabenchError(f"`{key}` must be between {_INT64[0]} and {_INT64[1]}, got {value!r}")
            return number
        return float(number)
    if kind is str:
        return str(value)
    raise StabenchError(f"hyperparameter `{key}` has unsupported type {kind}")


_BOUNDS = {"at_least": (operator.ge, ">="), "above": (operator.gt, ">"), "at_most": (operator.le, "<="),
           "below": (operator.lt, "<")}


def check_bounds(params) -> None:
    """Every field inside its declared range, or a one-line error naming the field and the range."""
    for field in dataclasses.fields(params):
        value, bounds = getattr(params, field.name), field.metadata.get("bounds", {})
        if value is None or not bounds:
            continue
        for kind, bound in bounds.items():
            holds, _ = _BOUNDS[kind]
            if not holds(value, bound):
                wanted = " and ".join(f"{_BOUNDS[k][1]} {b:g}" for k, b in bounds.items())
                raise StabenchError(f"`{field.name}` must be {wanted}, got {value:g}")


def parse_assignments(assignments) -> dict[str, str]:
    """`["eta=0.5", "lr=1e-3"]` as a dict of strings; a malformed item is a one-line error."""
    parsed = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise StabenchError(f"`--set {item}` should look like KEY=VALUE")
        parsed[key.strip()] = value.strip()
    return parsed


def apply_overrides(sections: dict[str, tuple[type, dict]], overrides: Mapping[str, Any], context: str):
    """Apply flat `overrides` to named sections of typed hyperparameters.

    `sections` maps a section name to (its dataclass, its current values). A key belongs to the one
    section that declares it. Returns the typed dataclass instance for each section, its ranges checked.
    """
    owner = {}
    for section, (params_class, _) in sections.items():
        for key in field_types(params_class):
            owner.setdefault(key, section)
    resolved = {section: dict(values) for section, (_, values) in sections.items()}
    for key, value in overrides.items():
        if key not in owner:
            valid = sorted(owner)
            raise StabenchError(f"unknown hyperparameter `{key}` for {context}.{did_you_mean(key, valid)} "
                                f"Valid keys: {', '.join(valid)}")
        section = owner[key]
        resolved[section][key] = coerce(key, value, field_types(sections[section][0])[key])
    made = {section: sections[section][0](**resolved[section]) for section in sections}
    for params in made.values():
        check_bounds(params)
    return made


def defaults(params_class: type) -> dict[str, Any]:
    """The declared default of every field."""
    return dataclasses.asdict(params_class())


def identity(params) -> dict[str, Any]:
    """The fields that make a run what it is (all but those declared `identity=False`)."""
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.metadata.get("identity", True)}


def environment(params) -> dict[str, Any]:
    """The fields declared `identity=False`: where things live on this machine."""
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params) if not f.metadata.get("identity", True)}
