"""Sorted set: an add-wins map from member to score, kept ranked (Redis's ZSET, merged as Redis
Active-Active merges it).

Members are an add-wins set (``ORMap``'s keys: a ZADD concurrent with a ZREM of the same
member keeps it). Each member's score is an ``LWWRegister`` that counts
(``crdt/lwwregister.py``): ZADD writes a score, ZINCRBY adds to it, increments made at the
same time on different replicas all count, and a ZADD overrides the increments it had seen
and no others. So a leaderboard fed by ZINCRBY in every region loses no points, and a ZADD
that resets a score does not undo a point it never saw.

| on replica A | on replica B, at the same time | after both are merged |
|---|---|---|
| ZINCRBY z 5 m | ZINCRBY z 3 m | m's score went up by 8 |
| ZADD z 10 m | ZINCRBY z 3 m (m was 1) | 13: B's increment was not seen by the ZADD |
| ZADD z 10 m | ZADD z 20 m, later HLC time | 20: last writer wins |
| ZREM z m | ZINCRBY z 3 m | m stays (add wins), with the increment B's state carried |

Stored and replicated as any collection (``crdt/_keyed.py``): a head and one cell per
member, so a change to one member costs the same at any size.

Ranking. Ranks, ranges and counts are read from ``ranked``: a ``SortedList`` of ``(score,
member)``, ordered as Redis orders a sorted set (by score, then by the member's bytes),
built the first time this state is read in order and kept up to date after that, member by
member: O(log n) a change, O(log n) a rank, O(log n + m) a range of m members. A state
that is only written (a delta, a projection, a replica nobody reads in order) never pays
for it. Changes reach it through ``_tracked``: every mutation that can move a member runs
with the dot store's ``touched`` set swapped for an empty one, and the members it collects
are the ones re-ranked (then handed back to ``touched``, which the store drains).

Scores are doubles, never NaN: ZADD takes -inf and +inf; increments are finite, and a score
that is infinite stays so (an increment does not move it).
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import Any, Self

import msgpack
from sortedcontainers import SortedList

from eventual.codec import DecodeError, Element, TypeTag, expect_list, pack
from eventual.crdt.lwwregister import LWWRegister
from eventual.crdt.ormap import ORMap
from eventual.lattice import Lattice

__all__ = ["By", "Ranked", "SortedSet", "register_score"]


def register_score(register: LWWRegister) -> float:
    """The score a member's register holds: its written score plus the increments that
    write had not seen (0 if it was only ever incremented)."""
    write = register._write
    base = None if write is None else write[2]
    if isinstance(base, float) and math.isinf(base):
        return base  # infinite stays infinite: no increment moves it, none makes it NaN
    value = register.value()
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bytes):
        return float(value)  # a number's text (format_float): increments were added
    return 0.0  # unreachable for a decoded state: ``_check_scores`` refuses other values


def _check_scores(states: dict[Any, Lattice], member: object) -> None:
    if not isinstance(member, bytes):
        raise DecodeError(f"sorted set: member {member!r} is not bytes")
    for state in states.values():
        if type(state) is not LWWRegister:
            raise DecodeError(f"sorted set: member {member!r} holds a {type(state).__name__}")
        write = state._write
        base = None if write is None else write[2]
        if base is not None and not isinstance(base, float):
            raise DecodeError(f"sorted set: member {member!r} has a score that is not a double")


class By(IntEnum):
    """What a ranked read selects by. Never renumber: the number travels between nodes."""

    RANK = 0  # positions ``low``..``high`` (Redis's start and stop, negatives from the end)
    SCORE = 1  # scores between ``low`` and ``high`` (doubles; ``*_open``: exclusive)
    LEX = 2  # members between ``low`` and ``high`` (bytes; None: unbounded, see Ranked)
    MEMBER = 3  # the rank of ``member``


class Ranked:
    """A ranked read of a sorted set (ZRANGE, ZRANK, ZCOUNT, ZPOPMIN, ZREMRANGEBY*), the same
    on every replica: ``SortedSet.select`` answers it.

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


def _first_above(ranked: Any, score: float) -> int:
    """The position of the first member whose score is above ``score``."""
    if score == math.inf:
        return len(ranked)
    return int(ranked.bisect_left((math.nextafter(score, math.inf),)))


