"""Version vectors (Parker et al., "Detection of Mutual Inconsistency in Distributed Systems",
1983): a map from actor to the number of events seen from it.

Comparison has four answers (``Order``): one vector is BEFORE another when it is dominated
entry by entry and differs, AFTER in the mirror case, SAME when equal, CONCURRENT otherwise.
Merge is the entry-wise maximum. Absent entries are zero and never stored, so equal vectors
have equal encodings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import Enum
from typing import Any, Self

from eventual.codec import TypeTag, check_actor, expect_int, expect_list, expect_str
from eventual.lattice import Lattice, merge_max

__all__ = ["Order", "VersionVector"]


class Order(Enum):
    BEFORE = "before"
    AFTER = "after"
    SAME = "same"
    CONCURRENT = "concurrent"


class VersionVector(Lattice):
    TAG = TypeTag.VERSION_VECTOR
    __slots__ = ("_entries",)

    def __init__(self, entries: Mapping[str, int] | None = None) -> None:
        self._entries: dict[str, int] = {}
        for actor, counter in (entries or {}).items():
            if not isinstance(actor, str):
                raise TypeError(f"actors are strings, not {type(actor).__name__}")
            if counter < 0:
                raise ValueError(f"counter for {actor!r} is negative: {counter}")
            if counter:
                self._entries[actor] = counter

    # --- reading ---

    def __getitem__(self, actor: str) -> int:
        return self._entries.get(actor, 0)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, int]]:
        return sorted(self._entries.items())

    def value(self) -> dict[str, int]:
        return dict(sorted(self._entries.items()))

    def descends(self, other: VersionVector) -> bool:
        """True when this vector has seen every event ``other`` has (``>=``)."""
        mine = self._entries
        return all(mine.get(actor, 0) >= counter for actor, counter in other._entries.items())

    def compare(self, other: VersionVector) -> Order:
        ahead = self.descends(other)
        behind = other.descends(self)
        if ahead and behind:
            return Order.SAME
        if ahead:
            return Order.AFTER
        if behind:
            return Order.BEFORE
        return Order.CONCURRENT

    # --- changing ---

    def increment(self, actor: str) -> VersionVector:
        """Record one more event of ``actor``; the delta is the new entry alone."""
        check_actor(actor)
        counter = self._entries.get(actor, 0) + 1
        self._entries[actor] = counter
        return VersionVector({actor: counter})

    def merge(self, other: Self) -> None:
        self._check_same_type(other)
        merge_max(self._entries, other._entries)

    def copy(self) -> Self:
        clone = type(self)()
        clone._entries = dict(self._entries)
        return clone

    # --- encoding ---

    def _payload(self) -> Any:
        return [[actor, counter] for actor, counter in sorted(self._entries.items())]

    @classmethod
    def _from_payload(cls, payload: Any) -> Self:
        vector = cls()
        for item in expect_list(payload, "version vector"):
            actor, counter = expect_list(item, "version vector entry", 2)
            actor = expect_str(actor, "actor")
            vector._entries[actor] = expect_int(counter, "counter", low=1)
        return vector
