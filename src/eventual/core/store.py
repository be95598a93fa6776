"""The storage contract: small and synchronous (DESIGN.md §3).

A node keeps three things on disk:

- *records*, each as a *head* and zero or more *member cells* (``core/record.py`` says
  what goes where: a scalar record is all head; a set, hash or map keeps one cell per
  member), with the key's partition, so a partition's keys can be listed (anti-entropy,
  handoff). A write stores the head and only the cells that changed, so writing one member
  of a collection of ten million costs what it costs in one of ten;
- *hints*: for writes a node took for another (sloppy quorum): key -> the merged record it
  holds for that key, encoded whole, and the set of primaries it still owes it to;
- *metadata*: a few named values (the node's fallback epoch, ...).

``apply(batch)`` is the only write and it is atomic: a record and the hint that goes with it
land together or not at all. A node answers a request only after the batch holding its
effect was applied, so an acknowledged write is in the store. ``MemoryStore`` serves tests
and the simulator, where it stands for the disk: it survives a simulated crash; SQLite (the
server's default) comes with the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from mypy_extensions import mypyc_attr

__all__ = ["Batch", "Hint", "MemoryStore", "RecordWrite", "Store"]


@dataclass(frozen=True, slots=True)
class Hint:
    key: bytes
    partition: int
    record: bytes
    targets: frozenset[str]


@dataclass(slots=True)
class RecordWrite:
    """What a batch does to one record.

    ``reset``: first forget everything stored for the key (a dropped record, a hard reset,
    a record stored whole for the first time); then store ``head`` (None: nothing, the
    record is gone) and ``cells`` (member id -> cell, None deleting that member)."""

    partition: int
    head: bytes | None
    cells: dict[bytes, bytes | None] = field(default_factory=dict)
    reset: bool = False

    # Written out, as on the messages made per request (``core/messages.py``, Request).
    def __init__(
        self,
        partition: int,
        head: bytes | None,
        cells: dict[bytes, bytes | None] | None = None,
        reset: bool = False,
    ) -> None:
        self.partition = partition
        self.head = head
        self.cells = {} if cells is None else cells
        self.reset = reset


@dataclass
class Batch:
    """Changes to apply atomically."""

    records: dict[bytes, RecordWrite] = field(default_factory=dict)
    hints: dict[bytes, Hint | None] = field(default_factory=dict)
    meta: dict[str, bytes] = field(default_factory=dict)

    def __init__(  # written out: see RecordWrite
        self,
        records: dict[bytes, RecordWrite] | None = None,
        hints: dict[bytes, Hint | None] | None = None,
        meta: dict[str, bytes] | None = None,
    ) -> None:
        self.records = {} if records is None else records
        self.hints = {} if hints is None else hints
        self.meta = {} if meta is None else meta

    def __bool__(self) -> bool:
        return bool(self.records or self.hints or self.meta)

    def write(self, key: bytes, write: RecordWrite) -> None:
        """Stage ``write``, folding it into what the batch already holds for ``key``."""
        staged = self.records.get(key)
        if staged is None or write.reset:
            if staged is not None and staged.reset:
                write.reset = True  # what the batch dropped earlier stays dropped
            self.records[key] = write
            return
        staged.head = write.head
        staged.cells.update(write.cells)

    def drop(self, key: bytes, partition: int) -> None:
        """Forget the record of ``key`` (a reaped tombstone)."""
        self.records[key] = RecordWrite(partition, None, reset=True)


class Store(Protocol):
    def head(self, key: bytes) -> bytes | None: ...

    def cells(self, key: bytes) -> Iterator[tuple[bytes, bytes]]: ...

    def keys(self, partition: int) -> Iterator[bytes]:
        """The keys of ``partition``, in order."""
        ...

    def keys_added(self, partition: int) -> int:
        """How many keys ``partition`` has gained since the store opened: while it stays
        the same, no key was added there (``core/keyspace.py`` keeps its order meanwhile)."""
        ...

    def hint(self, key: bytes) -> Hint | None: ...

    def hints(self) -> Iterator[Hint]: ...

    def meta(self, name: str) -> bytes | None: ...

    def apply(self, batch: Batch) -> None: ...


@mypyc_attr(allow_interpreted_subclasses=True)  # the simulator's CheckedStore extends it
class MemoryStore:
    """A dict-backed store. ``writes`` counts applied batches (the simulator's fsyncs)."""

    def __init__(self) -> None:
        self._heads: dict[bytes, bytes] = {}
        self._cells: dict[bytes, dict[bytes, bytes]] = {}
        self._partitions: dict[int, dict[bytes, None]] = {}
        self._added: dict[int, int] = {}  # partition -> keys it gained (``keys_added``)
        self._hints: dict[bytes, Hint] = {}
        self._meta: dict[str, bytes] = {}
        self.writes = 0

    def head(self, key: bytes) -> bytes | None:
        return self._heads.get(key)

    def cells(self, key: bytes) -> Iterator[tuple[bytes, bytes]]:
        yield from sorted(self._cells.get(key, {}).items())

    def keys(self, partition: int) -> Iterator[bytes]:
        yield from sorted(self._partitions.get(partition, {}))

    def keys_added(self, partition: int) -> int:
        return self._added.get(partition, 0)

    def all_keys(self) -> list[bytes]:
        return sorted(self._heads)

    def hint(self, key: bytes) -> Hint | None:
        return self._hints.get(key)

    def hints(self) -> Iterator[Hint]:
        for key in sorted(self._hints):
            yield self._hints[key]

    def meta(self, name: str) -> bytes | None:
        return self._meta.get(name)

    def apply(self, batch: Batch) -> None:
        for key, write in batch.records.items():
            if write.reset:
                self._cells.pop(key, None)
                if self._heads.pop(key, None) is not None:
                    self._partitions[write.partition].pop(key, None)
            if write.head is not None:
                previous = self._heads.get(key)
                self._heads[key] = write.head
                if previous is None:  # a new key (an overwrite's is listed already)
                    self._partitions.setdefault(write.partition, {})[key] = None
                    self._added[write.partition] = self._added.get(write.partition, 0) + 1
            if write.cells:
                cells = self._cells.setdefault(key, {})
                for member, cell in write.cells.items():
                    if cell is None:
                        cells.pop(member, None)
                    else:
                        cells[member] = cell
                if not cells:
                    del self._cells[key]
        for key, hint in batch.hints.items():
            if hint is None:
                self._hints.pop(key, None)
            else:
                self._hints[key] = hint
        self._meta.update(batch.meta)
        self.writes += 1
