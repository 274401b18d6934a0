"""One generic registry (methods, tasks), plugin loading, and where each entry's code came from."""
from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, TypeVar

from stabench.errors import StabenchError, did_you_mean
from stabench.names import check_name

T = TypeVar("T")


class PluginWarning(UserWarning):
    """A plugin could not be loaded, or loaded without registering what it promised; the others still are."""


class Registry(Generic[T]):
    """Named entries of one kind (`method`, `task`), plus entry points loaded on first use.

    Each entry is an object with `name` and `description`; third parties add entries with
    `register` from their own code or through the entry-point group `stabench.<kind>s`. A name outside
    `names.NAME` and what `check` refuses are refused at registration; `from_class` makes an entry of a
    class an entry point names.
    """

    def __init__(self, kind: str, base: type, check: Callable[[Any], None] | None = None,
                 from_class: Callable[[type, str], Any] | None = None):
        self.kind = kind
        self.base = base
        self.group = f"stabench.{kind}s"
        self.check = check
        self.from_class = from_class or (lambda cls, name: cls())
        self._entries: dict[str, T] = {}
        self._pending: dict | None = None  # entry points not loaded yet, by name

    def register(self, entry: T) -> T:
        """Add `entry` under `entry.name`.

        The same object twice is a no-op, and an entry whose class is a redefinition of the registered
        one's (a notebook cell run again) replaces it; any other second use of a name is an error.
        """
        if not isinstance(entry, self.base):
            raise TypeError(f"a {self.kind} must be a {self.base.__name__}, got {type(entry).__name__}")
        check_name(self.kind, getattr(entry, "name", None))  # names become folders and table cells
        if self.check is not None:
            self.check(entry)
        existing = self._entries.get(entry.name)
        if existing is entry:
            return entry
        if existing is not None and not _redefinition(type(existing), type(entry)):
            raise ValueError(f"{self.kind} `{entry.name}` is already registered (by {type(existing).__module__}); "
                             f"unregister it first: stabench.unregister_{self.kind}({entry.name!r})")
        self._entries[entry.name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove `name` (a one-line error if it is not registered)."""
        if name not in self._entries:
            raise StabenchError(f"no {self.kind} `{name}` is registered.{did_you_mean(name, self._entries)}")
        del self._entries[name]

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
            self._register_loaded(entry_point.load(), name)
        except Exception as error:  # a broken plugin must not break the others
            warnings.warn(f"{self.kind} plugin `{name}` ({entry_point.value}) failed to load: "
                          f"{type(error).__name__}: {error}", PluginWarning, stacklevel=2)
            return
        if name not in self._entries:
            warnings.warn(f"{self.kind} plugin `{name}` ({entry_point.value}) registered no {self.kind} named "
                          f"`{name}`", PluginWarning, stacklevel=2)

    def _register_loaded(self, loaded, name: str) -> None:
        """An entry point may name an instance, a class (made with `from_class`), a factory returning
        either or a list of them, or a module that registers its entries when imported."""
        if name in self._entries:  # the module registered it when it was imported
            return
        if isinstance(loaded, type) and issubclass(loaded, self.base):
            loaded = self.from_class(loaded, name)
        elif callable(loaded) and not isinstance(loaded, self.base):
            loaded = loaded()
        for entry in loaded if isinstance(loaded, (list, tuple)) else [loaded]:
            if isinstance(entry, self.base):
                self.register(entry)


def _redefinition(old: type, new: type) -> bool:
    return old is not new and (old.__module__, old.__qualname__) == (new.__module__, new.__qualname__)


def provenance(entry) -> dict[str, Any]:
    """Where an entry's code came from, for the run record: `origin` (`built-in`, a module, or the file
    a plugin was loaded from) and `source_sha256`, a hash of the code it runs: the stabench package's
    sources (`package_code`), plus, for a plugin, the whole source of every module its classes come from
    (None where a class's source cannot be read, as in some notebooks)."""
    module = type(entry).__module__
    if module.startswith("stabench."):
        origin = "built-in"
    else:
        origin = getattr(sys.modules.get(module), "__file__", None) or module
    digest = hashlib.sha256(package_code().encode())
    for cls in type(entry).__mro__:
        if cls.__module__ in ("builtins", "stabench") or cls.__module__.startswith("stabench."):
            continue  # Python's own (its version is recorded) or in package_code
        source = _module_code(cls)
        if source is None:
            return {"origin": str(origin), "source_sha256": None}
        digest.update(source.encode())
    return {"origin": str(origin), "source_sha256": digest.hexdigest()[:16]}


@functools.cache
def package_code() -> str:
    """A hash of the .py files of the stabench package that runs execute (`sources_code`): the code that
    built-in methods and tasks run, module-level helpers included (read once per process)."""
    return sources_code(Path(__file__).parent)


# Modules that only read, tabulate or present records, or start other runs: no run's numbers depend on them,
# so editing them does not make every record stale.
NOT_RUN = frozenset({"__main__.py", "cli.py", "table.py", "publish.py", "site.py", "stats.py", "compare.py",
                     "screen.py", "bundle.py", "convergence.py"})


def sources_code(root: Path) -> str:
    """A hash of every .py file under `root` but `NOT_RUN`, with its path relative to `root`, in a stable order:
    the same wherever the folder is."""
    root = Path(root)
    digest = hashlib.sha256()
    for file in sorted(root.rglob("*.py"), key=lambda file: file.relative_to(root).as_posix()):
        if file.relative_to(root).as_posix() in NOT_RUN:
            continue
        content = file.read_bytes()
        digest.update(f"{file.relative_to(root).as_posix()}\0{len(content)}\0".encode() + content)
    return digest.hexdigest()


_MODULE_CODE: dict[str, tuple[Any, str]] = {}  # module name -> (the module object hashed, its hash)


def _module_code(cls: type) -> str | None:
    """A hash of the whole source file of the module that defines `cls`, read the first time this module
    object is asked about (a module imported afresh is read afresh); else of the class's own source (a
    notebook cell); None if neither can be read."""
    module = sys.modules.get(cls.__module__)
    known = _MODULE_CODE.get(cls.__module__)
    if module is not None and known is not None and known[0] is module:
        return known[1]
    file = getattr(module, "__file__", None)
    try:
        source = Path(file).read_bytes() if file else inspect.getsource(cls).encode()
    except (OSError, TypeError):
        return None
    code = hashlib.sha256(source).hexdigest()
    if file:
        _MODULE_CODE[cls.__module__] = (module, code)
    return code


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
    """Load plugins named on the command line and in $STABENCH_PLUGINS, whose items are separated by
    `os.pathsep` (`:` on Linux and macOS, `;` on Windows), as in PATH."""
    from_environment = [s for s in os.environ.get(environment_variable, "").split(os.pathsep) if s]
    for spec in [*from_environment, *specs]:
        load_plugin(spec)
