"""What a replica stores for one key: a ``Record``, itself a CRDT (a join-semilattice), so
replicas, hints, read repair and anti-entropy all converge by one ``merge``.

A record holds (DESIGN.md §2):

- ``kind``: the key's type, fixed while the key exists (``WrongType`` otherwise);
- ``data``: the type's lattice: DVVSet (object), LWWRegister (string), PNCounter (counter),
  BoundedCounter (bcounter), ORSet (set), ORMap (hash, map), EWFlag (flag), HyperLogLog (hll);
- ``baseline``: for counters, the part a DEL observed: value = data - baseline;
- ``ttl``: an MVRegister of expiry times (ms) or None (PERSIST). A causally later EXPIRE or
  PERSIST replaces what it saw; concurrent ones resolve to PERSIST if any, else the longest;
- ``incarnation``: ``(hlc timestamp, actor)`` of the last *hard reset*, (0, "") at first.
  A record of a higher incarnation replaces one of a lower incarnation wholesale.

Deletes are observed-remove, per kind, so an update concurrent with a DEL survives:

| kind | DEL does | concurrent update |
|---|---|---|
| object | writes a tombstone sibling with the deleter's context | survives as a sibling |
| string | LWW write of "absent" at the deleter's HLC time | wins if its timestamp is later |
| counter | baseline := what the deleter saw | its increments count from zero |
| set, hash, map | removes every element/field the deleter saw | survives |
| flag | disable (enable wins) | survives |
| hll, bcounter | hard reset: new incarnation, empty data | lost (LWW by HLC, counted) |

HyperLogLog registers cannot forget one replica's adds, and a bounded counter's rights must
be accounted as a whole, so those two reset by incarnation: the one documented place besides
strings where a DEL can drop a concurrent update. Recreating a deleted key with another type
is a hard reset too.

Expired keys read as absent as soon as their time passes, at every replica that knows the
expiry; a write to an expired key first resets it, as Redis does.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Self, TypeVar

from eventual.clocks import DVVSet, VersionVector
from eventual.codec import (
    DecodeError,
    Scalar,
    TypeTag,
    decode_frame,
    expect_bytes,
    expect_int,
    expect_list,
    expect_str,
)
from eventual.crdt import (
    BoundedCounter,
    EWFlag,
    HyperLogLog,
    LWWRegister,
    MVRegister,
    ORMap,
    ORSet,
    PNCounter,
)
from eventual.lattice import Lattice

__all__ = ["TOMBSTONE", "Kind", "Record", "WrongTypeError"]

# The sibling value that marks an object deleted (values of user objects are bytes).
TOMBSTONE: Scalar = None


class Kind(IntEnum):
    """Key types. The number orders concurrent creations of one key with different types
    (the larger wins, deterministically); never renumber."""

    OBJECT = 1
    STRING = 2
    COUNTER = 3
    BCOUNTER = 4
    SET = 5
    HASH = 6
    MAP = 7
    FLAG = 8
    HLL = 9


_DATA_TYPES: dict[Kind, type[Lattice]] = {
    Kind.OBJECT: DVVSet,
    Kind.STRING: LWWRegister,
    Kind.COUNTER: PNCounter,
    Kind.BCOUNTER: BoundedCounter,
    Kind.SET: ORSet,
    Kind.HASH: ORMap,
    Kind.MAP: ORMap,
    Kind.FLAG: EWFlag,
    Kind.HLL: HyperLogLog,
}

Incarnation = tuple[int, str]
L = TypeVar("L", bound=Lattice)
_FIRST: Incarnation = (0, "")
# Most records have no baseline (only deleted counters do) and no TTL: they encode as empty
# bytes, which keeps records small and cheap to encode. Canonical: empty state <=> b"".


def _optional(state: PNCounter | MVRegister) -> bytes:
    return b"" if state.is_empty() else state.to_bytes()


def _nested(cls: type[L], data: bytes, trusted: bool) -> L:
    """Decode a nested state; bytes from our own store skip the canonical re-encode check
    (they came from our encoder), bytes from anywhere else do not."""
    if trusted:
        return cls._from_payload(decode_frame(data, cls.TAG, cls.VERSION))
    return cls.from_bytes(data)


class WrongTypeError(TypeError):
    """An operation for one type on a key that holds another (Redis's WRONGTYPE)."""

    def __init__(self, key_kind: Kind, wanted: Kind) -> None:
        self.key_kind = key_kind
        self.wanted = wanted
        super().__init__(
            f"WRONGTYPE Operation against a key holding the wrong kind of value "
            f"(key holds a {key_kind.name.lower()}, the command needs a {wanted.name.lower()})"
        )


class Record(Lattice):
    TAG = TypeTag.RECORD
    __slots__ = ("baseline", "data", "incarnation", "kind", "ttl")

    def __init__(self, kind: Kind, incarnation: Incarnation = _FIRST) -> None:
        self.kind = kind
        self.incarnation = incarnation
        self.data: Lattice = _DATA_TYPES[kind]()
        self.baseline = PNCounter()  # used by counters only; empty otherwise
        self.ttl = MVRegister()

    # --- reading ---

    def expire_at(self) -> int | None:
        """The resolved expiry time in ms, or None when the key does not expire."""
        values = self.ttl.value()
        if not values or any(v is None for v in values):
            return None
        return max(v for v in values if isinstance(v, int))

    def expired(self, now_ms: int) -> bool:
        at = self.expire_at()
        return at is not None and at <= now_ms

    def has_data(self) -> bool:
        """Whether the key exists, ignoring its TTL."""
        data = self.data
        if self.kind is Kind.OBJECT:
            assert isinstance(data, DVVSet)
            return any(v is not TOMBSTONE for v in data.values())
        if self.kind is Kind.STRING:
            return data.value() is not None
        if self.kind is Kind.COUNTER:
            return data != self.baseline
        if self.kind is Kind.BCOUNTER:
            assert isinstance(data, BoundedCounter)
            return bool(data.actors())
        if self.kind in (Kind.SET, Kind.HASH, Kind.MAP):
            assert isinstance(data, ORSet | ORMap)
            return len(data) > 0
        if self.kind is Kind.FLAG:
            return bool(data.value())
        assert isinstance(data, HyperLogLog)
        return not data.is_empty()

    def present(self, now_ms: int) -> bool:
        return self.has_data() and not self.expired(now_ms)

    def value(self) -> Any:
        """The user-visible value, ignoring TTL (callers check ``present`` first)."""
        data = self.data
        if self.kind is Kind.OBJECT:
            assert isinstance(data, DVVSet)
            return [v for v in data.values() if v is not TOMBSTONE]
        if self.kind is Kind.COUNTER:
            return data.value() - self.baseline.value()
        return data.value()

    def context(self) -> VersionVector:
        """For objects: the causal context a client gets with what it read."""
        assert isinstance(self.data, DVVSet)
        return self.data.context()

    # --- lattice ---

    def merge(self, other: Self) -> None:
        self._check_same_type(other)
        mine = (self.incarnation, self.kind)
        theirs = (other.incarnation, other.kind)
        if theirs > mine:
            # A later hard reset, or the winning type of a concurrent creation: replace.
            self.kind, self.incarnation = other.kind, other.incarnation
            self.data = other.data.copy()
            self.baseline = other.baseline.copy()
            self.ttl = other.ttl.copy()
        elif theirs == mine:
            self.data.merge(other.data)
            self.baseline.merge(other.baseline)
            self.ttl.merge(other.ttl)

    def copy(self) -> Self:
        clone = type(self)(self.kind, self.incarnation)
        clone.data = self.data.copy()
        clone.baseline = self.baseline.copy()
        clone.ttl = self.ttl.copy()
        return clone

    def _payload(self) -> Any:
        return [
            int(self.kind),
            self.incarnation[0],
            self.incarnation[1],
            self.data.to_bytes(),
            _optional(self.baseline),
            _optional(self.ttl),
        ]

    @classmethod
    def from_stored(cls, data: bytes) -> Self:
        """Decode bytes this node's own store holds: shape checked, canonical form trusted."""
        return cls._decode(decode_frame(data, cls.TAG, cls.VERSION), trusted=True)

    @classmethod
    def _from_payload(cls, payload: Any) -> Self:
        return cls._decode(payload, trusted=False)

    @classmethod
    def _decode(cls, payload: Any, trusted: bool) -> Self:
        kind, stamp, actor, data, baseline, ttl = expect_list(payload, "record", 6)
        try:
            kind = Kind(expect_int(kind, "record kind", 1, max(Kind)))
        except ValueError:
            raise DecodeError(f"record: unknown kind {kind}") from None
        record = cls(
            kind, (expect_int(stamp, "incarnation"), expect_str(actor, "incarnation actor"))
        )
        record.data = _nested(_DATA_TYPES[kind], expect_bytes(data, "record data"), trusted)
        baseline = expect_bytes(baseline, "record baseline")
        ttl = expect_bytes(ttl, "record ttl")
        if baseline:
            record.baseline = _nested(PNCounter, baseline, trusted)
        if ttl:
            record.ttl = _nested(MVRegister, ttl, trusted)
        for value in record.ttl.value():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise DecodeError("record: an expiry time is not an integer")
        return record

    def __repr__(self) -> str:
        return f"Record({self.kind.name}, {self.value()!r}, expire_at={self.expire_at()})"
