"""Client operations and how a coordinating replica applies them.

Every operation is a dataclass naming its key, never changed once built. ``apply(record, op,
actor, now_ms, timestamp)`` runs a mutation against the coordinator's record *in place* and
returns the record (the same object, or a new one after a hard reset), the *delta* to replicate
(a ``Record`` at the same incarnation, or a new one after a hard reset) and the result for the
client. It raises ``WrongTypeError``, ``InsufficientRights``, ``ValueError`` or ``TypeError``
before changing anything when the operation cannot apply: every argument is checked first
(``_check``), so a record held in memory is never left half changed. In place is what keeps a
write to one member of a big set as cheap as one to a small set: nothing is copied.

``actor`` is the coordinator's actor id (it names the dots and counter entries this write
creates); ``timestamp`` is the coordinator's HLC time for LWW writes and resets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from eventual.clocks import DVVSet, VersionVector
from eventual.codec import check_element
from eventual.core.record import TOMBSTONE, Kind, Record, WrongTypeError
from eventual.crdt import (
    BoundedCounter,
    EWFlag,
    HyperLogLog,
    LWWRegister,
    ORMap,
    ORSet,
    PNCounter,
    ReplicatedList,
    SortedSet,
)
from eventual.crdt.ranked import By, Ranked, RankedMap
from eventual.lattice import Lattice

__all__ = [
    "BCOUNTER_OPS",
    "MEMBER_BYTES_MAX",
    "STRING_BYTES_MAX",
    "Applied",
    "BcounterDecr",
    "BcounterIncr",
    "BcounterTransfer",
    "CounterAdd",
    "Delete",
    "Expire",
    "FlagSet",
    "Get",
    "HashDel",
    "HashIncr",
    "HashIncrFloat",
    "HashSet",
    "HllAdd",
    "HllMerge",
    "ListInsert",
    "ListPop",
    "ListPush",
    "ListRemove",
    "ListRemoveAt",
    "ListRemoveRange",
    "ListSet",
    "MapIncr",
    "MapRemove",
    "Mutation",
    "ObjectPut",
    "Operation",
    "Persist",
    "SetAdd",
    "SetRemove",
    "StringIncr",
    "StringIncrFloat",
    "StringSet",
    "ZsetAdd",
    "ZsetIncr",
    "ZsetPop",
    "ZsetRemove",
    "ZsetRemoveRange",
    "apply",
]


# Limits on what one operation carries. A collection has no size limit: its members are
# stored and replicated one by one, so only one member must fit in a message.
STRING_BYTES_MAX = 64 * 1024 * 1024  # a string value (a cached page, an image); Redis: 512 MiB
MEMBER_BYTES_MAX = 1024 * 1024  # a set member, a hash field or a hash value


# Operations are not frozen (nor are requests): one or two are built for every command, and
# a frozen dataclass's __init__ costs several times a plain one's, the compiled build's most
# of all (each field goes through object.__setattr__). Nothing changes them once built.
@dataclass(slots=True)
class Get:
    """Read a key. ``members``: read only these members of a set or fields of a hash (a
    record of any other kind is read whole); ``()``: read only a collection's size
    (``Result.size``). Either costs the same whatever the collection's size."""

    key: bytes
    members: tuple[bytes, ...] | None = None
    # A page of a collection (SSCAN, HSCAN, and SMEMBERS/HGETALL page by page): about
    # ``count`` members from ``cursor`` (0: the start) in scan order; ``Result.cursor`` is
    # where the next page starts (0: the end). A record of any other kind is read whole.
    cursor: int | None = None
    count: int = 0
    # A ranked read of a sorted set (an encoded ``crdt.zset.Ranked``: ZRANGE, ZRANK, ZCOUNT),
    # with ``members=()``: ``Result.value`` is ``[[member, score], ...]`` in its order and
    # ``Result.position`` its position (a rank, a count).
    ranked: bytes | None = None

    def __init__(  # written out: see core/messages.py, Request
        self,
        key: bytes,
        members: tuple[bytes, ...] | None = None,
        cursor: int | None = None,
        count: int = 0,
        ranked: bytes | None = None,
    ) -> None:
        self.key = key
        self.members = members
        self.cursor = cursor
        self.count = count
        self.ranked = ranked


