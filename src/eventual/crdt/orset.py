"""Observed-remove set, add-wins, without tombstones (the "optimized OR-Set" of Bieniusa,
Zawirski, Preguiça, Shapiro et al., "An optimized conflict-free replicated set", 2012, in
the delta-state form of Almeida, Shoker, Baquero 2018, §7.2 "add-wins set").

Each add tags the element with a fresh dot (replacing the dots this replica had for it); a
remove forgets the dots it has observed. An add concurrent with a remove carries a dot the
remove never saw, so the element stays: add wins. Removed elements leave nothing behind but
their dots in the causal context, which compacts to one counter per actor.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Self

from eventual.codec import (
    DecodeError,
    Element,
    TypeTag,
    check_actor,
    check_element,
    element_key,
    expect_element,
    expect_list,
)
from eventual.crdt._causal import ActorTable, CausalContext, Dot
from eventual.crdt._keyed import KeyedCausal

__all__ = ["ORSet"]


class ORSet(KeyedCausal[None]):
    TAG = TypeTag.ORSET
    __slots__ = ()

    # --- reading ---

    def value(self) -> set[Element]:
        return set(self._dots.entries)

    def __iter__(self) -> Iterator[Element]:
        return iter(sorted(self._dots.entries, key=element_key))

    # --- changing ---

    def add(self, actor: str, element: Element) -> ORSet:
        check_actor(actor)
        check_element(element)
        dot = self._context.next_dot(actor)
        old = self._dots.replace(element, dot, None)
        self._context.add(dot)
        delta = ORSet()
        delta._dots.replace(element, dot, None)
        delta._context = CausalContext.of((*old, dot))
        return delta

    def copy(self) -> Self:
        clone = type(self)()
        clone._dots = self._dots.copy(self._adopt)
        clone._context = self._context.copy()
        return clone

    def _cell_value(self, items: list[Any]) -> None:
        return None

    # --- encoding ---

    def _payload(self) -> Any:
        entries = self._dots.entries
        table = ActorTable(actor for actor, _ in self._dots.owner)
        return [
            self._context.payload(),
            table.actors,
            [
                [element, *table.flat(entries[element])]
                for element in sorted(entries, key=element_key)
            ],
        ]

    @classmethod
    def _from_payload(cls, payload: Any) -> Self:
        context, actors, entries = expect_list(payload, "orset", 3)
        result = cls()
        result._context = seen = CausalContext.from_payload(context)
        table = ActorTable.decode(actors)
        result._dots._digest = None  # computed if it is ever needed
        owner, elements = result._dots.owner, result._dots.entries
        # The hot loop of reading a large set: checks inlined, errors spelled out below.
        for item in expect_list(entries, "orset entries"):
            if type(item) is not list or len(item) < 3 or len(item) % 2 == 0:
                raise DecodeError("orset entry: expected an element and at least one dot")
            element = expect_element(item[0], "orset element")
            live: dict[Dot, None] = {}
            for position in range(1, len(item), 2):
                dot = table.dot(item[position], item[position + 1])
                if dot in owner:
                    raise DecodeError(f"orset: dot {dot} is live twice")
                if dot not in seen:
                    raise DecodeError(f"orset: live dot {dot} is missing from the context")
                live[dot] = None
                owner[dot] = element
            elements[element] = live
        return result