class SortedSet(ORMap):
    TAG = TypeTag.SORTED_SET
    __slots__ = ("_ranked", "_scores")

    def __init__(self) -> None:
        super().__init__()
        self._ranked: Any = None  # SortedList[(score, member)] (the library has no hints)
        self._scores: dict[Element, float] = {}  # each ranked member's score, as ranked

    # --- reading ---

    def score(self, member: Element) -> float | None:
        states = self._dots.entries.get(member)
        if not states:
            return None
        if len(states) == 1:
            for state in states.values():
                return register_score(state)  # type: ignore[arg-type]
        merged = self.get(member)
        assert isinstance(merged, LWWRegister)
        return register_score(merged)

    def value(self) -> dict[Element, Any]:
        return {member: self.score(member) for member in self.keys()}

    def in_order(self, rev: bool) -> list[bytes]:
        """Every member, ranked (``rev``: highest first), without keeping a ranking: for
        a projection of a few members."""
        ranked = sorted((score, member) for member, score in self.value().items())
        if rev:
            ranked.reverse()
        return [member for _, member in ranked if isinstance(member, bytes)]

    def ranked(self) -> Any:
        """Every member as ``(score, member)``, ranked (a ``SortedList``; do not change it)."""
        ranked = self._ranked
        if ranked is None:
            scores = self._scores = {}
            for member in self._dots.entries:
                score = self.score(member)
                assert score is not None and isinstance(member, bytes)
                scores[member] = score
            ranked = self._ranked = SortedList((s, m) for m, s in scores.items())
        return ranked

    def select(self, query: Ranked) -> tuple[list[bytes], int]:
        """The members ``query`` selects, in its order, and a position: a RANK range's first
        rank, a MEMBER's rank (-1: absent), a ``count_only`` read's count."""
        ranked = self.ranked()
        size = len(ranked)
        by = query.by
        if by is By.MEMBER:
            score = self._scores.get(query.member)
            if score is None:
                return [], -1
            rank = int(ranked.bisect_left((score, query.member)))
            return [query.member], size - 1 - rank if query.rev else rank
        if by is By.RANK:
            start, stop = query.low, query.high
            start = max(start + size if start < 0 else start, 0)
            stop = min(stop + size if stop < 0 else stop, size - 1)
            if query.rev:  # ranks counted from the top: positions mirrored
                start, stop = size - 1 - stop, size - 1 - start
            first, end = start, stop + 1
        elif by is By.SCORE:
            first = (
                _first_above(ranked, query.low)
                if query.low_open
                else int(ranked.bisect_left((query.low,)))
            )
            end = (
                int(ranked.bisect_left((query.high,)))
                if query.high_open
                else _first_above(ranked, query.high)
            )
        else:
            first, end = self._lex_positions(query)
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
        return [member for _, member in picked], first

    def _lex_positions(self, query: Ranked) -> tuple[int, int]:
        """Positions of a LEX range. As in Redis, it ranges over members of one score: the
        lowest one's (members of other scores make the answer unspecified there, and here
        they are taken as ranked)."""
        ranked = self._ranked
        size = len(ranked)
        if not size:
            return 0, 0
        score = ranked[0][0]
        low, high = query.low, query.high
        if low is None:
            first = size if query.low_open else 0
        elif query.low_open:
            first = int(ranked.bisect_right((score, low)))
        else:
            first = int(ranked.bisect_left((score, low)))
        if high is None:
            end = 0 if query.high_open else size
        elif query.high_open:
            end = int(ranked.bisect_left((score, high)))
        else:
            end = int(ranked.bisect_right((score, high)))
        return first, end

    # --- changing: every mutation re-ranks the members it moved (see the docstring) ---

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
        ranked, scores = self._ranked, self._scores
        for member in moved:
            old = scores.pop(member, None)
            if old is not None:
                ranked.remove((old, member))
            score = self.score(member)
            if score is not None:
                ranked.add((score, member))
                scores[member] = score

    def merge(self, other: Self) -> None:
        before = self._begin()
        super().merge(other)
        self._end(before)

    def set_score(self, actor: str, member: bytes, score: float, timestamp: int) -> Self:
        """ZADD of one member: write its score (overriding the increments seen here)."""
        if isinstance(score, bool) or not isinstance(score, float) or math.isnan(score):
            raise ValueError("a score is a double, not NaN")
        before = self._begin()
        try:
            return self.update(actor, member, LWWRegister, lambda r: r.set(score, timestamp, actor))
        finally:
            self._end(before)

    def add_to_score(self, actor: str, member: bytes, amount: float) -> Self:
        """ZINCRBY: add ``amount`` (finite) to the member's score (absent: from 0)."""
        if isinstance(amount, bool) or not isinstance(amount, float) or not math.isfinite(amount):
            raise ValueError("an increment of a score is a finite double")
        current = self.score(member)
        if current is not None and math.isinf(current):
            return type(self)()  # infinite stays infinite: nothing to add
        before = self._begin()
        try:
            return self.update(
                actor, member, LWWRegister, lambda r: r.increment_float(actor, amount)
            )
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
        self._ranked, self._scores = None, {}
        return delta

    def load_member(self, element: Element, cell: bytes) -> None:
        before = self._begin()
        try:
            super().load_member(element, cell)
            _check_scores(self._dots.entries[element], element)
        finally:
            self._end(before)

    # --- encoding: an ORMap's, whose values must all be scores ---

    @classmethod
    def _from_payload(cls, payload: Any) -> Self:
        state = cls._decode(payload, depth=1)
        for member, states in state._dots.entries.items():
            _check_scores(states, member)
        return state
