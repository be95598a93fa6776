"""Positive-negative counter (Shapiro et al., INRIA RR-7506, 2011, §3.1.2).

Two grow-only counters, one of increments and one of decrements; the value is their
difference and may go below zero. For a counter that must not, see ``BoundedCounter``.
"""

from __future__ import annotations

from typing import Any, Self

from eventual.codec import TypeTag, expect_list
from eventual.crdt.gcounter import GCounter
from eventual.lattice import Lattice

__all__ = ["PNCounter"]


class PNCounter(Lattice):
    TAG = TypeTag.PNCOUNTER
    __slots__ = ("_decrements", "_increments")

    def __init__(self) -> None:
        self._increments = GCounter()
        self._decrements = GCounter()

    def is_empty(self) -> bool:
        return not self._increments._counts and not self._decrements._counts

    def value(self) -> int:
        return self._increments.value() - self._decrements.value()

    def increment(self, actor: str, n: int = 1) -> PNCounter:
        delta = PNCounter()
        delta._increments = self._increments.increment(actor, n)
        return delta

    def decrement(self, actor: str, n: int = 1) -> PNCounter:
        delta = PNCounter()
        delta._decrements = self._decrements.increment(actor, n)
        return delta

    def merge(self, other: Self) -> None:
        self._check_same_type(other)
        self._increments.merge(other._increments)
        self._decrements.merge(other._decrements)

    def copy(self) -> Self:
        clone = type(self)()
        clone._increments = self._increments.copy()
        clone._decrements = self._decrements.copy()
        return clone

    def _payload(self) -> Any:
        return [self._increments._payload(), self._decrements._payload()]

    @classmethod
    def _from_payload(cls, payload: Any) -> Self:
        increments, decrements = expect_list(payload, "pncounter", 2)
        counter = cls()
        counter._increments = GCounter._from_payload(increments)
        counter._decrements = GCounter._from_payload(decrements)
        return counter
