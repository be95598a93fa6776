"""Collections kept in order: the part sorted sets (``zset.py``) and lists (``rlist.py``)
share, and the ranked reads they answer.

A ``RankedMap`` is an ``ORMap`` of registers (``LWWRegister``: one per member, so members
add-win and their values merge as registers do) that also keeps its members *ranked*: a
``SortedList`` of a key each member's state gives (``_rank_key``: a sorted set's ``(score,
member)``, a list's position identifier), so a rank, a range and a count cost O(log n), plus
the members returned, at any size (``select``).

The ranking is built the first time the state is read in order and kept up to date after
that, member by member: O(log n) a change. A state that is only written (a delta, a
projection, a replica nobody reads in order) never pays for it. Changes reach it through
``_begin``/``_end``: every mutation that can move a member runs with the dot store's
``touched`` set swapped for an empty one, and the members it collects are the ones ranked
again (then handed back to ``touched``, which the store drains). Stored and replicated as
any collection (``crdt/_keyed.py``): a head and one cell per member.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import IntEnum
from typing import Any, Self

import msgpack
from sortedcontainers import SortedList

from eventual.codec import DecodeError, Element, expect_list, pack
from eventual.crdt.lwwregister import LWWRegister
from eventual.crdt.ormap import ORMap
from eventual.lattice import Lattice

__all__ = ["By", "Ranked", "RankedMap"]


class By(IntEnum):
    """What a ranked read selects by. Never renumber: the number travels between nodes."""

    RANK = 0  # positions ``low``..``high`` (Redis's start and stop, negatives from the end)
    SCORE = 1  # scores between ``low`` and ``high`` (doubles; ``*_open``: exclusive)
    LEX = 2  # members between ``low`` and ``high`` (bytes; None: unbounded, see Ranked)
    MEMBER = 3  # the rank of ``member``


class Ranked:
    """A ranked read (ZRANGE, ZRANK, ZCOUNT, ZPOPMIN, ZREMRANGEBY*, LRANGE, LINDEX), the same
    on every replica: ``RankedMap.select`` answers it (a list takes RANK reads only).

    ``low``/``high`` bound the range in ascending order whatever ``rev`` says (``rev``
    only reverses the order members come in, and what RANK's positions count from). For
    LEX, a None bound is unbounded when closed (Redis's ``-`` as min, ``+`` as max) and
    past the far end when open (``+`` as min, ``-`` as max: nothing). ``offset`` members
    are skipped and at most ``limit`` returned (negative: no limit); ``count_only`` asks
    for how many there are instead (ZCOUNT, ZLEXCOUNT).
    """

    __slots__ = (
        "by",
        "count_only",
        "high",
        "high_open",
        "limit",
        "low",
        "low_open",
        "member",
        "offset",
        "rev",
    )

    def __init__(
        self,
        by: By,
        low: Any = None,
        high: Any = None,
        *,
        low_open: bool = False,
        high_open: bool = False,
        rev: bool = False,
        offset: int = 0,
        limit: int = -1,
        count_only: bool = False,
        member: bytes = b"",
    ) -> None:
        self.by = by
        self.low = low
        self.high = high
        self.low_open = low_open
        self.high_open = high_open
        self.rev = rev
        self.offset = offset
        self.limit = limit
        self.count_only = count_only
        self.member = member
        self._check()

    def _check(self) -> None:
        """ValueError unless every part has the type its ``by`` needs."""
        by = self.by
        bound: tuple[type, ...] = {
            By.RANK: (int,),
            By.SCORE: (float,),
            By.LEX: (bytes, type(None)),
            By.MEMBER: (type(None),),
        }[by]
        for value in (self.low, self.high):
            if isinstance(value, bool) or not isinstance(value, bound):
                raise ValueError(f"a {by.name} bound cannot be {value!r}")
            if isinstance(value, float) and math.isnan(value):
                raise ValueError("a score bound cannot be NaN")
        for flag in (self.low_open, self.high_open, self.rev, self.count_only):
            if not isinstance(flag, bool):
                raise ValueError("a flag must be a bool")
        for number in (self.offset, self.limit):
            if isinstance(number, bool) or not isinstance(number, int):
                raise ValueError("offset and limit are integers")
        if self.offset < 0:
            raise ValueError("the offset cannot be negative")
        if not isinstance(self.member, bytes):
            raise ValueError("a member is bytes")

    def to_payload(self) -> list[Any]:
        return [
            int(self.by),
            self.low,
            self.high,
            self.low_open,
            self.high_open,
            self.rev,
            self.offset,
            self.limit,
            self.count_only,
            self.member,
        ]

    def to_bytes(self) -> bytes:
        return pack(self.to_payload())

    @classmethod
    def from_bytes(cls, data: bytes) -> Ranked:
        """The query ``to_bytes`` encoded; DecodeError if ``data`` is not one."""
        try:
            payload = msgpack.unpackb(data, raw=False)
        except Exception as error:  # msgpack's many error types: one boundary
            raise DecodeError(f"ranked read: {error}") from None
        return cls.from_payload(payload)

    @classmethod
    def from_payload(cls, payload: Any) -> Ranked:
        """The query a peer sent; DecodeError if it is not one."""
        items = expect_list(payload, "ranked read", 10)
        try:
            by = By(items[0])
            return cls(
                by,
                items[1],
                items[2],
                low_open=items[3],
                high_open=items[4],
                rev=items[5],
                offset=items[6],
                limit=items[7],
                count_only=items[8],
                member=items[9],
            )
        except (ValueError, TypeError) as error:
            raise DecodeError(f"ranked read: {error}") from None


class RankedMap(ORMap):
    __slots__ = ("_keys", "_ranked")

    def __init__(self) -> None:
        super().__init__()
        self._ranked: Any = None  # SortedList of rank keys (the library has no type hints)
        self._keys: dict[Element, Any] = {}  # each ranked member's key, as ranked

    # --- what a subclass says ---

    def _rank_key(self, member: Element) -> Any:
        """Where ``member`` ranks (it is present)."""
        raise NotImplementedError

    @staticmethod
    def _member_of(key: Any) -> bytes:
        """The member a rank key belongs to."""
        raise NotImplementedError

    @staticmethod
    def _check_member(member: object, states: dict[Any, Lattice]) -> None:
        """DecodeError unless ``member`` and its states are what this type holds."""
        raise NotImplementedError

    # --- reading ---

    def register(self, member: Element) -> LWWRegister | None:
        """The member's register (a state of this one, not to be changed; merged if the
        member has several live dots), or None."""
        states = self._dots.entries.get(member)
        if not states:
            return None
        if len(states) == 1:
            for state in states.values():
                assert isinstance(state, LWWRegister)
                return state
        merged = self.get(member)
        assert isinstance(merged, LWWRegister)
        return merged

    def in_order(self, rev: bool) -> list[bytes]:
        """Every member, ranked (``rev``: from the end), without keeping a ranking: for a
        projection of a few members."""
        keys = sorted(self._rank_key(member) for member in self._dots.entries)
        if rev:
            keys.reverse()
        return [self._member_of(key) for key in keys]

    def ranked(self) -> Any:
        """Every member's rank key, ranked (a ``SortedList``; do not change it)."""
        ranked = self._ranked
        if ranked is None:
            keys = self._keys = {member: self._rank_key(member) for member in self._dots.entries}
            ranked = self._ranked = SortedList(keys.values())
        return ranked

    def _rank_range(self, query: Ranked) -> tuple[int, int]:
        """Positions ``[first, end)`` of a RANK query (Redis's start and stop)."""
        size = len(self._ranked)
        start, stop = query.low, query.high
        start = max(start + size if start < 0 else start, 0)
        stop = min(stop + size if stop < 0 else stop, size - 1)
        if query.rev:  # ranks counted from the end: positions mirrored
            start, stop = size - 1 - stop, size - 1 - start
        return start, stop + 1

    def _positions(self, query: Ranked) -> tuple[int, int]:
        """Positions ``[first, end)`` of a range query other than RANK."""
        return 0, 0

    def shown(self, member: bytes) -> Any:
        """What a ranked read answers for a member (a score, an element's value)."""
        raise NotImplementedError

    def _rank_of(self, member: bytes) -> int:
        """The rank of a present member, from the start (the ranking is built)."""
        return int(self._ranked.bisect_left(self._keys[member]))

    def select(self, query: Ranked) -> tuple[list[bytes], int]:
        """The members ``query`` selects, in its order, and a position: a range's first
        rank, a MEMBER's rank (-1: absent), a ``count_only`` read's count."""
        ranked = self.ranked()
        size = len(ranked)
        if query.by is By.MEMBER:
            if query.member not in self._keys:
                return [], -1
            rank = self._rank_of(query.member)
            return [query.member], size - 1 - rank if query.rev else rank
        first, end = self._rank_range(query) if query.by is By.RANK else self._positions(query)
        if end <= first:
            return [], 0
        if query.count_only:
            return [], end - first
        offset, limit = query.offset, query.limit
        if query.rev:
            stop_at = end - offset
            start_at = stop_at - limit if limit >= 0 else first
            picked = ranked.islice(max(start_at, first), max(stop_at, first), reverse=True)
        else:
            start_at = first + offset
            stop_at = start_at + limit if limit >= 0 else end
            picked = ranked.islice(min(start_at, end), min(stop_at, end))
        member_of = self._member_of
        return [member_of(key) for key in picked], first

    # --- changing: every mutation ranks again the members it moved (see the docstring) ---

    def _begin(self) -> set[Any] | None:
        """Start collecting the members a mutation moves (None: nothing is ranked yet)."""
        if self._ranked is None:
            return None
        dots = self._dots
        before = dots.touched
        dots.touched = set()
        return before

    def _end(self, before: set[Any] | None) -> None:
        if before is None:
            return
        dots = self._dots
        moved = dots.touched
        before.update(moved)
        dots.touched = before
        ranked, keys, entries = self._ranked, self._keys, dots.entries
        for member in moved:
            old = keys.pop(member, None)
            if old is not None:
                ranked.remove(old)
            if member in entries:
                key = keys[member] = self._rank_key(member)
                ranked.add(key)

    def _write(self, actor: str, member: bytes, fn: Callable[[LWWRegister], object]) -> Self:
        """Apply ``fn`` to the member's register (``ORMap.update``), ranking it again."""
        before = self._begin()
        try:
            return self.update(actor, member, LWWRegister, fn)
        finally:
            self._end(before)

    def merge(self, other: Self) -> None:
        before = self._begin()
        try:
            super().merge(other)
        finally:
            self._end(before)

    def remove(self, element: Element) -> Self:
        before = self._begin()
        try:
            return super().remove(element)
        finally:
            self._end(before)

    def clear(self) -> Self:
        delta = super().clear()
        self._ranked, self._keys = None, {}
        return delta

    def load_member(self, element: Element, cell: bytes) -> None:
        before = self._begin()
        try:
            super().load_member(element, cell)
            self._check_member(element, self._dots.entries[element])
        finally:
            self._end(before)

    # --- encoding: an ORMap's, whose values must all be what the subclass holds ---

    @classmethod
    def _from_payload(cls, payload: Any) -> Self:
        state = cls._decode(payload, depth=1)
        for member, states in state._dots.entries.items():
            cls._check_member(member, states)
        return state
