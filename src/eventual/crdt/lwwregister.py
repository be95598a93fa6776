"""Last-writer-wins register (Shapiro et al., INRIA RR-7506, 2011, §3.2.1), ordered by hybrid
logical clock timestamps (``eventual.clocks``).

The write with the largest ``(timestamp, actor)`` wins; equal timestamps from different actors
are broken by actor name, so every replica picks the same winner. (Two writes with the same
timestamp *and* actor cannot come from a correct HLC; should they meet anyway, the larger
encoded value wins, which keeps merge commutative.) A concurrent write that loses is gone:
this is the one type that may drop an acknowledged write, by design, and callers count such
losses (``merge`` returns nothing; compare ``write_id`` before and after to see a loss).

A register also counts (Redis Active-Active's strings that count): ``increment`` adds to a
value that is an integer, and increments made at the same time on different replicas all
count. Beside the winning write it keeps two PN-counters (Shapiro et al. §3.1.2):
``added``, every increment made, and ``seen``, the increments some write had seen when it
was made. A write overrides the increments it has seen; one it had not seen adds to it:

    value = the winning write's value + (added - seen, per actor, never below zero)

so a ``SET`` resets what it saw and an ``INCR`` concurrent with it survives it, whichever
write wins. Increments that are not whole (``INCRBYFLOAT``) are kept the same way, as
per-actor sums of doubles (``_Fractions``), and a value they touched reads as a number's
text (``format_float``). A value that is not an integer ignores increments its write did
not see (the write that made it a word wins). ``seen`` is clamped per actor because a
replica may hear of a write before the increments it saw. A register that was never
incremented has neither counter and costs nothing more than a plain LWW register.

| on replica A | on replica B, at the same time | after both are merged |
|---|---|---|
| SET k 10 | INCR k (k was 5) | 11: B's increment was not seen by the SET |
| INCR k (k was 5) | INCR k | 7: both count |
| SET k 10 | SET k 20, later HLC time | 20: LWW; neither saw an increment |
| INCR k, then SET k 3 | | 3: the SET saw the INCR |
| DEL k | INCR k (k was 5) | 1: counts from zero, as a counter after DEL |
| SET k abc | INCR k (k was 5) | abc: not a number, the unseen increment is ignored |
"""

from __future__ import annotations

import math
from typing import Any, Self, TypeVar, cast

