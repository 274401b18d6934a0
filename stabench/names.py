"""The one rule for the names of methods, tasks, recipes, budgets and runs: checked where a name enters
(registration, record reading), so every writer can use a name as a folder, a file name or a table cell."""
from __future__ import annotations

import re

from stabench.errors import StabenchError

MAX_NAME = 64
# Lowercase letters, digits and `-_.+`, not starting with `.`: never a path separator, a hidden or parent
# folder, a control character, markup or a spreadsheet formula.
NAME = re.compile(rf"[a-z0-9_+-][a-z0-9_.+-]{{0,{MAX_NAME - 1}}}")
RULE = (f"a name is 1 to {MAX_NAME} lowercase letters, digits, `-`, `_`, `.` or `+`, not starting with `.` "
        "(`my-method`)")


def valid_name(name) -> bool:
    return isinstance(name, str) and NAME.fullmatch(name) is not None


def shown(name) -> str:
    """`name` for an error message: quoted as Python would, cut short, so it stays one readable line."""
    text = ascii(name)
    return text if len(text) <= 80 else text[:77] + "..."


def check_name(kind: str, name) -> str:
    """`name` if it follows the rule, else a one-line error saying which `kind` (method, task, recipe) it names."""
    if not valid_name(name):
        raise StabenchError(f"{kind} name {shown(name)} is not allowed: {RULE}")
    return name
