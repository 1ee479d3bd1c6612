"""Importing a library's module without paying for the parts of it a method never uses.

`import nlpaug.augmenter.word` imports every word augmenter, and with them transformers (for the contextual one,
via `nlpaug.model.lang_models`) and NLTK with scipy (for the WordNet ones, via `nlpaug.model.word_dict`): about 5 s
of imports a shard paid to build `RandomWordAug`. Those subpackages are bound by the augmenter modules
(`import nlpaug.model.lang_models as nml`) and used only when an augmenter is built, so they are deferred: a
placeholder stands in for each, and the first attribute anyone reads from it imports the real package. A method
that uses one imports it when it is built, exactly as before; the outputs are the same (every call is seeded).

A placeholder can also hand out a few names without importing its whole package (`PARTIAL`): nlpaug's spelling
augmenter reads only `Spelling` from `nlpaug.model.word_dict`, whose package also imports NLTK for WordNet (~1.5 s),
so `Spelling` and its base class are read from their own submodules. Any other name imports the package in full,
and the classes are the very same objects either way (a submodule is imported once).

`after_import` runs a function on a module the moment it is first imported, without importing it now (augshard
patches `nltk.download` that way, so a method that never touches NLTK never imports it).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

# Subpackages a library module imports for a few of its classes only: deferred whenever augshard imports it.
DEFERRED = {
    "nlpaug.augmenter.word": ("nlpaug.model.lang_models", "nlpaug.model.word_dict"),
    "nlpaug.model.word_dict.spelling": ("nlpaug.model.word_dict",),
}
# Names a deferred package hands out from one of its submodules, without importing the package itself.
PARTIAL = {
    "nlpaug.model.word_dict": {
        "WordDictionary": "nlpaug.model.word_dict.word_dictionary",
        "Spelling": "nlpaug.model.word_dict.spelling",
    },
}

_lock = threading.RLock()


def import_module(name: str) -> types.ModuleType:
    """`importlib.import_module(name)`, with the subpackages `DEFERRED` names for it (and its parents) deferred."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        for deferred in DEFERRED.get(".".join(parts[:i]), ()):
            defer(deferred)
    module = importlib.import_module(name)
    return _load(module) if isinstance(module, _Deferred) else module  # asked for by name: wanted now


class _Deferred(types.ModuleType):
    """Stands in for a package not imported yet; the first attribute it lacks imports the package in its place."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)  # introspection (copy, pickle, inspect) must not import the package
        where = PARTIAL.get(self.__name__, {}).get(attr)
        if where is not None:
            value = getattr(importlib.import_module(where), attr)
            setattr(self, attr, value)
            return value
        return getattr(_load(self), attr)


def defer(name: str) -> None:
    """Put a placeholder for package `name` in sys.modules (and on its parent) unless it is imported already."""
    with _lock:
        if name in sys.modules:
            return
        spec = importlib.util.find_spec(name)  # imports its parents, not the package itself
        if spec is None:
            return
        placeholder = _Deferred(name)
        placeholder.__spec__ = spec
        placeholder.__loader__ = spec.loader
        placeholder.__package__ = name if spec.submodule_search_locations is not None else name.rpartition(".")[0]
        if spec.submodule_search_locations is not None:
            placeholder.__path__ = list(spec.submodule_search_locations)  # its submodules still import as usual
        sys.modules[name] = placeholder
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, placeholder)


def _load(placeholder: _Deferred) -> types.ModuleType:
    name = placeholder.__name__
    with _lock:
        current = sys.modules.get(name)
        if isinstance(current, _Deferred):
            del sys.modules[name]
            try:
                current = importlib.import_module(name)
            except BaseException:
                sys.modules[name] = placeholder
                raise
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(sys.modules[parent], child, current)
        assert current is not None
        # Modules that bound the placeholder (`import x.y as z`) now find every attribute on it directly.
        placeholder.__dict__.update({k: v for k, v in vars(current).items() if k not in ("__class__",)})
        return current


class _Hooked(importlib.abc.Loader):
    """The module's own loader, and `hook(module)` once it has run."""

    def __init__(self, loader: Any, hook: Callable[[types.ModuleType], None]) -> None:
        self.loader, self.hook = loader, hook

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__loader__ = self.loader
        self.loader.exec_module(module)
        self.hook(module)

    def __getattr__(self, attr: str) -> Any:  # resource readers, get_data, is_package, ...
        return getattr(self.loader, attr)


class _AfterImport(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, hook: Callable[[types.ModuleType], None]) -> None:
        self.name, self.hook = name, hook

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        with _lock:
            if self in sys.meta_path:
                sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _Hooked(spec.loader, self.hook)
        return spec


def after_import(name: str, hook: Callable[[types.ModuleType], None]) -> None:
    """`hook(module)` now if top-level module `name` is imported (and not a placeholder), else once it is."""
    with _lock:
        module = sys.modules.get(name)
        if module is not None and not isinstance(module, _Deferred):
            hook(module)
            return
        if not any(isinstance(f, _AfterImport) and f.name == name for f in sys.meta_path):
            sys.meta_path.insert(0, _AfterImport(name, hook))