from eventual.codec import (
    UINT64_MAX,
    DecodeError,
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
from eventual.crdt.pncounter import PNCounter
from eventual.lattice import Lattice

__all__ = ["INT64_MAX", "INT64_MIN", "LWWRegister", "as_float", "as_integer", "format_float"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # the range of a value that counts (Redis's)

_Write = tuple[int, str, Scalar]  # (timestamp, actor, value)


def _order(write: _Write) -> tuple[int, str, bytes]:
    timestamp, actor, value = write
    return timestamp, actor, sort_key(value)


def as_integer(value: Scalar) -> int | None:
    """``value`` as a 64-bit integer if it is one, written as Redis writes it (``b"-12"``:
    no sign but ``-``, no leading zero, no space), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if INT64_MIN <= value <= INT64_MAX else None
    if not isinstance(value, (bytes, str)) or not 0 < len(value) <= 20:
        return None
    raw = value.encode() if isinstance(value, str) else value
    try:
        number = int(raw)
    except ValueError:
        return None
    if b"%d" % number != raw or not INT64_MIN <= number <= INT64_MAX:
        return None
    return number


def as_float(value: Scalar) -> float | None:
    """``value`` as a finite double if it is a number Redis's INCRBYFLOAT takes (``10.5``,
    ``-3``, ``1e3``; no space, no ``nan`` or ``inf``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, (bytes, str)) and 0 < len(value) <= 64:
        raw = value.decode(errors="replace") if isinstance(value, bytes) else value
        if raw.strip() != raw or "_" in raw:
            return None
        try:
            number = float(raw)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def format_float(number: float) -> bytes:
    """A double as INCRBYFLOAT answers it: no exponent for a whole number, else the shortest
    text that reads back as the same double."""
    if number.is_integer() and abs(number) < 1e17:
        return b"%d" % int(number)
    return repr(number).encode()


class _Fractions:
    """Increments that are not whole (INCRBYFLOAT): per actor, the sum of its positive
    increments and of its negative ones, each only growing (adding a positive double never
    makes a sum smaller), so replicas join them by the per-actor maximum, as a PN-counter."""

    __slots__ = ("sums",)

    def __init__(self) -> None:
        self.sums: dict[str, tuple[float, float]] = {}

    def add(self, actor: str, amount: float) -> _Fractions:
        up, down = self.sums.get(actor, (0.0, 0.0))
        sums = (up + amount, down) if amount > 0 else (up, down - amount)
        if not all(math.isfinite(total) for total in sums):
            raise ValueError("increment would produce NaN or Infinity")  # Redis's words
        self.sums[actor] = sums
        delta = _Fractions()
        delta.sums[actor] = sums
        return delta

    def merge(self, other: _Fractions) -> None:
        for actor, (up, down) in other.sums.items():
            mine = self.sums.get(actor)
            self.sums[actor] = (
                (up, down) if mine is None else (max(mine[0], up), max(mine[1], down))
            )

    def copy(self) -> _Fractions:
        clone = _Fractions()
        clone.sums = dict(self.sums)
        return clone

    def unseen(self, seen: _Fractions | None) -> float | None:
        """What these sums hold beyond ``seen``, per actor, never below zero (None: none),
        summed in actor order: every replica adds the same doubles in the same order."""
        total = 0.0
        any_unseen = False
        for actor in sorted(self.sums):
            up, down = self.sums[actor]
            seen_up, seen_down = (0.0, 0.0) if seen is None else seen.sums.get(actor, (0.0, 0.0))
            if up > seen_up:
                total += up - seen_up
                any_unseen = True
            if down > seen_down:
                total -= down - seen_down
                any_unseen = True
        return total if any_unseen else None

    def payload(self) -> list[Any]:
        return [[actor, up, down] for actor, (up, down) in sorted(self.sums.items())]

    @staticmethod
    def from_payload(payload: Any) -> _Fractions | None:
        fractions = _Fractions()
        for item in expect_list(payload, "fractions"):
            actor, up, down = expect_list(item, "fraction", 3)
            sums = (_expect_sum(up), _expect_sum(down))
            fractions.sums[expect_str(actor, "actor")] = sums
        return fractions if fractions.sums else None


def _expect_sum(value: object) -> float:
    if not isinstance(value, float) or not math.isfinite(value) or value < 0:
        raise DecodeError(f"a fraction sum is a finite double >= 0, not {value!r}")
    return value


def _unseen(added: PNCounter, seen: PNCounter | None) -> int | None:
    """The sum of the increments in ``added`` beyond ``seen``, per actor, never below zero
    (None: there are none, so the write's value stands as written)."""
    total = 0
    any_unseen = False
    for counts, seen_counts, sign in (
        (added._increments._counts, None if seen is None else seen._increments._counts, 1),
        (added._decrements._counts, None if seen is None else seen._decrements._counts, -1),
    ):
        for actor, count in counts.items():
            beyond = count - (0 if seen_counts is None else seen_counts.get(actor, 0))
            if beyond > 0:
                any_unseen = True
                total += sign * beyond
    return total if any_unseen else None


class LWWRegister(Lattice):
    TAG = TypeTag.LWW_REGISTER
    __slots__ = ("_added", "_fractions", "_fractions_seen", "_seen", "_write")

    def __init__(self) -> None:
        self._write: _Write | None = None
        # Increments made, and those some write had seen (None until there are any); the
        # same for increments that are not whole (INCRBYFLOAT).
        self._added: PNCounter | None = None
        self._seen: PNCounter | None = None
        self._fractions: _Fractions | None = None
        self._fractions_seen: _Fractions | None = None

    def value(self) -> Scalar:
        """The winning value (plus the increments it had not seen, when it is an integer),
        or None if nothing was ever written."""
        write = self._write
        base = None if write is None else write[2]
        added = self._added
        fractions = self._fractions
        if added is None and fractions is None:
            return base
        unseen = None if added is None else _unseen(added, self._seen)
        unseen_fraction = None if fractions is None else fractions.unseen(self._fractions_seen)
        if unseen_fraction is None:
            if unseen is None:
                return base
            number = 0 if base is None else as_integer(base)
            return base if number is None else number + unseen
        start = 0.0 if base is None else as_float(base)
        if start is None:
            return base
        return format_float(start + (unseen or 0) + unseen_fraction)

    def counts(self) -> bool:
        """Whether increments were ever made to this register."""
        return self._added is not None or self._fractions is not None

    def increment_float(self, actor: str, amount: float) -> LWWRegister:
        """INCRBYFLOAT: add ``amount`` to a value that is a number (or absent: 0); the value
        reads as a number's text from then on. ValueError if it is not a number or the sum
        is not finite."""
        check_actor(actor)
        if isinstance(amount, bool) or not isinstance(amount, float) or not math.isfinite(amount):
            raise ValueError("the amount must be a finite number")
        value = self.value()
        current = 0.0 if value is None else as_float(value)
        if current is None:
            raise ValueError("value is not a valid float")  # Redis's words
        if not math.isfinite(current + amount):
            raise ValueError("increment would produce NaN or Infinity")
        delta = LWWRegister()
        if amount == 0:
            return delta
        fractions = self._fractions
        if fractions is None:
            fractions = self._fractions = _Fractions()
        delta._fractions = fractions.add(actor, amount)
        return delta

    def number(self) -> int:
        """The value as an integer (absent: 0); ValueError if it is not one."""
        value = self.value()
        number = 0 if value is None else as_integer(value)
        if number is None:
            raise ValueError("value is not an integer or out of range")  # Redis's words
        return number

    def increment(self, actor: str, amount: int) -> LWWRegister:
        """Add ``amount`` (negative: subtract) to a value that is an integer (or absent:
        0); ValueError if it is not one or the sum would leave 64 bits."""
        check_actor(actor)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
            raise ValueError("the amount must be a non-zero integer")
        if not INT64_MIN <= self.number() + amount <= INT64_MAX:
            raise ValueError("increment or decrement would overflow")  # Redis's words
        added = self._added
        if added is None:
            added = self._added = PNCounter()
        delta = LWWRegister()
        delta._added = (
            added.increment(actor, amount) if amount > 0 else added.decrement(actor, -amount)
        )
        return delta

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
        if self._added is not None:
            delta._seen = self._added.copy()  # this write overrides every increment seen
        if self._fractions is not None:
            delta._fractions_seen = self._fractions.copy()
        self.merge(delta)
        return delta

    def merge(self, other: Self) -> None:
        self._check_same_type(other)
        if other._added is not None or other._seen is not None:
            self._added = _joined(self._added, other._added)
            self._seen = _joined(self._seen, other._seen)
        if other._fractions is not None or other._fractions_seen is not None:
            self._fractions = _joined(self._fractions, other._fractions)
            self._fractions_seen = _joined(self._fractions_seen, other._fractions_seen)
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
        if self._added is not None:
            clone._added = self._added.copy()
        if self._seen is not None:
            clone._seen = self._seen.copy()
        if self._fractions is not None:
            clone._fractions = self._fractions.copy()
        if self._fractions_seen is not None:
            clone._fractions_seen = self._fractions_seen.copy()
        return clone

    def _payload(self) -> Any:
        """``[]``, ``[timestamp, actor, value]``, or, once it counts, those three (None if no
        write) and the ``added`` and ``seen`` counters: a register that never counted
        encodes as it always did."""
        added, seen = self._added, self._seen
        fractions, fractions_seen = self._fractions, self._fractions_seen
        whole = not (added is None or added.is_empty()) or not (seen is None or seen.is_empty())
        fractional = bool(fractions and fractions.sums) or bool(
            fractions_seen and fractions_seen.sums
        )
        if not whole and not fractional:
            return [] if self._write is None else list(self._write)
        write: list[Any] = [None, None, None] if self._write is None else list(self._write)
        payload = [*write, (added or PNCounter())._payload(), (seen or PNCounter())._payload()]
        if fractional:
            payload.append((fractions or _Fractions()).payload())
            payload.append((fractions_seen or _Fractions()).payload())
        return payload

    @classmethod
    def _from_payload(cls, payload: Any) -> Self:
        register = cls()
        items = expect_list(payload, "lww register")
        if not items:
            return register
        if len(items) in (5, 7):
            timestamp, actor, value, added, seen = items[:5]
            register._added = _counter_or_none(added)
            register._seen = _counter_or_none(seen)
            if len(items) == 7:
                register._fractions = _Fractions.from_payload(items[5])
                register._fractions_seen = _Fractions.from_payload(items[6])
            if timestamp is None and actor is None and value is None:
                return register
        else:
            timestamp, actor, value = expect_list(items, "lww register", 3)
        register._write = (
            expect_int(timestamp, "timestamp"),
            expect_str(actor, "actor"),
            expect_scalar(value, "value"),
        )
        return register


_Sums = TypeVar("_Sums", PNCounter, _Fractions)


def _joined(mine: _Sums | None, theirs: _Sums | None) -> _Sums | None:
    """``mine`` joined with ``theirs`` (in place, or a copy of theirs when mine is None)."""
    if theirs is None:
        return mine
    if mine is None:
        # The cast is what the compiled build's checker needs; mypy finds it redundant.
        return cast(_Sums, theirs.copy())  # type: ignore[redundant-cast,unused-ignore]
    mine.merge(theirs)
    return mine


def _counter_or_none(payload: Any) -> PNCounter | None:
    counter = PNCounter._from_payload(payload)
    return None if counter.is_empty() else counter
