"""Eventual: a leaderless, eventually consistent, replicated key-value store.

The package is layered (see docs/data-types.md):

- ``eventual.clocks``: hybrid logical clocks, version vectors, dotted version vector sets.
- ``eventual.crdt``: the conflict-free replicated data types, one module per type.
- ``eventual.codec``: the deterministic, versioned binary encoding shared by both.

``clocks`` and ``crdt`` do no I/O and read neither the wall clock nor a random source, so a
seeded simulator can drive them deterministically.

Two builds, one source (docs/performance.md, "The compiled build"). Where a C compiler and
Python's headers exist, installing compiles the hot path (clocks, crdt, core, the codecs and
the SQLite store) with mypyc into extension modules next to their sources; elsewhere the
package is pure Python. ``BUILD`` says which one this process runs. The pure sources are
loaded instead of the compiled modules, all of them together, when ``EVENTUAL_PURE=1`` is
set, or when any source is newer than its compiled module (an editable install whose
sources were edited since: ``pip install -e .`` compiles them again). Never a mix: compiled
modules call each other's native code directly.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

__version__ = "0.1.0"

__all__ = ["BUILD", "COMPILED", "__version__"]

_HERE = os.path.dirname(os.path.abspath(__file__))
# Where compiled modules may be: the package and its subpackages (only these are compiled).
_PLACES = ("", "clocks", "crdt", "core", "server")


def _compiled_modules() -> dict[str, str]:
    """Module name -> its source file, for every module with a compiled build here."""
    found: dict[str, str] = {}
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for place in _PLACES:
        folder = os.path.join(_HERE, place)
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            for suffix in suffixes:
                if name.endswith(suffix):
                    stem = name[: -len(suffix)]
                    source = os.path.join(folder, stem + ".py")
                    if os.path.exists(source):
                        dotted = ".".join(p for p in ("eventual", place, stem) if p)
                        found[dotted] = source
                    break
    return found


def _stale(modules: dict[str, str]) -> list[str]:
    """The modules whose source is newer than their compiled build."""
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    stale = []
    for name, source in modules.items():
        stem = source[: -len(".py")]
        built = [stem + s for s in suffixes if os.path.exists(stem + s)]
        if built and os.stat(source).st_mtime_ns > max(os.stat(b).st_mtime_ns for b in built):
            stale.append(name)
    return stale


class _FromSource:
    """Loads the listed modules from their ``.py`` sources, ahead of the compiled ones."""

    def __init__(self, modules: dict[str, str]) -> None:
        self.modules = modules

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = self.modules.get(name)
        return None if source is None else importlib.util.spec_from_file_location(name, source)


def _choose() -> tuple[str, frozenset[str]]:
    modules = _compiled_modules()
    if not modules:
        return "pure", frozenset()
    if os.environ.get("EVENTUAL_PURE", "") not in ("", "0"):
        reason = "EVENTUAL_PURE is set"
    else:
        # Only a source tree (an editable install) can have sources newer than their build:
        # an installed wheel's files all get the time they were unpacked, in any order.
        in_tree = os.path.exists(os.path.join(_HERE, os.pardir, os.pardir, "pyproject.toml"))
        stale = _stale(modules) if in_tree else []
        if not stale:
            return "compiled (mypyc)", frozenset(modules)
        reason = f"{stale[0]} changed since it was compiled; pip install -e . compiles again"
    sys.meta_path.insert(0, _FromSource(modules))
    return f"pure ({reason})", frozenset()


BUILD, COMPILED = _choose()