# The most members one page of a scan returns (a COUNT above it is taken as this): a page
# is one message from each replica and one reply, each bounded by it.
SCAN_COUNT_MAX = 10_000


def scan_count(count: int) -> int:
    """A page's size as asked, within 1..SCAN_COUNT_MAX."""
    return min(max(count, 1), SCAN_COUNT_MAX)


@dataclass(slots=True)
class ObjectPut:
    """Store ``value`` as an object; ``context`` is what the writer read (None: blind)."""

    key: bytes
    value: bytes
    context: VersionVector | None = None
    kind = Kind.OBJECT


@dataclass(slots=True)
class Delete:
    """DEL: observed-remove. For objects, ``context`` says what is deleted (None: all the
    coordinator has seen)."""

    key: bytes
    context: VersionVector | None = None
    kind = None


@dataclass(slots=True)
class StringSet:
    key: bytes
    value: bytes
    expire_at_ms: int | None = None
    keep_ttl: bool = False
    kind = Kind.STRING

    def __init__(  # written out: see core/messages.py, Request
        self, key: bytes, value: bytes, expire_at_ms: int | None = None, keep_ttl: bool = False
    ) -> None:
        self.key = key
        self.value = value
        self.expire_at_ms = expire_at_ms
        self.keep_ttl = keep_ttl


@dataclass(slots=True)
class CounterAdd:
    key: bytes
    amount: int
    kind = Kind.COUNTER


@dataclass(slots=True)
class StringIncr:
    """INCRBY on a string: adds to a value that is an integer (absent: 0), and increments
    made at the same time elsewhere all count (``crdt/lwwregister.py``). On a counter made
    by ``CounterAdd`` (the HTTP counter), it is that counter's increment."""

    key: bytes
    amount: int
    kind = Kind.STRING


@dataclass(slots=True)
class StringIncrFloat:
    """INCRBYFLOAT: as ``StringIncr``, by a double; the value reads as a number's text."""

    key: bytes
    amount: float
    kind = Kind.STRING


@dataclass(slots=True)
class HashIncrFloat:
    """HINCRBYFLOAT: a hash field's ``StringIncrFloat``."""

    key: bytes
    field: bytes
    amount: float
    kind = Kind.HASH


@dataclass(slots=True)
class BcounterIncr:
    key: bytes
    amount: int
    kind = Kind.BCOUNTER


@dataclass(slots=True)
class BcounterDecr:
    key: bytes
    amount: int
    kind = Kind.BCOUNTER


@dataclass(slots=True)
class BcounterTransfer:
    key: bytes
    to_actor: str
    amount: int
    kind = Kind.BCOUNTER


@dataclass(slots=True)
class SetAdd:
    key: bytes
    members: tuple[bytes, ...]
    kind = Kind.SET


@dataclass(slots=True)
class SetRemove:
    key: bytes
    members: tuple[bytes, ...]
    kind = Kind.SET


@dataclass(slots=True)
class HashSet:
    key: bytes
    pairs: tuple[tuple[bytes, bytes], ...]
    kind = Kind.HASH


@dataclass(slots=True)
class HashDel:
    key: bytes
    fields: tuple[bytes, ...]
    kind = Kind.HASH


@dataclass(slots=True)
class HashIncr:
    key: bytes
    field: bytes
    amount: int
    kind = Kind.HASH


@dataclass(slots=True)
class MapIncr:
    """Add to the counter at ``field`` of a map of nested CRDTs."""

    key: bytes
    field: bytes
    amount: int
    kind = Kind.MAP


@dataclass(slots=True)
class MapRemove:
    key: bytes
    field: bytes
    kind = Kind.MAP


@dataclass(slots=True)
class FlagSet:
    key: bytes
    enabled: bool
    kind = Kind.FLAG


@dataclass(slots=True)
class HllAdd:
    key: bytes
    elements: tuple[bytes, ...]
    kind = Kind.HLL


@dataclass(slots=True)
class HllMerge:
    """Merge an encoded HyperLogLog (``PFMERGE``'s union of its sources) into the key."""

    key: bytes
    sketch: bytes
    kind = Kind.HLL


# ZADD's options, as bits of ``ZsetAdd.flags`` and ``ZsetIncr.flags``.
ZADD_NX, ZADD_XX, ZADD_GT, ZADD_LT, ZADD_CH = 1, 2, 4, 8, 16


