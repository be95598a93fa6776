"""Dotted version vector sets (Almeida, Baquero, Gonçalves, Preguiça, Fonte, "Scalable and
Accurate Causality Tracking for Eventually Consistent Stores", DAIS 2014).

A DVVSet is the version history of one key on one replica: all its concurrent values
(*siblings*), each tagged by a *dot* (actor, counter), in space linear in the number of
actors rather than the number of values.

Representation. For each actor: ``(counter, values)`` where ``values`` holds the values of the
newest dots of that actor, newest first. The entry says: "I have seen events 1..counter of this
actor; the values of dots ``counter, counter - 1, ..., counter - len(values) + 1`` are still
live; the older ones were overwritten by a write that saw them". The *context* (the causal
history a client gets on read) is the version vector of the counters.

Operations:

- ``update(actor, value, context)`` is a write coordinated by ``actor``. Every value whose dot
  the context covers is discarded, the context joins the history, and ``value`` gets the next
  dot of ``actor``. Without a context (a *blind* write) nothing is discarded: the value
  becomes a sibling of everything present, so no write is silently lost.
- ``merge`` (``sync`` in the paper) joins two replicas: per actor the larger counter wins, and
  a value survives unless the other side has seen its dot and no longer holds it. This is the
  join of a semilattice: idempotent, commutative, associative.

A write with a context replaces exactly what the context covers: a value written concurrently
with the read that produced the context survives as a sibling.
"""

from __future__ import annotations

from typing import Any, Self

from eventual.clocks._version_vector import VersionVector
from eventual.codec import (
    Scalar,
    TypeTag,
    check_actor,
    check_scalar,
    expect_int,
    expect_list,
    expect_scalar,
    expect_str,
)
from eventual.lattice import Lattice

__all__ = ["DVVSet"]

# (counter, live values newest first): see the module docstring.
_Entry = tuple[int, tuple[Scalar, ...]]


def _join_entry(mine: _Entry, theirs: _Entry) -> _Entry:
    (n1, values1), (n2, values2) = (mine, theirs) if mine[0] >= theirs[0] else (theirs, mine)
    # The side with the larger counter n1 holds the newest values. The other side has seen
    # dots up to n2 and still holds the last len(values2) of them; dots at or below
    # n2 - len(values2) were overwritten there, so they are dead here too.
    keep = min(len(values1), n1 - n2 + len(values2))
    return n1, values1[:keep]


class DVVSet(Lattice):
    TAG = TypeTag.DVVSET
    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    # --- reading ---

    def values(self) -> list[Scalar]:
        """The siblings: every live value, ordered by actor, newest first within one actor."""
        return [v for _, (_, values) in sorted(self._entries.items()) for v in values]

    def value(self) -> list[Scalar]:
        return self.values()

    def dotted(self) -> list[tuple[str, int, Scalar]]:
        """The siblings with their dots ``(actor, counter, value)``, in ``values`` order."""
        return [
            (actor, counter - age, v)
            for actor, (counter, values) in sorted(self._entries.items())
            for age, v in enumerate(values)
        ]

    def context(self) -> VersionVector:
        """The causal context to hand to a client with the values it read."""
        return VersionVector({actor: counter for actor, (counter, _) in self._entries.items()})

    def __len__(self) -> int:
        """The number of siblings."""
        return sum(len(values) for _, values in self._entries.values())

    # --- changing ---

    def update(self, actor: str, value: Scalar, context: VersionVector | None = None) -> DVVSet:
        """Write ``value`` as coordinated by ``actor``; ``context`` is what the writer had read.

        Returns the delta: the post-write entries of the actors the write touched.
        """
        check_actor(actor)
        check_scalar(value)
        touched = [actor]
        if context is not None:
            for ctx_actor, counter in context.items():
                self._join_actor(ctx_actor, (counter, ()))
                touched.append(ctx_actor)
        counter, values = self._entries.get(actor, (0, ()))
        self._entries[actor] = (counter + 1, (value, *values))
        delta = DVVSet()
        delta._entries = {name: self._entries[name] for name in touched}
        return delta

    def _join_actor(self, actor: str, entry: _Entry) -> None:
        mine = self._entries.get(actor)
        self._entries[actor] = entry if mine is None else _join_entry(mine, entry)

    def merge(self, other: Self) -> None:
        self._check_same_type(other)
        for actor, entry in other._entries.items():
            self._join_actor(actor, entry)

    def copy(self) -> Self:
        clone = type(self)()
        clone._entries = dict(self._entries)  # entries are immutable tuples
        return clone

    # --- encoding ---

    def _payload(self) -> Any:
        return [
            [actor, counter, list(values)]
            for actor, (counter, values) in sorted(self._entries.items())
        ]

    @classmethod
    def _from_payload(cls, payload: Any) -> Self:
        clock = cls()
        for item in expect_list(payload, "dvvset"):
            actor, counter, values = expect_list(item, "dvvset entry", 3)
            actor = expect_str(actor, "dvvset actor")
            counter = expect_int(counter, "dvvset counter", low=1)
            values = tuple(expect_scalar(v, "dvvset value") for v in expect_list(values, "values"))
            if len(values) > counter:
                # More live values than events: some value would have no dot.
                expect_int(len(values), "dvvset values per actor", high=counter)
            clock._entries[actor] = (counter, values)
        return clock
