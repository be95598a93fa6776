"""The shared body of the keyed causal CRDTs (ORSet, ORMap): a ``KeyedDots`` store under one
causal context, and its decomposition into *members* for storage.

A big set or map is never stored or rewritten whole (DESIGN.md §3, "collections are
decomposed", after Riak's big sets, Brown et al., PaPoC 2016, and Cassandra's wide rows).
It is stored as

- a *head*: the state with every live dot taken out, which keeps the causal context (the
  compact record of every dot seen), and
- one *member cell* per key: that key's live dots and the values they carry.

A change to one member rewrites that member's cell and the head (whose context is a vector
per actor plus the dots seen out of order: small), so its cost does not grow with the
collection. ``take_touched`` says which members changed since the last time it was asked;
``member_cell`` encodes one; ``load_member`` puts one back, with the same checks as a full
decode (every live dot seen by the context, no dot live twice).

A member cell is ``msgpack([actor, n, *value, actor, n, *value, ...])``, dots in order; its
store key is ``member_id(key)``, the msgpack encoding of the element, which tells bytes,
strings and integers apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, Self, TypeVar

import msgpack

from eventual.codec import DecodeError, Element, check_element, expect_element, pack
from eventual.crdt._causal import CausalContext, Dot, KeyedDots
from eventual.lattice import Lattice

__all__ = ["KeyedCausal", "member_id", "member_of"]

V = TypeVar("V")


def member_id(element: Element) -> bytes:
    """The store key of a member: its msgpack encoding (injective over bytes, str, int)."""
    return pack(element)


def member_of(identifier: bytes) -> Element:
    """The element a ``member_id`` encodes; DecodeError if it encodes none."""
    try:
        element = msgpack.unpackb(identifier, raw=False)
    except Exception as error:  # msgpack's many error types: one boundary
        raise DecodeError(f"bad member id: {error}") from None
    return expect_element(element, "member id")


class KeyedCausal(Lattice, Generic[V]):
    """Add-wins keyed dots under one causal context. Subclasses say how a value encodes in
    a member cell (``_cell_values`` / ``_cell_value``) and how it is copied (``_adopt``)."""

    __slots__ = ("_context", "_dots")

    # Each dot in a member cell is followed by this many items (0: a set's dots carry nothing).
    _CELL_VALUE_ITEMS: int = 0

    def __init__(self) -> None:
        self._dots: KeyedDots[Element, V] = KeyedDots()
        self._context = CausalContext()

    # --- reading ---

    def __contains__(self, element: object) -> bool:
        return element in self._dots.entries

    def __len__(self) -> int:
        return len(self._dots.entries)

    def members(self) -> list[Element]:
        """The live members, in no particular order."""
        return list(self._dots.entries)

    def seen(self) -> bool:
        """Whether this state has seen any dot at all."""
        return bool(self._context)

    def digest(self) -> int:
        """The XOR of every live (key, dot)'s share: kept up to date per change."""
        return self._dots.digest

    # --- changing (what DEL and HDEL/SREM share) ---

    def remove(self, element: Element) -> Self:
        """Remove what this replica has observed of ``element``; absent: an empty delta."""
        check_element(element)
        delta = type(self)()
        old = self._dots.pop(element)
        if old:
            delta._context = CausalContext.of(old)
        return delta

    def clear(self) -> Self:
        """Remove everything this replica has observed (a DEL); concurrent adds survive."""
        delta = type(self)()
        delta._context = CausalContext.of(self._dots.clear())
        return delta

    def merge(self, other: Self) -> None:
        self._check_same_type(other)
        self._dots.merge(other._dots, self._context, other._context, self._adopt)
        self._context.merge(other._context)

    @staticmethod
    def _adopt(value: V) -> V:
        return value

    # --- projections: a few members, for reads and their repair ---

    def project(self, elements: Iterable[Element]) -> Self:
        """This state restricted to ``elements``: their live dots, and the whole context.

        Projection commutes with merge (whether a dot of a member survives a join depends
        on that member's dots and the two contexts only), so the merge of several replicas'
        projections is the projection of their merge: what a read of a few members of a big
        collection needs, at the cost of those members. A projection is *not* a state to
        merge into a replica (its context would remove every other member): repair with
        ``member_delta``."""
        projection = type(self)()
        projection._context = self._context.copy()
        dots = projection._dots
        dots._digest = None  # computed if it is ever needed; a projection is read, not kept
        adopt, entries = self._adopt, self._dots.entries
        taken, owner = dots.entries, dots.owner
        for element in elements:
            live = entries.get(element)
            if live and element not in taken:
                taken[element] = {dot: adopt(value) for dot, value in live.items()}
                for dot in live:
                    owner[dot] = element
        return projection

    def scan_page(self, cursor: int, count: int) -> tuple[Self, int]:
        """The projection to about ``count`` members from ``cursor`` on in scan order
        (``KeyedDots.scan``), and the cursor that follows them (0: the end). The merge of
        several replicas' pages is exact below the smallest cursor they return."""
        members, following = self._dots.scan(cursor, count)
        return self.project(members), following

    def live_dots(self, elements: Iterable[Element]) -> list[Dot]:
        """The live dots of ``elements``."""
        entries = self._dots.entries
        return [dot for element in elements for dot in entries.get(element, ())]

    def member_delta(self, elements: Iterable[Element], seen: Iterable[Dot]) -> Self:
        """A delta that brings a replica's ``elements`` to what this state holds of them:
        their live dots here, under a context of ``seen`` (every dot of those elements some
        replica held) plus those dots, so a replica drops the ones this state dropped and
        no other member is touched."""
        delta = self.project(elements)
        delta._context = CausalContext.of([*seen, *delta._dots.owner])
        return delta

    def context_payload(self) -> Any:
        return self._context.payload()

    def unseen_by(self, context: CausalContext, bytes_max: int) -> tuple[Self, bool]:
        """What a replica that has seen ``context`` lacks of this state, as a delta, and
        whether that is all of it (the delta stops growing at about ``bytes_max`` encoded
        bytes; the rest goes next time).

        The delta's context is the dots this state has seen and ``context`` has not; its
        members are those of them still live here. Merging it adds those members and
        records the others as seen (so removed here); it cannot touch any dot the replica
        already holds, since the replica never saw these. Its cost grows with how many dots
        the replica has not seen, not with the size of the collection: member-level
        anti-entropy."""
        delta = type(self)()
        delta._dots._digest = None  # computed if it is ever needed
        owner, entries = self._dots.owner, self._dots.entries
        size = 0
        for dot in self._context.dots_not_in(context):
            if size >= bytes_max:
                return delta, False
            delta._context.add(dot)
            size += 8
            element = owner.get(dot)
            if element is not None:
                value = entries[element][dot]
                delta._dots.entries.setdefault(element, {})[dot] = self._adopt(value)
                delta._dots.owner[dot] = element
                size += self._cell_bytes(element, value)
        return delta, True

    def _cell_bytes(self, element: Element, value: V) -> int:
        """Roughly what one dot of ``element`` costs encoded."""
        return (len(element) if isinstance(element, (bytes, str)) else 9) + 16

    # --- decomposition into a head and member cells ---

    def take_touched(self) -> set[Element]:
        """The members whose live dots changed since the last call."""
        return self._dots.take_touched()

    def changed(self) -> bool:
        """Whether any member changed since ``take_touched`` was last called."""
        return bool(self._dots.touched)

    def touch_all(self) -> None:
        """Mark every member changed: the next write stores them all (a state that was
        stored whole, or is new to this store)."""
        self._dots.touched.update(self._dots.entries)

    def head_payload(self) -> Any:
        """The payload of this state with no live dots: its context alone."""
        return [self._context.payload(), [], []]

    def member_cell(self, element: Element) -> bytes | None:
        """The encoded live dots of ``element`` (None: it is absent)."""
        live = self._dots.entries.get(element)
        if not live:
            return None
        flat: list[Any] = []
        for dot in sorted(live):
            flat += dot
            flat += self._cell_values(live[dot])
        return pack(flat)

    def load_member(self, element: Element, cell: bytes) -> None:
        """Put a stored member back (the head, with its context, is loaded first)."""
        try:
            flat = msgpack.unpackb(cell, raw=False)
        except Exception as error:
            raise DecodeError(f"member cell of {element!r}: {error}") from None
        step = 2 + self._CELL_VALUE_ITEMS
        if type(flat) is not list or not flat or len(flat) % step:
            raise DecodeError(f"member cell of {element!r}: expected dots")
        live: dict[Dot, V] = {}
        for position in range(0, len(flat), step):
            actor, n = flat[position], flat[position + 1]
            if type(actor) is not str or type(n) is not int or n < 1:
                raise DecodeError(f"member cell of {element!r}: a bad dot")
            dot = (actor, n)
            if dot not in self._context or dot in live:
                raise DecodeError(f"member cell of {element!r}: dot {dot} unseen or twice")
            live[dot] = self._cell_value(flat[position + 2 : position + step])
        self._dots.add_decoded(element, live, type(self).__name__)

    def load_members(self, cells: Iterable[tuple[bytes, bytes]]) -> None:
        for identifier, cell in cells:
            self.load_member(member_of(identifier), cell)

    def _cell_values(self, value: V) -> list[Any]:
        return []

    def _cell_value(self, items: list[Any]) -> V:
        raise NotImplementedError