@dataclass(slots=True)
class ZsetAdd:
    """ZADD: write each member's score (``flags``: ZADD_NX, ... as Redis's options). The
    result is how many members were added (ZADD_CH: added or changed)."""

    key: bytes
    pairs: tuple[tuple[float, bytes], ...]
    flags: int = 0
    kind = Kind.ZSET


@dataclass(slots=True)
class ZsetIncr:
    """ZINCRBY (and ZADD INCR, with its flags): the result is the new score, or None when a
    flag said not to."""

    key: bytes
    member: bytes
    amount: float
    flags: int = 0
    kind = Kind.ZSET


@dataclass(slots=True)
class ZsetRemove:
    key: bytes
    members: tuple[bytes, ...]
    kind = Kind.ZSET


@dataclass(slots=True)
class ZsetPop:
    """ZPOPMIN / ZPOPMAX (``highest``): remove the ``count`` lowest (highest) members the
    coordinating replica holds; the result is ``[[member, score], ...]``."""

    key: bytes
    count: int
    highest: bool = False
    kind = Kind.ZSET


@dataclass(slots=True)
class ZsetRemoveRange:
    """ZREMRANGEBYSCORE/BYRANK/BYLEX: remove what ``ranked`` (an encoded
    ``crdt.zset.Ranked``) selects at the coordinating replica; the result is how many."""

    key: bytes
    ranked: bytes
    kind = Kind.ZSET


# The most members one ZsetPop or ZsetRemoveRange removes: one write, one delta, bounded
# (the Redis face runs a bigger one as several). The same for lists.
ZSET_REMOVE_MAX = 1_000
LIST_REMOVE_MAX = ZSET_REMOVE_MAX


@dataclass(slots=True)
class ListPush:
    """LPUSH (``left``: each value becomes the head, in turn) or RPUSH; the result is the
    list's length after it, as the coordinating replica holds it."""

    key: bytes
    values: tuple[bytes, ...]
    left: bool = False
    kind = Kind.LIST


@dataclass(slots=True)
class ListPop:
    """LPOP / RPOP (``right``): remove the first (last) ``count`` elements the coordinating
    replica holds; the result is ``[[position, value], ...]``."""

    key: bytes
    count: int
    right: bool = False
    kind = Kind.LIST


@dataclass(slots=True)
class ListSet:
    """LSET: write the value of the element at ``index`` (negative: from the end) in the
    coordinating replica's list; ValueError if there is no key or no such index."""

    key: bytes
    index: int
    value: bytes
    kind = Kind.LIST


@dataclass(slots=True)
class ListInsert:
    """LINSERT: put ``value`` before (after) the first element equal to ``pivot``; the
    result is the length, -1 without such an element, 0 without the key."""

    key: bytes
    pivot: bytes
    value: bytes
    before: bool = True
    kind = Kind.LIST


@dataclass(slots=True)
class ListRemove:
    """LREM: remove up to ``count`` elements equal to ``value`` from the head (negative:
    from the tail; 0: all), at most LIST_REMOVE_MAX a write; the result is how many."""

    key: bytes
    count: int
    value: bytes
    kind = Kind.LIST


@dataclass(slots=True)
class ListRemoveRange:
    """LTRIM's removals: what ``ranked`` (an encoded RANK ``crdt.ranked.Ranked``) selects."""

    key: bytes
    ranked: bytes
    kind = Kind.LIST


@dataclass(slots=True)
class ListRemoveAt:
    """Remove the elements at these positions (LMOVE, once the element is in its
    destination); the result is how many were there."""

    key: bytes
    positions: tuple[bytes, ...]
    kind = Kind.LIST


@dataclass(slots=True)
class Expire:
    key: bytes
    at_ms: int
    kind = None


@dataclass(slots=True)
class Persist:
    key: bytes
    kind = None


