"""Bounded counter: a counter that never goes below zero, without coordination (Balegas,
Serra, Rodrigues, Preguiça et al., "Extending Eventually Consistent Cloud Databases for
Enforcing Numeric Invariants", SRDS 2015; DESIGN.md §4).

Escrow: the value is split into *rights* held by actors. An actor may decrement only against
the rights it holds locally, so no two replicas can spend the same unit, and the sum of all
decrements can never exceed the sum of all increments, whatever the partitions.

State (all grow-only, merged by maximum, as in the paper):

- ``R[a][a]``: the increments made by ``a`` (each increment creates rights for ``a``);
- ``R[a][b]`` for ``a != b``: rights ``a`` has transferred to ``b`` so far;
- ``U[a]``: the decrements made by ``a``.

``rights(a) = R[a][a] + sum of R[b][a] - sum of R[a][b] - U[a]`` (b ranges over other actors),
``value = sum of R[a][a] - sum of U[a]``, which is also the sum of everyone's rights.

Only ``a`` writes its own row ``R[a][*]`` and ``U[a]``, so at any replica the entries of ``a``
come from one state of ``a``. A decrement or transfer ships the *whole* state as its delta:
a replica must never see ``a`` spend rights without also seeing where they came from, or its
local value could dip below zero (e.g. seeing ``U[a]`` without the increment of ``b`` that was
transferred to ``a``). States are small (actors are regions or nodes), so this costs little.
An increment ships only its own entry: missing an increment can only under-count, never
make the value negative.
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

__all__ = ["BoundedCounter", "InsufficientRights"]


class InsufficientRights(ValueError):
    """An actor tried to spend more rights than it holds locally."""

    def __init__(self, actor: str, held: int, requested: int, operation: str) -> None:
        self.actor = actor
        self.held = held
        self.requested = requested
        super().__init__(
            f"{actor!r} holds {held} rights and cannot {operation} {requested}; "
            f"transfer rights to {actor!r} from an actor that holds them, or increment first"
        )


def _bump(table: dict[Any, int], key: Any, n: int) -> int:
    total = table.get(key, 0) + n
    if total > UINT64_MAX:
        raise OverflowError(f"bounded counter entry {key!r} would pass 2**64 - 1")
    table[key] = total
    return total


class BoundedCounter(Lattice):
    TAG = TypeTag.BOUNDED_COUNTER
    __slots__ = ("_decrements", "_rights")

    def __init__(self) -> None:
        self._rights: dict[tuple[str, str], int] = {}  # R[(from, to)]; (a, a) are increments
        self._decrements: dict[str, int] = {}  # U[a]

    # --- reading ---

    def value(self) -> int:
        increments = sum(n for (giver, taker), n in self._rights.items() if giver == taker)
        return increments - sum(self._decrements.values())

    def rights(self, actor: str) -> int:
        """How much ``actor`` may decrement or transfer, as far as this replica knows."""
        held = -self._decrements.get(actor, 0)
        for (giver, taker), n in self._rights.items():
            if taker == actor:
                held += n
            elif giver == actor:
                held -= n
        return held

    def actors(self) -> list[str]:
        names = {name for pair in self._rights for name in pair} | set(self._decrements)
        return sorted(names)

    # --- changing ---

    def increment(self, actor: str, n: int) -> BoundedCounter:
        """Add ``n`` to the value; the new units are rights of ``actor``."""
        check_actor(actor)
        total = _bump(self._rights, (actor, actor), check_amount(n))
        delta = BoundedCounter()
        delta._rights[(actor, actor)] = total
        return delta

    def decrement(self, actor: str, n: int) -> BoundedCounter:
        """Spend ``n`` of ``actor``'s rights; raises ``InsufficientRights`` if it holds fewer."""
        check_actor(actor)
        self._require(actor, check_amount(n), "decrement")
        _bump(self._decrements, actor, n)
        return self.copy()

    def transfer(self, from_actor: str, to_actor: str, n: int) -> BoundedCounter:
        """Move ``n`` rights from ``from_actor`` (who must hold them) to ``to_actor``."""
        check_actor(from_actor)
        check_actor(to_actor)
        if from_actor == to_actor:
            raise ValueError("cannot transfer rights from an actor to itself")
        self._require(from_actor, check_amount(n), "transfer")
        _bump(self._rights, (from_actor, to_actor), n)
        return self.copy()

    def _require(self, actor: str, n: int, operation: str) -> None:
        held = self.rights(actor)
        if held < n:
            raise InsufficientRights(actor, held, n, operation)

    def merge(self, other: Self) -> None:
        self._check_same_type(other)
        merge_max(self._rights, other._rights)
        merge_max(self._decrements, other._decrements)

    def copy(self) -> Self:
        clone = type(self)()
        clone._rights = dict(self._rights)
        clone._decrements = dict(self._decrements)
        return clone

    # --- encoding ---

    def _payload(self) -> Any:
        return [
            [[giver, taker, n] for (giver, taker), n in sorted(self._rights.items())],
            [[actor, n] for actor, n in sorted(self._decrements.items())],
        ]

    @classmethod
    def _from_payload(cls, payload: Any) -> Self:
        rights, decrements = expect_list(payload, "bounded counter", 2)
        counter = cls()
        for item in expect_list(rights, "rights"):
            giver, taker, n = expect_list(item, "rights entry", 3)
            key = (expect_str(giver, "giver"), expect_str(taker, "taker"))
            counter._rights[key] = expect_int(n, "rights", low=1)
        for item in expect_list(decrements, "decrements"):
            actor, n = expect_list(item, "decrements entry", 2)
            counter._decrements[expect_str(actor, "actor")] = expect_int(n, "decrements", low=1)
        # Not checked: that every actor's rights are >= 0. That holds for every state the
        # mutators and merges can produce; a well-formed but forged state cannot be told apart
        # here (integrity of stored and sent bytes is the job of checksums around them).
        return counter
