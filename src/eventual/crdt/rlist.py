"""Replicated list: a sequence whose elements carry dense position identifiers (Logoot,
Weiss, Urso, Molli, ICDCS 2009; in the line of Riak's and Akka's sequence types), so it is
a ``RankedMap`` (``crdt/ranked.py``) whose members are positions and whose rank key is the
position itself.

Why positions and not RGA's linked insertions: an element's place is then its identifier
alone, comparable as bytes, so the list is an add-wins map from position to value, stored
and replicated member by member as every collection is, and kept in a ``SortedList`` of
positions that answers LINDEX, LRANGE and the ends in O(log n) at any length. RGA places an
element after the one it was inserted next to, which needs the tree of insertions to find
an index; pushes and pops at the ends, what Redis lists are mostly used for, cost RGA the
same, and a position never has to be re-read to be placed.

A position is a path of *triples* ``(digit, site, counter)``, each 24 bytes (a 64-bit
digit, an 8-byte hash of the actor that made it, and that actor's dot counter), compared
as bytes: digit first, then site, then counter, and a path that is a prefix of another
first. ``position_between(p, q)`` finds the first level where a digit fits strictly
between ``p``'s and ``q``'s and ends the path there with the maker's own site and counter,
so every position made is new (no two actors share a site and counter) and lies strictly
between its neighbours. Pushes at an end step by ``END_STEP`` from the last digit, so a
list grown by LPUSH or RPUSH alone keeps one triple per position for 2**31 pushes at each
end before its positions take a second level.

What concurrent changes do (each element's value is an ``LWWRegister``):

| on replica A | on replica B, at the same time | after both are merged |
|---|---|---|
| RPUSH l x | RPUSH l y | both, in the order of their positions: same on every replica |
| LPOP l (gets the head h) | LPOP l (gets h) | both popped h; h is gone |
| LSET l 0 v | LPOP l (gets the old head) | the head stays, with v (the set re-adds it) |
| LSET l 0 v | LSET l 0 w | the later write's value |
| DEL l | RPUSH l x | x (observed-remove) |

Two pushes made at once at the same end get the same digit and differ in site: their order
is the order of the pushing nodes' site hashes, not of their clocks, but it is the same on
every replica.
"""

from __future__ import annotations

import hashlib
from typing import Any, Self

from eventual.codec import DecodeError, Element, TypeTag
from eventual.crdt.lwwregister import LWWRegister
from eventual.crdt.ranked import By, Ranked, RankedMap
from eventual.lattice import Lattice

__all__ = ["END_STEP", "ReplicatedList", "position_between", "site_of"]

DIGIT_BASE = 2**64  # digits are 64-bit: 0 .. DIGIT_BASE - 1
END_STEP = 2**32  # how far apart pushes at an end place their digits
_TRIPLE = 24
_MIN = (0, b"\x00" * 8, 0)  # below every real triple (real counters start at 1)


def site_of(actor: str) -> bytes:
    """The 8-byte site an actor's positions carry (a hash: equal for equal actors)."""
    return hashlib.blake2b(actor.encode(), digest_size=8).digest()


def _triples(position: bytes) -> list[tuple[int, bytes, int]]:
    return [
        (
            int.from_bytes(position[i : i + 8], "big"),
            position[i + 8 : i + 16],
            int.from_bytes(position[i + 16 : i + 24], "big"),
        )
        for i in range(0, len(position), _TRIPLE)
    ]


def _encoded(triples: list[tuple[int, bytes, int]]) -> bytes:
    return b"".join(d.to_bytes(8, "big") + s + c.to_bytes(8, "big") for d, s, c in triples)


