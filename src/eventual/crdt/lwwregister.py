"""Last-writer-wins register (Shapiro et al., INRIA RR-7506, 2011, §3.2.1), ordered by hybrid
logical clock timestamps (``eventual.clocks``).

The write with the largest ``(timestamp, actor)`` wins; equal timestamps from different actors
are broken by actor name, so every replica picks the same winner. (Two writes with the same
timestamp *and* actor cannot come from a correct HLC; should they meet anyway, the larger
encoded value wins, which keeps merge commutative.) A concurrent write that loses is gone:
this is the one type that may drop an acknowledged write, by design, and callers count such
losses (``merge`` returns nothing; compare ``write_id`` before and after to see a loss).
"""

from __future__ import annotations

from typing import Any, Self

from eventual.codec import (
    UINT64_MAX,
    Scalar,
    TypeTag,
    check_actor,
    check_scalar,
    expect_int,
    expect_list,
    expect_scalar,
    expect_str,
    sort_key,
)
from eventual.lattice import Lattice

__all__ = ["LWWRegister"]

_Write = tuple[int, str, Scalar]  # (timestamp, actor, value)


def _order(write: _Write) -> tuple[int, str, bytes]:
    timestamp, actor, value = write
    return timestamp, actor, sort_key(value)


class LWWRegister(Lattice):
    TAG = TypeTag.LWW_REGISTER
    __slots__ = ("_write",)

    def __init__(self) -> None:
        self._write: _Write | None = None

    def value(self) -> Scalar:
        """The winning value, or None if nothing was ever written."""
        return None if self._write is None else self._write[2]

    @property
    def timestamp(self) -> int | None:
        return None if self._write is None else self._write[0]

    @property
    def write_id(self) -> tuple[int, str] | None:
        """``(timestamp, actor)`` of the winning write."""
        return None if self._write is None else self._write[:2]

    def set(self, value: Scalar, timestamp: int, actor: str) -> LWWRegister:
        check_scalar(value)
        check_actor(actor)
        if isinstance(timestamp, bool) or not isinstance(timestamp, int):
            raise TypeError(f"timestamps are integers, not {type(timestamp).__name__}")
        if not 0 <= timestamp <= UINT64_MAX:
            raise ValueError(f"timestamp {timestamp} outside [0, 2**64 - 1]")
        delta = LWWRegister()
        delta._write = (timestamp, actor, value)
        self.merge(delta)
        return delta

    def merge(self, other: Self) -> None:
        self._check_same_type(other)
        theirs, mine = other._write, self._write
        if theirs is None or theirs is mine:
            return
        if mine is None:
            self._write = theirs
            return
        # (timestamp, actor) decides nearly always; the values' encodings (a copy of each,
        # up to 64 MiB) are compared only to break a tie between identical stamps. Compared
        # field by field: slicing the tuples built two new ones per comparison, every write.
        their_time, my_time = theirs[0], mine[0]
        if their_time != my_time:
            if their_time > my_time:
                self._write = theirs
        elif theirs[1] != mine[1]:
            if theirs[1] > mine[1]:
                self._write = theirs
        elif _order(theirs) > _order(mine):
            self._write = theirs

    def copy(self) -> Self:
        clone = type(self)()
        clone._write = self._write
        return clone

    def _payload(self) -> Any:
        return [] if self._write is None else list(self._write)

    @classmethod
    def _from_payload(cls, payload: Any) -> Self:
        register = cls()
        items = expect_list(payload, "lww register")
        if items:
            timestamp, actor, value = expect_list(items, "lww register", 3)
            register._write = (
                expect_int(timestamp, "timestamp"),
                expect_str(actor, "actor"),
                expect_scalar(value, "value"),
            )
        return register
