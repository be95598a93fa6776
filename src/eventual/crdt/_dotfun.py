"""The shared body of the single-valued causal CRDTs (MVRegister, EWFlag): a map from live
dots to values plus a causal context ("dot fun" in Almeida, Shoker, Baquero 2018, §5).

A write takes a fresh dot and replaces every dot this replica has seen; a clear forgets them.
Concurrent writes keep their own dots; merge keeps a dot that both sides hold or that the
other side never saw.
"""

from __future__ import annotations

from typing import Any, Self

from eventual.codec import Scalar, check_actor, expect_list, expect_scalar
from eventual.crdt._causal import CausalContext, Dot, check_dots_seen, decode_dot, join_dot_maps
from eventual.lattice import Lattice

__all__ = ["DotFunction"]


class DotFunction(Lattice):
    __slots__ = ("_context", "_values")

    def __init__(self) -> None:
        self._values: dict[Dot, Scalar] = {}
        self._context = CausalContext()

    def _write(self, actor: str, value: Scalar) -> Self:
        """Replace every observed value with ``value`` under a fresh dot of ``actor``."""
        check_actor(actor)
        dot = self._context.next_dot(actor)
        delta = type(self)()
        delta._context = CausalContext.of((*self._values, dot))
        delta._values = {dot: value}
        self._values = {dot: value}
        self._context.add(dot)
        return delta

    def _clear(self) -> Self:
        """Forget every observed value (a concurrent write survives)."""
        delta = type(self)()
        delta._context = CausalContext.of(self._values)
        self._values = {}
        return delta

    def is_empty(self) -> bool:
        return not self._values and not self._context

    def has_values(self) -> bool:
        return bool(self._values)

    def _sorted_values(self) -> list[Scalar]:
        return [value for _, value in sorted(self._values.items(), key=lambda item: item[0])]

    def merge(self, other: Self) -> None:
        self._check_same_type(other)
        self._values = join_dot_maps(self._values, self._context, other._values, other._context)
        self._context.merge(other._context)

    def copy(self) -> Self:
        clone = type(self)()
        clone._values = dict(self._values)
        clone._context = self._context.copy()
        return clone

    def _payload(self) -> Any:
        values = sorted(self._values.items(), key=lambda item: item[0])
        return [self._context.payload(), [[actor, n, value] for (actor, n), value in values]]

    @classmethod
    def _from_payload(cls, payload: Any) -> Self:
        state = cls()
        state._load(payload)
        return state

    def _load(self, payload: Any) -> None:
        """Fill this empty state from ``payload`` (a subclass adds its checks by overriding
        this, not ``_from_payload``: the compiled build passes the wrong class to a class
        method called through ``super()``)."""
        name = type(self).__name__
        context, values = expect_list(payload, name, 2)
        self._context = CausalContext.from_payload(context)
        for item in expect_list(values, f"{name} values"):
            actor, n, value = expect_list(item, f"{name} entry", 3)
            self._values[decode_dot([actor, n])] = expect_scalar(value, "value")
        check_dots_seen(self._values, self._context, name)
