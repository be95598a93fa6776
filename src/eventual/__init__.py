"""Eventual: a leaderless, eventually consistent, replicated key-value store.

The package is layered (see docs/data-types.md):

- ``eventual.clocks``: hybrid logical clocks, version vectors, dotted version vector sets.
- ``eventual.crdt``: the conflict-free replicated data types, one module per type.
- ``eventual.codec``: the deterministic, versioned binary encoding shared by both.

``clocks`` and ``crdt`` do no I/O and read neither the wall clock nor a random source, so a
seeded simulator can drive them deterministically.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
