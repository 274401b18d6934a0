"""One generic registry, used for methods and for tasks, and the plugin loaders."""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from typing import Generic, Iterator, TypeVar

from stabench.errors import StabenchError, did_you_mean

T = TypeVar("T")


class PluginWarning(UserWarning):
    """A plugin could not be loaded; the others still are."""


class Registry(Generic[T]):
    """Named entries of one kind (`method`, `task`), plus entry points loaded on first use.

    Each entry is an object with `name` and `description`; third parties add entries with
    `register` from their own code or through the entry-point group `stabench.<kind>s`.
    """

    def __init__(self, kind: str, base: type):
        self.kind = kind
        self.base = base
        self.group = f"stabench.{kind}s"
        self._entries: dict[str, T] = {}
        self._pending: dict | None = None  # entry points not loaded yet, by name

    def register(self, entry: T) -> T:
        """Add `entry` under `entry.name`; a name is registered once only."""
        if not isinstance(entry, self.base):
            raise TypeError(f"a {self.kind} must be a {self.base.__name__}, got {type(entry).__name__}")
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} `{entry.name}` is already registered")
        self._entries[entry.name] = entry
        return entry

    def get(self, name: str) -> T:
        """The entry called `name`, or a one-line error that suggests the closest name."""
        if name not in self._entries:
            self._load_entry_point(name)
        if name in self._entries:
            return self._entries[name]
        raise StabenchError(f"unknown {self.kind} `{name}`.{did_you_mean(name, self.names())} "
                            f"See `stabench list {self.kind}s`.")

    def names(self) -> list[str]:
        """All names, entry-point plugins included (this loads them)."""
        for name in list(self._pending_entry_points()):
            self._load_entry_point(name)
        return sorted(self._entries)

    def __iter__(self) -> Iterator[T]:
        return iter([self._entries[name] for name in self.names()])

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def _pending_entry_points(self) -> dict:
        if self._pending is None:
            self._pending = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._pending

    def _load_entry_point(self, name: str) -> None:
        entry_point = self._pending_entry_points().pop(name, None)
        if entry_point is None:
            return
        try:
            loaded = entry_point.load()
            if isinstance(loaded, self.base) and loaded.name not in self._entries:
                self.register(loaded)
        except Exception as error:  # a broken plugin must not break the others
            warnings.warn(
                f"{self.kind} plugin `{name}` ({entry_point.value}) failed to load: "
                f"{type(error).__name__}: {error}",
                PluginWarning,
                stacklevel=2,
            )


def load_plugin(spec: str) -> None:
    """Import a plugin given as a path to a .py file or as a module name; importing registers it."""
    path = Path(spec)
    if spec.endswith(".py") or os.sep in spec:
        if not path.is_file():
            raise StabenchError(f"plugin file `{spec}` does not exist")
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
        module_name = f"stabench_plugin_{path.stem}_{digest}"
        if module_name in sys.modules:
            return
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[module_name]
            raise StabenchError(f"plugin `{spec}` failed to load: {type(error).__name__}: {error}") from error
        return
    try:
        importlib.import_module(spec)
    except ModuleNotFoundError as error:
        if error.name and spec.startswith(error.name):
            raise StabenchError(f"plugin module `{spec}` cannot be found") from error
        raise StabenchError(f"plugin `{spec}` failed to load: {error}") from error
    except Exception as error:
        raise StabenchError(f"plugin `{spec}` failed to load: {type(error).__name__}: {error}") from error


def load_plugins(specs=(), environment_variable: str = "STABENCH_PLUGINS") -> None:
    """Load plugins named on the command line and in $STABENCH_PLUGINS (separated by `os.pathsep`)."""
    from_environment = [s for s in os.environ.get(environment_variable, "").split(os.pathsep) if s]
    for spec in [*from_environment, *specs]:
        load_plugin(spec)
