"""The storage contract: small and synchronous (DESIGN.md §3).

A node keeps three things on disk:

- *records*: key -> encoded ``Record``, with the key's partition, so a partition can be
  scanned (anti-entropy, handoff);
- *hints*: for writes a node took for another (sloppy quorum): key -> the merged record it
  holds for that key, and the set of primaries it still owes it to;
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

__all__ = ["Batch", "Hint", "MemoryStore", "Store"]


@dataclass(frozen=True, slots=True)
class Hint:
    key: bytes
    partition: int
    record: bytes
    targets: frozenset[str]


@dataclass
class Batch:
    """Changes to apply atomically. A ``None`` record deletes the key (a reaped tombstone)."""

    records: dict[bytes, tuple[int, bytes | None]] = field(default_factory=dict)
    hints: dict[bytes, Hint | None] = field(default_factory=dict)
    meta: dict[str, bytes] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.records or self.hints or self.meta)


class Store(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def scan(self, partition: int) -> Iterator[tuple[bytes, bytes]]: ...

    def hint(self, key: bytes) -> Hint | None: ...

    def hints(self) -> Iterator[Hint]: ...

    def meta(self, name: str) -> bytes | None: ...

    def apply(self, batch: Batch) -> None: ...


class MemoryStore:
    """A dict-backed store. ``writes`` counts applied batches (the simulator's fsyncs)."""

    def __init__(self) -> None:
        self._records: dict[bytes, bytes] = {}
        self._partitions: dict[int, dict[bytes, None]] = {}
        self._hints: dict[bytes, Hint] = {}
        self._meta: dict[str, bytes] = {}
        self.writes = 0

    def get(self, key: bytes) -> bytes | None:
        return self._records.get(key)

    def scan(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        for key in sorted(self._partitions.get(partition, {})):
            yield key, self._records[key]

    def hint(self, key: bytes) -> Hint | None:
        return self._hints.get(key)

    def hints(self) -> Iterator[Hint]:
        for key in sorted(self._hints):
            yield self._hints[key]

    def meta(self, name: str) -> bytes | None:
        return self._meta.get(name)

    def apply(self, batch: Batch) -> None:
        for key, (partition, data) in batch.records.items():
            if data is None:
                if self._records.pop(key, None) is not None:
                    del self._partitions[partition][key]
            else:
                self._records[key] = data
                self._partitions.setdefault(partition, {})[key] = None
        for key, hint in batch.hints.items():
            if hint is None:
                self._hints.pop(key, None)
            else:
                self._hints[key] = hint
        self._meta.update(batch.meta)
        self.writes += 1

    def keys(self) -> list[bytes]:
        return sorted(self._records)
