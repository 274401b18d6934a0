"""Typed hyperparameters: dataclass defaults, overrides, and `--set KEY=VALUE` parsing."""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

from stabench.errors import StabenchError, did_you_mean

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def field_types(params_class: type) -> dict[str, Any]:
    """The declared type of every field of a hyperparameter dataclass."""
    hints = typing.get_type_hints(params_class)
    return {field.name: hints[field.name] for field in dataclasses.fields(params_class)}


def type_name(kind: Any) -> str:
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(kind)))
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(kind, str(kind))


def coerce(key: str, value: Any, kind: Any) -> Any:
    """`value` (a command-line string or a Python value) as the declared type, or a one-line error."""
    wrong = StabenchError(f"`{key}` expects {type_name(kind)}, got {value!r}")
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
                number = float(value)
            except ValueError:
                raise wrong from None
        elif isinstance(value, (int, float)):
            number = value
        else:
            raise wrong
        if kind is int:
            if float(number) != int(number):
                raise wrong
            return int(number)
        return float(number)
    if kind is str:
        return str(value)
    raise TypeError(f"hyperparameter `{key}` has unsupported type {kind}")


def parse_assignments(assignments) -> dict[str, str]:
    """`["eta=0.5", "lr=1e-3"]` as a dict of strings; a malformed item is a one-line error."""
    parsed = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise StabenchError(f"`--set {item}` should look like KEY=VALUE")
        parsed[key.strip()] = value.strip()
    return parsed


def apply_overrides(sections: dict[str, tuple[type, dict]], overrides: dict[str, Any], context: str):
    """Apply flat `overrides` to named sections of typed hyperparameters.

    `sections` maps a section name to (its dataclass, its current values). A key belongs to the one
    section that declares it. Returns the typed dataclass instance for each section.
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
    return {section: sections[section][0](**resolved[section]) for section in sections}


def defaults(params_class: type) -> dict[str, Any]:
    """The declared default of every field."""
    return dataclasses.asdict(params_class())
