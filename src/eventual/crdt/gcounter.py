"""Grow-only counter (Shapiro, Preguiça, Baquero, Zawirski, "A comprehensive study of
Convergent and Commutative Replicated Data Types", INRIA RR-7506, 2011, §3.1.1).

Each actor counts its own increments; the value is the sum; merge takes the maximum per actor,
so an increment is counted once however often it is delivered. The delta of an increment is
the actor's new total alone.
"""

from __future__ import annotations

from typing import Any, Self

from eventual.codec import (
    UINT64_MAX,
    TypeTag,
    check_actor,
    check_amount,
    expect_int,
    expect_list,
    expect_str,
)
from eventual.lattice import Lattice, merge_max

__all__ = ["GCounter"]


class GCounter(Lattice):
    TAG = TypeTag.GCOUNTER
    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def value(self) -> int:
        return sum(self._counts.values())

    def count_of(self, actor: str) -> int:
        return self._counts.get(actor, 0)

    def increment(self, actor: str, n: int = 1) -> GCounter:
        check_actor(actor)
        total = self._counts.get(actor, 0) + check_amount(n)
        if total > UINT64_MAX:
            raise OverflowError(f"counter of {actor!r} would pass 2**64 - 1")
        self._counts[actor] = total
        delta = GCounter()
        delta._counts[actor] = total
        return delta

    def merge(self, other: Self) -> None:
        self._check_same_type(other)
        merge_max(self._counts, other._counts)

    def copy(self) -> Self:
        clone = type(self)()
        clone._counts = dict(self._counts)
        return clone

    def _payload(self) -> Any:
        return [[actor, count] for actor, count in sorted(self._counts.items())]

    @classmethod
    def _from_payload(cls, payload: Any) -> Self:
        counter = cls()
        for item in expect_list(payload, "gcounter"):
            actor, count = expect_list(item, "gcounter entry", 2)
            counter._counts[expect_str(actor, "actor")] = expect_int(count, "count", low=1)
        return counter