Mutation = (
    ObjectPut
    | Delete
    | StringSet
    | CounterAdd
    | BcounterIncr
    | BcounterDecr
    | BcounterTransfer
    | SetAdd
    | SetRemove
    | HashSet
    | HashDel
    | HashIncr
    | MapIncr
    | MapRemove
    | FlagSet
    | HllAdd
    | Expire
    | Persist
    | HllMerge
    | StringIncr
    | StringIncrFloat
    | HashIncrFloat
    | ZsetAdd
    | ZsetIncr
    | ZsetRemove
    | ZsetPop
    | ZsetRemoveRange
    | ListPush
    | ListPop
    | ListSet
    | ListInsert
    | ListRemove
    | ListRemoveRange
    | ListRemoveAt
)
Operation = Get | Mutation
# The operations whose dots are named after the node itself (its rights), never its epoch.
BCOUNTER_OPS = (BcounterIncr, BcounterDecr, BcounterTransfer)


@dataclass(slots=True)  # not frozen: one per write, and frozen inits cost 3x
class Applied:
    record: Record
    delta: Record
    result: Any
    dot: tuple[str, int] | None = None  # object writes: the new value's dot; strings: (actor, HLC)
    supersedes: tuple[str, int] | None = None  # strings: the write this one replaced here

    def __init__(  # written out: see core/messages.py, Request
        self,
        record: Record,
        delta: Record,
        result: Any,
        dot: tuple[str, int] | None = None,
        supersedes: tuple[str, int] | None = None,
    ) -> None:
        self.record = record
        self.delta = delta
        self.result = result
        self.dot = dot
        self.supersedes = supersedes


class _Change:
    """The record being changed and the delta that describes the change."""

    def __init__(self, record: Record, actor: str, now_ms: int, timestamp: int) -> None:
        self.record = record
        self.delta = Record(record.kind, record.incarnation)
        self.actor = actor
        self.now_ms = now_ms
        self.timestamp = timestamp
        self.absorbed = False

    def absorb(self, delta: Lattice) -> None:
        """Fold the delta a data mutator returned into the record's delta (the first one
        is taken as it is: mutators return a fresh state nobody else holds)."""
        if self.absorbed:
            self.delta.data.merge(delta)
        else:
            self.delta.data = delta
            self.absorbed = True

    def ttl(self, expire_at: int | None) -> None:
        self.delta.own_ttl().merge(self.record.own_ttl().set(self.actor, expire_at))

    def hard_reset(self, kind: Kind) -> None:
        self.record = Record(kind, (self.timestamp, self.actor))
        self.delta = Record(kind, self.record.incarnation)
        self.absorbed = False

    def reset(self, context: VersionVector | None = None) -> None:
        """DEL: remove what this replica has observed (see the table in record.py)."""
        record = self.record
        kind = record.kind
        if kind is Kind.OBJECT:
            dvv = record.data
            assert isinstance(dvv, DVVSet)
            seen = dvv.context() if context is None else context
            self.absorb(dvv.update(self.actor, TOMBSTONE, seen))
        elif kind is Kind.STRING:
            assert isinstance(record.data, LWWRegister)
            self.absorb(record.data.set(None, self.timestamp, self.actor))
        elif kind is Kind.COUNTER:
            assert isinstance(record.data, PNCounter)
            # Ship the data with the baseline, so no replica sees a baseline above its data.
            record.own_baseline().merge(record.data)
            self.delta.data.merge(record.data)
            self.absorbed = True
            self.delta.own_baseline().merge(record.baseline)
        elif kind in (Kind.SET, Kind.HASH, Kind.MAP, Kind.ZSET, Kind.LIST):
            assert isinstance(record.data, (ORSet, ORMap))
            self.absorb(record.data.clear())
        elif kind is Kind.FLAG:
            assert isinstance(record.data, EWFlag)
            self.absorb(record.data.disable())
        else:  # HLL, BCOUNTER: see record.py
            self.hard_reset(kind)
            return
        if record.ttl.has_values():
            self.ttl(None)


def _lww_setter(value: bytes, timestamp: int, actor: str) -> Callable[[LWWRegister], object]:
    return lambda register: register.set(value, timestamp, actor)


def _lww_adder(actor: str, amount: int) -> Callable[[LWWRegister], object]:
    return lambda register: register.increment(actor, amount)


def _float_adder(actor: str, amount: float) -> Callable[[LWWRegister], object]:
    return lambda register: register.increment_float(actor, amount)


def _counter_adder(actor: str, amount: int) -> Callable[[PNCounter], object]:
    def add(counter: PNCounter) -> None:
        if amount > 0:
            counter.increment(actor, amount)
        else:
            counter.decrement(actor, -amount)

    return add