def position_between(low: bytes | None, high: bytes | None, site: bytes, counter: int) -> bytes:
    """A new position strictly between ``low`` and ``high`` (None: the start, the end),
    ending in ``(digit, site, counter)``. Near ``high`` when ``low`` is the start (LPUSH),
    near ``low`` when ``high`` is the end (RPUSH), in the middle otherwise."""
    lows = [] if low is None else _triples(low)
    highs = None if high is None else _triples(high)
    prefix: list[tuple[int, bytes, int]] = []
    bounded = highs is not None  # ``high`` shares the path taken so far
    level = 0
    while True:
        below = lows[level] if level < len(lows) else _MIN
        above = highs[level][0] if bounded and highs is not None and level < len(highs) else None
        lo = below[0]
        hi = DIGIT_BASE if above is None else above
        if hi - lo > 1:
            if above is None and level < len(lows):  # after the last: step up
                digit = lo + END_STEP if hi - lo > END_STEP else lo + (hi - lo) // 2
            elif above is not None and low is None:  # before the first: step down
                digit = hi - END_STEP if hi - lo > END_STEP else lo + (hi - lo) // 2
            else:
                digit = lo + (hi - lo) // 2
            return _encoded([*prefix, (digit, site, counter)])
        # No digit fits here: follow ``low``'s path one level down.
        prefix.append(below)
        if bounded and highs is not None and (level >= len(highs) or highs[level] != below):
            bounded = False  # ``high`` branches off here: nothing bounds the levels below
        level += 1


def _check_position(position: object) -> None:
    if not isinstance(position, bytes) or not position or len(position) % _TRIPLE:
        raise DecodeError(f"list: {position!r} is not a position")
    if int.from_bytes(position[-8:], "big") < 1:
        raise DecodeError("list: a position must end with a real counter")


class ReplicatedList(RankedMap):
    TAG = TypeTag.LIST
    __slots__ = ()

    # --- what RankedMap asks ---

    def _rank_key(self, member: Element) -> Any:
        return member

    @staticmethod
    def _member_of(key: Any) -> bytes:
        return key  # type: ignore[no-any-return]

    @staticmethod
    def _check_member(member: object, states: dict[Any, Lattice]) -> None:
        _check_position(member)
        for state in states.values():
            if type(state) is not LWWRegister:
                raise DecodeError(f"list: an element holds a {type(state).__name__}")
            write = state._write
            if write is None or not isinstance(write[2], bytes):
                raise DecodeError("list: an element's value is not bytes")

    # --- reading ---

    def shown(self, member: bytes) -> Any:
        """What a ranked read answers for an element: its value."""
        register = self.register(member)
        return None if register is None else register.value()

    def positions(self) -> Any:
        """Every position, in order (the ranking: do not change it)."""
        return self.ranked()

    def select(self, query: Ranked) -> tuple[list[bytes], int]:
        """A RANK read (LRANGE, LINDEX); a list answers no other."""
        if query.by is not By.RANK:
            return [], -1
        return super().select(query)

    # --- changing ---

    def _place(self, actor: str, position: bytes, value: bytes, timestamp: int) -> Self:
        return self._write(actor, position, lambda r: r.set(value, timestamp, actor))

    def push(self, actor: str, values: list[bytes], timestamp: int, *, left: bool) -> Self:
        """LPUSH (``left``: each value becomes the head, in turn) or RPUSH."""
        delta = type(self)()
        site = site_of(actor)
        for value in values:
            ranked = self.ranked()
            counter = self._context.next_dot(actor)[1]
            if left:
                position = position_between(None, ranked[0] if ranked else None, site, counter)
            else:
                position = position_between(ranked[-1] if ranked else None, None, site, counter)
            delta.merge(self._place(actor, position, value, timestamp))
        return delta

    def insert(self, actor: str, index: int, value: bytes, timestamp: int) -> Self:
        """Insert ``value`` so that it ends at ``index`` (0 .. len: LINSERT's place)."""
        ranked = self.ranked()
        low = ranked[index - 1] if index > 0 else None
        high = ranked[index] if index < len(ranked) else None
        counter = self._context.next_dot(actor)[1]
        position = position_between(low, high, site_of(actor), counter)
        return self._place(actor, position, value, timestamp)

    def set_value(self, actor: str, position: bytes, value: bytes, timestamp: int) -> Self:
        """LSET of the element at ``position`` (it keeps its place)."""
        return self._place(actor, position, value, timestamp)
