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

Ranked (``crdt/ranked.py``) by ``(score, member)``, as Redis orders a sorted set (by score,
then by the member's bytes): O(log n) a change, O(log n) a rank, O(log n + m) a range of m
members. Stored and replicated as any collection: a head and one cell per member.

Scores are doubles, never NaN: ZADD takes -inf and +inf; increments are finite, and a score
that is infinite stays so (an increment does not move it).
"""

from __future__ import annotations

import math
from typing import Any, Self

from eventual.codec import DecodeError, Element, TypeTag
from eventual.crdt.lwwregister import LWWRegister
from eventual.crdt.ranked import By, Ranked, RankedMap
from eventual.lattice import Lattice

__all__ = ["SortedSet", "register_score"]


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


def _first_above(ranked: Any, score: float) -> int:
    """The position of the first member whose score is above ``score``."""
    if score == math.inf:
        return len(ranked)
    return int(ranked.bisect_left((math.nextafter(score, math.inf),)))


class SortedSet(RankedMap):
    TAG = TypeTag.SORTED_SET
    __slots__ = ()

    # --- what RankedMap asks ---

    def _rank_key(self, member: Element) -> Any:
        score = self.score(member)
        assert score is not None
        return (score, member)

    @staticmethod
    def _member_of(key: Any) -> bytes:
        return key[1]  # type: ignore[no-any-return]

    @staticmethod
    def _check_member(member: object, states: dict[Any, Lattice]) -> None:
        _check_scores(states, member)

    # --- reading ---

    def score(self, member: Element) -> float | None:
        register = self.register(member)
        return None if register is None else register_score(register)

    def value(self) -> dict[Element, Any]:
        return {member: self.score(member) for member in self.keys()}

    def shown(self, member: bytes) -> Any:
        """What a ranked read answers for a member: its score."""
        return self.score(member)

    def _positions(self, query: Ranked) -> tuple[int, int]:
        ranked = self._ranked
        if query.by is By.SCORE:
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
            return first, end
        return self._lex_positions(query)

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

    # --- changing ---

    def set_score(self, actor: str, member: bytes, score: float, timestamp: int) -> Self:
        """ZADD of one member: write its score (overriding the increments seen here)."""
        if isinstance(score, bool) or not isinstance(score, float) or math.isnan(score):
            raise ValueError("a score is a double, not NaN")
        return self._write(actor, member, lambda r: r.set(score, timestamp, actor))

    def add_to_score(self, actor: str, member: bytes, amount: float) -> Self:
        """ZINCRBY: add ``amount`` (finite) to the member's score (absent: from 0)."""
        if isinstance(amount, bool) or not isinstance(amount, float) or not math.isfinite(amount):
            raise ValueError("an increment of a score is a finite double")
        current = self.score(member)
        if current is not None and math.isinf(current):
            return type(self)()  # infinite stays infinite: nothing to add
        return self._write(actor, member, lambda r: r.increment_float(actor, amount))
