"""What a replica stores for one key: a ``Record``, itself a CRDT (a join-semilattice), so
replicas, hints, read repair and anti-entropy all converge by one ``merge``.

A record holds (DESIGN.md §2):

- ``kind``: the key's type, fixed while the key exists (``WrongType`` otherwise);
- ``data``: the type's lattice: DVVSet (object), LWWRegister (string), PNCounter (counter),
  BoundedCounter (bcounter), ORSet (set), ORMap (hash, map), SortedSet (zset),
  ReplicatedList (list), EWFlag (flag), HyperLogLog (hll);
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
| set, hash, map, zset, list | removes every element/field the deleter saw | survives |
| flag | disable (enable wins) | survives |
| hll, bcounter | hard reset: new incarnation, empty data | lost (LWW by HLC, counted) |

HyperLogLog registers cannot forget one replica's adds, and a bounded counter's rights must
be accounted as a whole, so those two reset by incarnation: the one documented place besides
strings where a DEL can drop a concurrent update. Recreating a deleted key with another type
is a hard reset too.

Expired keys read as absent as soon as their time passes, at every replica that knows the
expiry; a write to an expired key first resets it, as Redis does.

Stored form (``head_bytes``, ``take_changed_members``, ``from_cells``). A record of a scalar
kind is stored whole: its *head* is its encoding. A collection (set, hash, map, zset, list) is
stored as a head (the record with every member taken out: kind, incarnation, causal
context, TTL) plus one cell per member (``crdt._keyed``), so a change to one member writes
one cell and the head, whatever the collection's size. ``digest(head)`` is the record's hash
for anti-entropy: the head's hash mixed with the XOR of the members' dots, kept up to date
member by member, so equal records have equal digests and computing one never walks the
members.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import Any, Self, TypeVar, cast

from mypy_extensions import mypyc_attr

from eventual.clocks import DVVSet, VersionVector
from eventual.codec import (
    DecodeError,
    Scalar,
    TypeTag,
    decode_frame,
    encode_frame,
    expect_bytes,
    expect_int,
    expect_list,
    expect_str,
)
from eventual.core.merkle import record_hash
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
from eventual.crdt._keyed import KeyedCausal, member_id
from eventual.crdt.ranked import Ranked, RankedMap
from eventual.crdt.rlist import ReplicatedList
from eventual.crdt.zset import SortedSet
from eventual.lattice import Lattice

__all__ = ["COLLECTIONS", "RANKED", "TOMBSTONE", "Kind", "Record", "WrongTypeError"]

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
    ZSET = 10
    LIST = 11


# Decoding looks a kind up by number: calling an Enum is Python code, even compiled.
_KINDS = {int(kind): kind for kind in Kind}

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
    Kind.ZSET: SortedSet,
    Kind.LIST: ReplicatedList,
}

# Kinds stored as a head plus a cell per member (see the module's docstring).
COLLECTIONS = frozenset({Kind.SET, Kind.HASH, Kind.MAP, Kind.ZSET, Kind.LIST})
# Collections kept in order, which answer ranked reads (``crdt/ranked.py``).
RANKED = frozenset({Kind.ZSET, Kind.LIST})

Incarnation = tuple[int, str]
L = TypeVar("L", bound=Lattice)
_FIRST: Incarnation = (0, "")
# Most records have no baseline (only deleted counters do) and no TTL: they encode as empty
# bytes, which keeps records small and cheap to encode. Canonical: empty state <=> b"".


# The baseline and TTL of every record that has none: shared, so a record costs no objects
# for them (a PNCounter is five, an MVRegister five, and a write builds two records or more).
# Nothing changes these two: a record that needs a state of its own takes one first
# (``Record.own_baseline``, ``Record.own_ttl``); the seed sweep (tests/test_sim.py) checks
# they stay empty.
_NO_BASELINE = PNCounter()
_NO_TTL = MVRegister()


def _copy_of(state: L, empty: L) -> L:
    """A copy of a record's nested state (the shared empty one needs none)."""
    return state if state is empty else state.copy()