def _check_amount(amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
        raise ValueError("the amount must be a non-zero integer")


def _check_size(what: str, value: bytes, limit: int) -> None:
    if len(value) > limit:
        raise ValueError(f"the {what} is {len(value)} bytes, more than the limit of {limit}")


def _check_members(what: str, members: tuple[bytes, ...]) -> None:
    for member in members:
        check_element(member)
        if isinstance(member, bytes):
            _check_size(what, member, MEMBER_BYTES_MAX)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # a counter's value stays in Redis's range
MAPS = (Kind.HASH, Kind.MAP)


def _check_counter(current: object, amount: int) -> None:
    value = current if isinstance(current, int) else 0
    if not INT64_MIN <= value + amount <= INT64_MAX:
        raise ValueError("increment or decrement would overflow")  # Redis's words


def _check(op: Mutation, record: Record | None) -> None:
    """Every way ``op`` can fail, checked before anything changes."""
    if isinstance(op, (CounterAdd, HashIncr, MapIncr, StringIncr)):
        _check_amount(op.amount)
        if not INT64_MIN <= op.amount <= INT64_MAX:
            raise ValueError("value is not an integer or out of range")
        # Checked against what this replica holds: increments made meanwhile at other
        # replicas can still carry the sum past the range (docs/redis.md).
        if isinstance(op, CounterAdd) and record is not None and record.kind is Kind.COUNTER:
            _check_counter(record.value(), op.amount)
        elif isinstance(op, (HashIncr, MapIncr)) and record is not None and record.kind in MAPS:
            nested = cast(ORMap, record.data).get(op.field)
            if isinstance(nested, PNCounter):  # (a field that counts checks its own range)
                _check_counter(nested.value(), op.amount)
    if isinstance(op, StringSet):
        _check_size("string value", op.value, STRING_BYTES_MAX)
    elif isinstance(op, ObjectPut):
        _check_size("object value", op.value, STRING_BYTES_MAX)
    elif isinstance(op, (SetAdd, SetRemove)):
        _check_members("set member", op.members)
    elif isinstance(op, ZsetAdd):
        _check_members("sorted set member", tuple(member for _, member in op.pairs))
        for score, _ in op.pairs:
            if isinstance(score, bool) or not isinstance(score, float) or math.isnan(score):
                raise ValueError("score is not a valid float")
    elif isinstance(op, ZsetIncr):
        _check_members("sorted set member", (op.member,))
        if not isinstance(op.amount, float) or not math.isfinite(op.amount):
            raise ValueError("an increment of a score must be a finite number")
    elif isinstance(op, ZsetRemove):
        _check_members("sorted set member", op.members)
    elif isinstance(op, ZsetPop):
        if isinstance(op.count, bool) or not 0 <= op.count <= ZSET_REMOVE_MAX:
            raise ValueError(f"a pop takes 0 to {ZSET_REMOVE_MAX} members")
    elif isinstance(op, (ZsetRemoveRange, ListRemoveRange)):
        query = Ranked.from_bytes(op.ranked)  # DecodeError (a ValueError) if bad
        if query.count_only or query.by is By.MEMBER or not 0 <= query.limit <= ZSET_REMOVE_MAX:
            raise ValueError(f"a range removal takes a range of 0 to {ZSET_REMOVE_MAX} members")
        if isinstance(op, ListRemoveRange) and query.by is not By.RANK:
            raise ValueError("a list is removed from by rank")
    elif isinstance(op, ListPush):
        _check_members("list element", op.values)
    elif isinstance(op, ListPop):
        if isinstance(op.count, bool) or not 0 <= op.count <= LIST_REMOVE_MAX:
            raise ValueError(f"a pop takes 0 to {LIST_REMOVE_MAX} elements")
    elif isinstance(op, (ListSet, ListInsert, ListRemove)):
        _check_members("list element", (op.value,))
    elif isinstance(op, ListRemoveAt):
        if len(op.positions) > LIST_REMOVE_MAX:
            raise ValueError(f"a removal takes at most {LIST_REMOVE_MAX} elements")
    elif isinstance(op, HashDel):
        _check_members("hash field", op.fields)
    elif isinstance(op, (HashIncr, MapIncr, MapRemove, HashIncrFloat)):
        _check_members("hash field", (op.field,))
    elif isinstance(op, HashSet):
        _check_members("hash field", tuple(field for field, _ in op.pairs))
        _check_members("hash value", tuple(value for _, value in op.pairs))
        if record is not None and isinstance(record.data, ORMap):
            for field, _ in op.pairs:  # HSET over a field HINCRBY made: refuse them all
                record.data.check_type(field, LWWRegister)


def _zset_add(
    data: SortedSet, op: ZsetAdd, actor: str, timestamp: int, absorb: Callable[[Lattice], None]
) -> int:
    """ZADD, member by member as Redis runs it; how many were added (ZADD_CH: changed).
    A member named twice is decided twice, in order, and written once, with the score it
    ends at: two writes in one operation would share a timestamp, and LWW would then pick
    the larger score, not the later one."""
    flags = op.flags
    added = changed = 0
    final: dict[bytes, float] = {}
    for score, member in op.pairs:
        current = final[member] if member in final else data.score(member)
        if current is None:
            if flags & ZADD_XX:
                continue
            added += 1
        elif (
            flags & ZADD_NX
            or (flags & ZADD_GT and not score > current)
            or (flags & ZADD_LT and not score < current)
            or score == current
        ):
            continue
        changed += 1
        final[member] = score
    for member, score in final.items():
        absorb(data.set_score(actor, member, score, timestamp))
    return changed if flags & ZADD_CH else added


def _zset_incr(
    data: SortedSet, op: ZsetIncr, actor: str, absorb: Callable[[Lattice], None]
) -> float | None:
    """ZINCRBY and ZADD INCR: the new score, or None when a flag said not to add."""
    flags = op.flags
    current = data.score(op.member)
    if current is None:
        if flags & ZADD_XX:
            return None
    else:
        after = current + op.amount
        if (
            flags & ZADD_NX
            or (flags & ZADD_GT and not after > current)
            or (flags & ZADD_LT and not after < current)
        ):
            return None
    absorb(data.add_to_score(actor, op.member, op.amount))  # ValueError: not finite
    return data.score(op.member)


def _take(
    data: RankedMap, members: list[bytes], absorb: Callable[[Lattice], None]
) -> list[list[Any]]:
    """Remove ``members`` (what a pop's ranked read selected); each with what it showed
    (a score, an element's value): the pop's reply."""
    taken = [[member, data.shown(member)] for member in members]
    for member in members:
        absorb(data.remove(member))
    return taken


def _list_change(
    data: ReplicatedList,
    op: ListPush | ListPop | ListSet | ListInsert,
    actor: str,
    timestamp: int,
    absorb: Callable[[Lattice], None],
) -> Any:
    if isinstance(op, ListPush):
        absorb(data.push(actor, list(op.values), timestamp, left=op.left))
        return len(data)
    positions = data.positions()
    if isinstance(op, ListPop):
        query = Ranked(By.RANK, 0, op.count - 1, rev=op.right)
        return _take(data, data.select(query)[0], absorb)
    if isinstance(op, ListSet):
        index = op.index + len(positions) if op.index < 0 else op.index
        if not 0 <= index < len(positions):
            raise ValueError("index out of range")  # Redis's words
        absorb(data.set_value(actor, positions[index], op.value, timestamp))
        return "OK"
    for index, position in enumerate(positions):  # LINSERT: O(n), as in Redis
        if data.shown(position) == op.pivot:
            place = index if op.before else index + 1
            absorb(data.insert(actor, place, op.value, timestamp))
            return len(data)
    return -1


def _list_removals(
    data: ReplicatedList, op: ListRemove | ListRemoveRange | ListRemoveAt
) -> list[bytes]:
    """The positions a removal takes, as the coordinating replica holds the list."""
    if isinstance(op, ListRemoveAt):
        return [position for position in op.positions if position in data]
    if isinstance(op, ListRemoveRange):
        return data.select(Ranked.from_bytes(op.ranked))[0]
    positions = data.positions()
    order = reversed(positions) if op.count < 0 else iter(positions)
    wanted = min(abs(op.count) or LIST_REMOVE_MAX, LIST_REMOVE_MAX)
    found: list[bytes] = []
    for position in order:  # LREM: O(n), as in Redis
        if len(found) >= wanted:
            break
        if data.shown(position) == op.value:
            found.append(position)
    return found


def apply(record: Record | None, op: Mutation, actor: str, now_ms: int, timestamp: int) -> Applied:
    """Apply a mutation at the coordinator, in place (see the module's docstring)."""
    if (
        isinstance(op, StringIncr)
        and record is not None
        and record.kind is Kind.COUNTER
        and record.present(now_ms)
    ):
        op = CounterAdd(op.key, op.amount)  # the HTTP counter's INCR: one key, one type
    wanted: Kind | None = op.kind
    _check(op, record)
    if wanted is Kind.LIST and (record is None or not record.present(now_ms)):
        # Changes in place of a list need one: nothing is created.
        if isinstance(op, ListSet):
            raise ValueError("no such key")  # Redis's words
        if isinstance(op, (ListInsert, ListRemoveAt)):
            return Applied(record or Record(Kind.LIST), Record(Kind.LIST), 0)
    if record is None:
        if isinstance(op, (Delete, Expire, Persist)):
            return Applied(Record(Kind.OBJECT), Record(Kind.OBJECT), 0)
        assert wanted is not None
        record = Record(wanted)
    change = _Change(record, actor, now_ms, timestamp)
    present = record.present(now_ms)
    if wanted is not None and record.kind is not wanted:
        if present:
            raise WrongTypeError(record.kind, wanted)
        change.hard_reset(wanted)  # a gone key may come back as another type
    elif not present and record.has_data():
        change.reset()  # expired: a write starts from an empty key, as in Redis

    result: Any = None
    dot: tuple[str, int] | None = None
    supersedes: tuple[str, int] | None = None
    data = change.record.data
    absorb = change.absorb
    if isinstance(op, ObjectPut):
        data = cast(DVVSet, data)  # by kind: no ABC check
        absorb(data.update(actor, op.value, op.context))
        dot = (actor, data.context()[actor])
        result = data.context()
    elif isinstance(op, Delete):
        result = 1 if present else 0
        if change.record.has_data():
            change.reset(op.context)
    elif isinstance(op, StringSet):
        data = cast(LWWRegister, data)  # by kind: no ABC check
        if data.write_id is not None and data.value() is not None:
            supersedes = (data.write_id[1], data.write_id[0])
        absorb(data.set(op.value, timestamp, actor))
        dot = (actor, timestamp)
        if op.expire_at_ms is not None:
            change.ttl(op.expire_at_ms)
        elif not op.keep_ttl and change.record.ttl.has_values():
            change.ttl(None)
        result = "OK"
    elif isinstance(op, StringIncr):
        data = cast(LWWRegister, data)  # by kind: no ABC check
        absorb(data.increment(actor, op.amount))  # ValueError: not an integer, or overflow
        result = data.value()
    elif isinstance(op, StringIncrFloat):
        data = cast(LWWRegister, data)  # by kind: no ABC check
        absorb(data.increment_float(actor, op.amount))  # ValueError: not a number
        result = data.value()
    elif isinstance(op, HashIncrFloat):
        data = cast(ORMap, data)  # by kind: no ABC check
        absorb(data.update(actor, op.field, LWWRegister, _float_adder(actor, op.amount)))
        nested = data.get(op.field)
        result = None if nested is None else nested.value()
    elif isinstance(op, CounterAdd):
        data = cast(PNCounter, data)  # by kind: no ABC check
        if op.amount > 0:
            absorb(data.increment(actor, op.amount))
        else:
            absorb(data.decrement(actor, -op.amount))
        result = change.record.value()
    elif isinstance(op, BCOUNTER_OPS):
        data = cast(BoundedCounter, data)  # by kind: no ABC check
        if isinstance(op, BcounterIncr):
            absorb(data.increment(actor, op.amount))
            result = data.value()
        elif isinstance(op, BcounterDecr):
            absorb(data.decrement(actor, op.amount))
            result = data.value()
        else:
            absorb(data.transfer(actor, op.to_actor, op.amount))
            result = data.rights(actor)
    elif isinstance(op, SetAdd):
        data = cast(ORSet, data)  # by kind: no ABC check
        result = sum(member not in data for member in set(op.members))
        for member in op.members:
            absorb(data.add(actor, member))
    elif isinstance(op, SetRemove):
        data = cast(ORSet, data)  # by kind: no ABC check
        result = sum(member in data for member in set(op.members))
        for member in op.members:
            absorb(data.remove(member))
    elif isinstance(op, ZsetAdd):
        result = _zset_add(cast(SortedSet, data), op, actor, timestamp, absorb)
    elif isinstance(op, ZsetIncr):
        result = _zset_incr(cast(SortedSet, data), op, actor, absorb)
    elif isinstance(op, ZsetRemove):
        data = cast(SortedSet, data)  # by kind: no ABC check
        result = sum(member in data for member in set(op.members))
        for member in op.members:
            absorb(data.remove(member))
    elif isinstance(op, (ZsetPop, ZsetRemoveRange)):
        data = cast(SortedSet, data)  # by kind: no ABC check
        if isinstance(op, ZsetPop):
            query = Ranked(By.RANK, 0, op.count - 1, rev=op.highest)
        else:
            query = Ranked.from_bytes(op.ranked)
        taken = _take(data, data.select(query)[0] if present else [], absorb)
        result = taken if isinstance(op, ZsetPop) else len(taken)
    elif isinstance(op, (ListPush, ListPop, ListSet, ListInsert)):
        result = _list_change(cast(ReplicatedList, data), op, actor, timestamp, absorb)
    elif isinstance(op, (ListRemove, ListRemoveRange, ListRemoveAt)):
        data = cast(ReplicatedList, data)  # by kind: no ABC check
        positions = _list_removals(data, op) if present else []
        for position in positions:
            absorb(data.remove(position))
        result = len(positions)
    elif isinstance(op, HashSet):
        data = cast(ORMap, data)  # by kind: no ABC check
        result = sum(field not in data for field in dict(op.pairs))
        for field, value in op.pairs:
            absorb(data.update(actor, field, LWWRegister, _lww_setter(value, timestamp, actor)))
    elif isinstance(op, HashDel):
        data = cast(ORMap, data)  # by kind: no ABC check
        result = sum(field in data for field in set(op.fields))
        for field in op.fields:
            absorb(data.remove(field))
    elif isinstance(op, HashIncr) and not isinstance(cast(ORMap, data).get(op.field), PNCounter):
        # A hash field counts as a string does (HSET then HINCRBY works; concurrent
        # HINCRBYs all count); a field HINCRBY made before fields could count stays a
        # PN-counter, below.
        data = cast(ORMap, data)  # by kind: no ABC check
        absorb(data.update(actor, op.field, LWWRegister, _lww_adder(actor, op.amount)))
        nested = data.get(op.field)
        result = None if nested is None else nested.value()
    elif isinstance(op, (HashIncr, MapIncr)):
        data = cast(ORMap, data)  # by kind: no ABC check
        absorb(data.update(actor, op.field, PNCounter, _counter_adder(actor, op.amount)))
        nested = data.get(op.field)
        result = None if nested is None else nested.value()
    elif isinstance(op, MapRemove):
        data = cast(ORMap, data)  # by kind: no ABC check
        result = 1 if op.field in data else 0
        absorb(data.remove(op.field))
    elif isinstance(op, FlagSet):
        data = cast(EWFlag, data)  # by kind: no ABC check
        absorb(data.enable(actor) if op.enabled else data.disable())
        result = op.enabled
    elif isinstance(op, HllAdd):
        data = cast(HyperLogLog, data)  # by kind: no ABC check
        before = data.to_bytes()
        for element in op.elements:
            absorb(data.add(element))
        result = 1 if data.to_bytes() != before or not op.elements else 0
    elif isinstance(op, HllMerge):
        data = cast(HyperLogLog, data)  # by kind: no ABC check
        sketch = HyperLogLog.from_bytes(op.sketch)  # DecodeError (a ValueError) if bad
        data.merge(sketch)  # ValueError if the precisions differ
        absorb(sketch)
        result = "OK"
    elif isinstance(op, Expire):
        result = 1 if present else 0
        if present:
            change.ttl(op.at_ms)
    elif isinstance(op, Persist):
        result = 1 if present and change.record.expire_at() is not None else 0
        if result:
            change.ttl(None)
    else:  # pragma: no cover - exhaustive over Mutation
        raise TypeError(f"unknown operation {op!r}")
    return Applied(change.record, change.delta, result, dot, supersedes)