def _optional(state: PNCounter | MVRegister) -> bytes:
    return b"" if state.is_empty() else state.to_bytes()


def _nested(cls: type[L], data: bytes) -> L:
    """Decode a nested state, its shape checked in full. Its canonical form is not checked
    here: ``Record.from_bytes`` re-encodes the whole record, nested bytes included, and
    ``Record.from_stored`` trusts this node's own encoder."""
    return cls._from_payload(decode_frame(data, cls.TAG, cls.VERSION))


@mypyc_attr(native_class=False)
class WrongTypeError(TypeError):
    """An operation for one type on a key that holds another (Redis's WRONGTYPE)."""

    def __init__(self, key_kind: Kind, wanted: Kind) -> None:
        self.key_kind = key_kind
        self.wanted = wanted
        super().__init__(
            f"WRONGTYPE Operation against a key holding the wrong kind of value "
            f"(key holds a {key_kind.name.lower()}, the command needs a {wanted.name.lower()})"
        )


NOT_CACHED = -1  # ``Record.cached_weight`` of a record the records cache does not hold


class Record(Lattice):
    TAG = TypeTag.RECORD
    __slots__ = (
        "baseline",
        "cached_digest",
        "cached_recent",
        "cached_weight",
        "data",
        "incarnation",
        "kind",
        "ttl",
    )

    def __init__(
        self, kind: Kind, incarnation: Incarnation = _FIRST, data: Lattice | None = None
    ) -> None:
        self.kind = kind
        self.incarnation = incarnation
        self.data: Lattice = _DATA_TYPES[kind]() if data is None else data
        # Shared empty states until this record needs its own (``own_baseline``, ``own_ttl``).
        self.baseline = _NO_BASELINE  # used by counters only
        self.ttl = _NO_TTL
        # Kept by the node's records cache (``core/records.py``) on the record it holds:
        # the digest as last staged (None: not known yet) and the weight it counted
        # (``NOT_CACHED`` while the cache does not hold this object).
        self.cached_digest: int | None = None
        self.cached_weight = NOT_CACHED
        self.cached_recent = False  # used since the cache last passed it over (``Records``)

    def own_baseline(self) -> PNCounter:
        """The baseline, this record's own to change."""
        if self.baseline is _NO_BASELINE:
            self.baseline = PNCounter()
        return self.baseline

    def own_ttl(self) -> MVRegister:
        """The TTL register, this record's own to change."""
        if self.ttl is _NO_TTL:
            self.ttl = MVRegister()
        return self.ttl

    # --- reading ---

    def expire_at(self) -> int | None:
        """The resolved expiry time in ms, or None when the key does not expire."""
        if not self.ttl.has_values():
            return None  # the common case, on every request's path: no TTL was ever set
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
        collection = self._collection()
        if collection is not None:
            return len(collection) > 0
        if self.kind is Kind.FLAG:
            return bool(data.value())
        assert isinstance(data, HyperLogLog)
        return not data.is_empty()

    def reapable(self) -> bool:
        """A tombstone the reaper may drop once every replica holds it: no data, no TTL, and
        never reset (a reset's incarnation must outlive the older writes it beat)."""
        return not self.has_data() and not self.ttl.has_values() and self.incarnation == _FIRST

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

    def dotted_values(self) -> list[tuple[str, int, Scalar]]:
        """For objects: every sibling with its dot, a DEL's tombstone too (the inspector)."""
        assert isinstance(self.data, DVVSet)
        return self.data.dotted()

    def context(self) -> VersionVector:
        """For objects: the causal context a client gets with what it read."""
        assert isinstance(self.data, DVVSet)
        return self.data.context()

    def _collection(self) -> KeyedCausal[Any] | None:
        """The set, hash or map this record holds (None: another kind). By kind, not by
        ``isinstance``: this is on every write's path, and ABC checks are slow."""
        return cast(KeyedCausal[Any], self.data) if self.kind in COLLECTIONS else None

    def weight(self) -> int:
        """Roughly how many entries this record holds in memory (1 + its members)."""
        data = self._collection()
        return 1 if data is None else 1 + len(data)

    # --- projections (reads of a few members of a collection) ---

    def project(self, members: tuple[bytes, ...]) -> Self:
        """A collection restricted to ``members`` (see ``KeyedCausal.project``); a record of
        any other kind, whole. Never merge a projection into a replica: ``member_delta``."""
        data = self._collection()
        return self if data is None else self._around(data.project(members))

    def members(self) -> list[Any]:
        """A collection's live members (set elements, hash fields); nothing for other kinds."""
        data = self._collection()
        return [] if data is None else data.members()

    def select(self, query: Ranked) -> tuple[Self, list[bytes], int]:
        """A ranked read of a sorted set or a list (``RankedMap.select``): the projection
        to the members it selects, those members in its order, and its position."""
        data = self.data
        assert isinstance(data, RankedMap)
        members, position = data.select(query)
        return self._around(data.project(members)), members, position

    def scan_page(self, cursor: int, count: int) -> tuple[Self, int]:
        """A page of a collection's members from ``cursor`` on, as a projection, and the
        cursor that follows (0: the end; see ``KeyedCausal.scan_page``); a record of any
        other kind, whole."""
        data = self._collection()
        if data is None:
            return self, 0
        page, following = data.scan_page(cursor, count)
        return self._around(page), following

    def member_delta(self, members: tuple[bytes, ...], replies: list[Self]) -> Self | None:
        """The repair that brings every replica's ``members`` to this merged projection
        of ``replies`` (None when they are not all of this record's generation: a replica
        reset or retyped is left to anti-entropy)."""
        data = self._collection()
        if data is None or any(
            (r.incarnation, r.kind) != (self.incarnation, self.kind) for r in replies
        ):
            return None
        seen = [dot for r in replies for dot in cast(KeyedCausal[Any], r.data).live_dots(members)]
        return self._around(data.member_delta(members, seen))

    def unseen_by(self, theirs: Record, bytes_max: int) -> tuple[Self | None, bool]:
        """What of this collection a replica holding ``theirs`` (its head will do) has not
        seen, as a delta (None: nothing), and whether that is all (see
        ``KeyedCausal.unseen_by``). Both must be collections of one generation."""
        data, their_data = self._collection(), theirs._collection()
        assert data is not None and their_data is not None
        assert (self.incarnation, self.kind) == (theirs.incarnation, theirs.kind)
        members, complete = data.unseen_by(their_data._context, bytes_max)
        if not members.seen() and self.ttl == theirs.ttl and self.baseline == theirs.baseline:
            return None, complete
        return self._around(members), complete

    def _around(self, data: Lattice) -> Self:
        """A record of this one's generation, TTL and baseline, holding ``data`` (a part of
        this record's collection: a projection or a delta)."""
        record = type(self)(self.kind, self.incarnation, data)
        record.baseline = _copy_of(self.baseline, _NO_BASELINE)
        record.ttl = _copy_of(self.ttl, _NO_TTL)
        return record

    def same_context(self, other: Record) -> bool:
        """Whether two collections have seen exactly the same dots."""
        data, their_data = self._collection(), other._collection()
        assert data is not None and their_data is not None
        return bool(data.context_payload() == their_data.context_payload())

    def size(self) -> int:
        """Members of a collection; 1 for anything else that holds data, 0 otherwise."""
        data = self._collection()
        if data is not None:
            return len(data)
        return 1 if self.has_data() else 0

    # --- stored form: a head and member cells ---

    def head_bytes(self) -> bytes:
        """The encoding of everything but the members (of a scalar kind: the whole record)."""
        data = self._collection()
        if data is None:
            return self.to_bytes()
        return encode_frame(
            self.TAG,
            self.VERSION,
            [
                int(self.kind),
                self.incarnation[0],
                self.incarnation[1],
                encode_frame(data.TAG, data.VERSION, data.head_payload()),
                _optional(self.baseline),
                _optional(self.ttl),
            ],
        )

    def digest(self, head: bytes | None = None) -> int:
        """This record's hash for anti-entropy (``head``: its ``head_bytes``, if at hand)."""
        if head is None:
            head = self.head_bytes()
        data = self._collection()
        if data is None:
            return record_hash(head)
        return record_hash(head + data.digest().to_bytes(8, "big"))

    def take_changed_members(self) -> dict[bytes, bytes | None]:
        """The cells of the members changed since last asked (None: the member is gone),
        by member id."""
        data = self._collection()
        if data is None:
            return {}
        return {member_id(m): data.member_cell(m) for m in data.take_touched()}

    def members_changed(self) -> bool:
        """Whether any member changed since ``take_changed_members`` was last called."""
        data = self._collection()
        return data is not None and data.changed()

    def touch_all(self) -> None:
        """Mark every member changed: the next ``take_changed_members`` gives them all."""
        data = self._collection()
        if data is not None:
            data.touch_all()

    @classmethod
    def from_cells(cls, head: bytes, cells: Iterable[tuple[bytes, bytes]]) -> Self:
        """Rebuild a record from this node's store: its head, then its member cells."""
        record = cls.from_stored(head)
        data = record._collection()
        if data is not None:
            if len(data):
                # A head holding members inline was stored whole (before collections were
                # decomposed, or received whole): its next write splits it into cells.
                data.touch_all()
            data.load_members(cells)
        return record

    # --- lattice ---

    def merge(self, other: Self) -> None:
        self._check_same_type(other)
        mine = (self.incarnation, self.kind)
        theirs = (other.incarnation, other.kind)
        if theirs > mine:
            # A later hard reset, or the winning type of a concurrent creation: replace.
            self.kind, self.incarnation = other.kind, other.incarnation
            self.data = other.data.copy()
            self.baseline = _copy_of(other.baseline, _NO_BASELINE)
            self.ttl = _copy_of(other.ttl, _NO_TTL)
        elif theirs == mine:
            self.data.merge(other.data)
            if not other.baseline.is_empty():
                self.own_baseline().merge(other.baseline)
            if not other.ttl.is_empty():
                self.own_ttl().merge(other.ttl)

    def copy(self) -> Self:
        clone = type(self)(self.kind, self.incarnation, self.data.copy())
        clone.baseline = _copy_of(self.baseline, _NO_BASELINE)
        clone.ttl = _copy_of(self.ttl, _NO_TTL)
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
        return cls._from_payload(decode_frame(data, cls.TAG, cls.VERSION))

    @classmethod
    def _from_payload(cls, payload: Any) -> Self:
        raw_kind, stamp, actor, data, baseline, ttl = expect_list(payload, "record", 6)
        kind = _KINDS.get(raw_kind) if type(raw_kind) is int else None
        if kind is None:
            raise DecodeError(f"record: unknown kind {raw_kind!r}")
        record = cls(
            kind,
            (expect_int(stamp, "incarnation"), expect_str(actor, "incarnation actor")),
            _nested(_DATA_TYPES[kind], expect_bytes(data, "record data")),
        )
        baseline = expect_bytes(baseline, "record baseline")
        ttl = expect_bytes(ttl, "record ttl")
        if baseline:
            record.baseline = _nested(PNCounter, baseline)
        if ttl:
            record.ttl = _nested(MVRegister, ttl)
            for value in record.ttl.value():
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    raise DecodeError("record: an expiry time is not an integer")
        return record

    def __repr__(self) -> str:
        return f"Record({self.kind.name}, {self.value()!r}, expire_at={self.expire_at()})"
