"""What every role of a replica node shares (``core/node.py`` has the theory of operation):
its state, its limits, the requests in flight, and the few helpers every role calls: where a
reply goes, what a level needs, how a record is loaded, changed and stored.

A ``Node`` is one class made of one module per role, as Riak separates its get and put
state machines from the vnode: ``put.py`` coordinates writes, ``get.py`` reads,
``replica.py`` answers a coordinator, ``anti_entropy.py`` compares Merkle trees and repairs,
``handoff.py`` hands hints and partitions over, ``reaper.py`` reaps tombstones; ``node.py``
routes requests, runs timers and membership.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field

from mypy_extensions import trait

from eventual.clocks import DEFAULT_MAX_DRIFT_MS, HybridLogicalClock
from eventual.core.consistency import Level, Requirement, requirement
from eventual.core.membership import (
    ClusterState,
)
from eventual.core.merkle import MerkleTree
from eventual.core.messages import (
    Effects,
    ForwardReply,
    KeysReply,
    Request,
    Result,
)
from eventual.core.ops import (
    BCOUNTER_OPS,
    Mutation,
    ObjectPut,
    StringSet,
)
from eventual.core.record import Record
from eventual.core.records import Records
from eventual.core.ring import DEFAULT_N, DEFAULT_PARTITIONS, Member, Ring
from eventual.core.store import Batch, Hint, Store
from eventual.core.swim import Swim, SwimConfig
from eventual.crdt.ranked import Ranked

# Limits, each with its reason. (What one operation may carry: ops.STRING_BYTES_MAX and
# ops.MEMBER_BYTES_MAX; a collection has no size limit, its members travel one by one.)
KEY_BYTES_MAX = 8 * 1024  # keys are names, not data; Redis allows more but nobody needs it
# An object's siblings together: it is stored and replicated whole, as one value.
OBJECT_BYTES_MAX = 64 * 1024 * 1024
# A request carrying a big value gets this much more time per byte: each replica hop copies
# and hashes the value several times (decode, check, store), about 100 ms per 64 MiB on this
# class of machine, so a 64 MiB write at QUORUM gets 2 s more than the base timeout.
TIMEOUT_BYTES_PER_MS = 32 * 1024
HANDOFF_BYTES_PER_TICK_MAX = 16 * 1024 * 1024  # hinted bytes sent per handoff tick
SIBLINGS_MAX = 100  # Riak's max_siblings: past this, clients are not resolving conflicts
PENDING_MAX = 10_000  # requests in flight at one coordinator; beyond it, refuse (overload)
HANDOFF_PER_TICK_MAX = 64  # hints sent per handoff tick: handoff must not starve clients
AE_KEYS_MAX = 512  # records exchanged per anti-entropy round; the next round does the rest
AE_BYTES_MAX = 8 * 1024 * 1024  # ...and bytes: a round stops adding records past this
# A collection with more members than this is repaired member by member (AeKeySync), not
# shipped whole: below it, one message with the whole record is cheaper than the exchange.
AE_MEMBERS_WHOLE_MAX = 256
REAP_PER_TICK_MAX = 64  # tombstones checked per reap tick
SYNC_SESSIONS_PER_TICK_MAX = 8  # partitions a pending replica pulls per anti-entropy tick
# After the ring flips, how long writes must also meet their level over the replicas of the
# ring before it: the time the news takes to reach every live member (gossip goes to one peer
# a second, so O(log n) seconds), with a wide margin. A member that has not heard reads from
# the old replicas; without this, a write acknowledged by the new ones alone was invisible to
# it at ONE.
FLIP_GRACE_MS = 10_000
SYNC_TICK_MS = 200  # ...with ticks this often while it has some: at most 40 sessions a second
# Forwarded mutations remembered to drop duplicates: a mutation is an operation, not a state,
# and must not run twice. A forward's answer comes within seconds, so this many ids (a few
# seconds of a busy node's forwards) is far more than the window a duplicate can arrive in.
FORWARDS_REMEMBERED_MAX = 10_000
# Requirements worked out per (level, preference list, count): partitions x levels is a few
# thousand at most; past this the cache starts over.
REQUIREMENTS_CACHED_MAX = 4096
# Write visibility (t-visibility, Bailis et al.'s "Probabilistically Bounded Staleness"): the
# coordinator of each acknowledged write counts, per replica, how long after the client's
# acknowledgement the write became visible there, in these buckets of milliseconds; a copy
# that never acknowledged (timed out, or a fallback's hint standing in for it) counts in one
# more bucket, "not within the request timeout". Bucket i holds delays <= bound i. A replica
# has the write when it arrives there: half its acknowledgement's round trip after it was sent
# (the WARS model's W, links taken as symmetric), which is what is counted.
VISIBILITY_BOUNDS_MS = (
    0, 1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000,
)  # fmt: skip
VISIBILITY_NEVER = len(VISIBILITY_BOUNDS_MS)  # the last bucket's index
# Events an operator reads in the log (``NodeBase.events``), kept until the driver takes them:
# a driver that never does (the simulator) keeps only the latest this many.
EVENTS_MAX = 1000


_WRITE_NOTE = "; the write is applied where it landed and will spread"


def carried_bytes(op: Mutation) -> int:
    """Roughly how many bytes of value an operation carries."""
    if isinstance(op, (ObjectPut, StringSet)):
        return len(op.value)
    return 0


@dataclass(frozen=True, slots=True)
class NodeConfig:
    node: str
    members: tuple[Member, ...]
    partitions: int = DEFAULT_PARTITIONS
    n: int = DEFAULT_N
    request_timeout_ms: int = 1000
    swim: SwimConfig = field(default_factory=SwimConfig)
    handoff_ms: int = 1000
    anti_entropy_ms: int = 1000
    anti_entropy: bool = True
    reap_ms: int = 5000
    reap_grace_ms: int = 30_000
    max_drift_ms: int = DEFAULT_MAX_DRIFT_MS
    gossip_ms: int = 1000  # the cluster state goes to one peer this often
    address: str = ""  # this node's internode address, announced in the cluster state
    join: bool = False  # start as a JOINING member (members: this node only) and wait to be let in
    seeds: tuple[str, ...] = ()  # peers a joining node sends its state to until it hears back

    def __post_init__(self) -> None:
        if self.node not in {m.node for m in self.members}:
            raise ValueError(f"node {self.node!r} is not among the members")
        if self.n < 1:
            raise ValueError("n must be at least 1")
        if not self.join and self.n > len(self.members):
            raise ValueError(f"n must be in [1, {len(self.members)}] (the number of nodes)")


# Where a reply goes: a client request id, or a forwarding peer and its forward id.
Origin = tuple[str, int]
CLIENT = ""


@dataclass
class _PendingWrite:
    origin: Origin
    key: bytes
    partition: int
    delta: Record
    need: Requirement
    targets: dict[str, str | None]  # node -> the primary it stands in for (None: itself)
    acks: set[str]
    result: Result
    replied: bool = False
    # While the ring changes the write must also meet its level over the replicas of the
    # other rings someone may read from: the future ring during a transition (Cassandra's
    # pending ranges), the previous one for a while after a flip. ``others`` holds each
    # one's requirement and replicas; ``extra`` the targets that are replicas of those
    # rings only, whose acks count for them alone.
    others: tuple[tuple[Requirement, frozenset[str]], ...] = ()
    extra: frozenset[str] = frozenset()
    sent_ms: int = 0  # when the replica writes left
    acknowledged_ms: int = -1  # when the client was told it succeeded (-1: not yet)

    def __init__(  # noqa: PLR0917  (written out: see core/messages.py, Request)
        self,
        origin: Origin,
        key: bytes,
        partition: int,
        delta: Record,
        need: Requirement,
        targets: dict[str, str | None],
        acks: set[str],
        result: Result,
        *,
        others: tuple[tuple[Requirement, frozenset[str]], ...] = (),
        extra: frozenset[str] = frozenset(),
        sent_ms: int = 0,
    ) -> None:
        self.origin = origin
        self.key = key
        self.partition = partition
        self.delta = delta
        self.need = need
        self.targets = targets
        self.acks = acks
        self.result = result
        self.replied = False
        self.others = others
        self.extra = extra
        self.sent_ms = sent_ms
        self.acknowledged_ms = -1

    def counted(self) -> set[str]:
        """The acks that count for the current ring."""
        return self.acks - self.extra if self.extra else self.acks

    def met(self, region_of: dict[str, str], region: str) -> bool:
        if not self.need.met(self.counted(), region_of, region):
            return False
        if not self.others:
            return True
        # A fallback's ack counts for the primary it stands in for, as in the current ring.
        held = {self.targets.get(node) or node for node in self.acks}
        return all(need.met(held & replicas, region_of, region) for need, replicas in self.others)


@dataclass
class _PendingRead:
    origin: Origin
    key: bytes
    partition: int
    need: Requirement
    primaries: list[str]
    targets: list[str]
    members: tuple[bytes, ...] | None = None  # a projected read (ops.Get)
    cursor: int | None = None  # a page read (ops.Get): from here, about ``count`` members
    count: int = 0
    ranked: Ranked | None = None  # a ranked read of a sorted set (ops.Get)
    replies: dict[str, Record | None] = field(default_factory=dict)
    cursors: dict[str, int] = field(default_factory=dict)  # where each replica's page ended
    # Projected reads: each replica's (size, digest) of its whole record.
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)  # ranked reads: each's position
    replied: bool = False

    def __init__(  # noqa: PLR0917  (written out: see core/messages.py, Request)
        self,
        origin: Origin,
        key: bytes,
        partition: int,
        need: Requirement,
        primaries: list[str],
        targets: list[str],
        *,
        members: tuple[bytes, ...] | None = None,
        cursor: int | None = None,
        count: int = 0,
        ranked: Ranked | None = None,
    ) -> None:
        self.origin = origin
        self.key = key
        self.partition = partition
        self.need = need
        self.primaries = primaries
        self.targets = targets
        self.members = members
        self.cursor = cursor
        self.count = count
        self.ranked = ranked
        self.replies = {}
        self.cursors = {}
        self.sizes = {}
        self.positions = {}
        self.replied = False


@dataclass
class _PendingKeys:
    """A page of one partition's keys (``core/keyspace.py``): each replica asked, and the
    pages those that answered sent."""

    origin: Origin
    partition: int
    cursor: int
    targets: list[str]
    replies: dict[str, KeysReply] = field(default_factory=dict)


@dataclass
class _PendingForward:
    origin: Origin
    target: str


@dataclass
class _PendingReap:
    key: bytes
    record_hash: int
    others: set[str]
    agreed: set[str] = field(default_factory=set)


_REGIONAL = frozenset({Level.LOCAL_ONE.value, Level.LOCAL_QUORUM.value, Level.EACH_QUORUM.value})


@trait
class NodeBase:
    """The state every role reads and writes (set up by ``Node.__init__``).

    A trait, as every role is: ``Node`` inherits all the roles, and in the compiled build a
    native class may inherit several traits but only one plain class
    (docs/performance.md)."""

    config: NodeConfig
    id: str
    store: Store
    records: Records
    hlc: HybridLogicalClock
    now: int
    me: Member
    region: str
    cluster: ClusterState
    ring: Ring
    future: Ring
    previous: Ring | None
    previous_until: int
    region_of: dict[str, str]
    peers: list[str]
    swim: Swim
    synced: set[tuple[int, str]]
    target: int
    all_aware: bool
    pulls_started: set[tuple[int, str]]
    gossip_cursor: int
    membership_version: int
    epoch: int
    epoch_stale: bool
    _actor_epoch: int = -1  # the epoch ``_actor_name`` was made for
    _actor_name: str = ""
    pending: dict[int, _PendingWrite | _PendingRead | _PendingForward | _PendingReap | _PendingKeys]
    next_id: int
    forwards_seen: dict[tuple[str, int], None]
    ae_cursor: int
    my_partitions: list[int]
    trees: dict[int, MerkleTree]
    handing_off: dict[int, set[str]]
    tombstones: dict[bytes, int]
    requirements: dict[tuple[object, ...], Requirement]
    read_repair_state: int  # picks the reads at R = 1 that repair (get.py READ_REPAIR_EVERY)
    # The last partition listed in key-hash order (keyspace.py): (partition, its keys_added
    # then, its (hash, key) pairs, sorted).
    keys_ranked: tuple[int, int, list[tuple[int, bytes]]] | None
    stats: dict[str, int]
    # replica -> its VISIBILITY_BOUNDS_MS buckets (this node's own copy too), and the sum of
    # the delays counted in them (not the late ones), for a mean: see put.py.
    visibility: dict[str, list[int]]
    visibility_ms: dict[str, int]
    # What happened that an operator wants a line of log for: (event, fields), oldest first.
    # The runtime logs and empties it every turn (``server/logs.py``).
    events: deque[tuple[str, dict[str, object]]]

    # Provided by other roles (declared here so each role module type-checks alone).

    def _unsynced(self) -> list[tuple[int, str]]:
        raise NotImplementedError

    def _handed_off(self, partition: int, peer: str) -> None:
        raise NotImplementedError

    def _read_repair(self, effects: Effects, pending: _PendingRead) -> None:
        raise NotImplementedError

    def _read(
        self,
        effects: Effects,
        origin: Origin,
        request: Request,
        partition: int,
        primaries: list[str],
    ) -> None:
        raise NotImplementedError

    def _coordinate(
        self,
        effects: Effects,
        origin: Origin,
        request: Request,
        partition: int,
        primaries: list[str],
        *,
        fallback: bool,
    ) -> None:
        raise NotImplementedError

    def up(self, node: str) -> bool:
        return node == self.id or (node in self.swim.states and self.swim.alive(node))

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def new_epoch(self) -> None:
        """Write under a new actor from now on (``node.epoch``): no dot of the old epochs is
        ever issued again. After a reap or a dropped hint (``epoch_stale``), and when the
        runtime starts a node that stopped uncleanly, whose last turn may have sent dots it
        had not stored."""
        self.epoch += 1
        self.epoch_stale = False
        self.store.apply(Batch(meta={"epoch": str(self.epoch).encode()}))

    @staticmethod
    def _named_after_node(op: Mutation, fallback: bool) -> bool:
        """Whether ``op``'s dots are named after the node itself, whatever its epoch: a
        primary's bounded-counter writes (rights belong to the node)."""
        return isinstance(op, BCOUNTER_OPS) and not fallback

    def _actor(self, op: Mutation, fallback: bool) -> str:
        if self._named_after_node(op, fallback):
            return self.id  # rights belong to the node, whatever its epoch
        if self.epoch_stale:
            self.new_epoch()
        if fallback:
            return f"{self.id}~{self.epoch}"
        if self._actor_epoch != self.epoch:  # the name, made once per epoch, not per write
            self._actor_epoch = self.epoch
            self._actor_name = f"{self.id}.{self.epoch}" if self.epoch else self.id
        return self._actor_name

    def _timeout_ms(self, carried_bytes: int) -> int:
        return self.config.request_timeout_ms + carried_bytes // TIMEOUT_BYTES_PER_MS

    def _n(self, request: Request) -> int:
        return request.n if request.n is not None else self.config.n

    def _load(self, key: bytes) -> Record | None:
        """This node's own record of ``key``: the cached object, not to be changed but
        through ``_store_record``."""
        return self.records.get(key)

    def _track_tombstone(self, key: bytes, record: Record | None) -> None:
        if record is not None and record.reapable():
            self.tombstones.setdefault(key, self.now)
        else:
            self.tombstones.pop(key, None)

    def _store_record(
        self,
        batch: Batch,
        partition: int,
        key: bytes,
        record: Record,
        *,
        whole: bool = False,
        head: bytes | None = None,
        digest: int | None = None,
    ) -> None:
        """Stage what changed in ``record`` (all of it, if ``whole``: new to this store, or
        reset) and index it. ``head``, ``digest``: the record's, if the caller has them."""
        digest = self.records.stage(
            batch, partition, key, record, whole=whole, head=head, digest=digest
        )
        tree = self.trees.get(partition)
        if tree is not None:
            tree.update(key, digest)
        self._track_tombstone(key, record)

    def _merge_local(
        self, batch: Batch, key: bytes, incoming: Record, current: Record | None = None
    ) -> bool:
        """Merge into this node's own record of ``key`` (``current``, if the caller has
        loaded it already); True if it changed."""
        partition = self.ring.partition_of(key)
        if current is None:
            current = self._load(key)
        if current is None:
            self._store_record(batch, partition, key, incoming, whole=True)
            return True
        generation = (current.incarnation, current.kind)
        before = self.records.digest(key)
        current.merge(incoming)
        if (current.incarnation, current.kind) != generation:
            self._store_record(batch, partition, key, current, whole=True)  # replaced whole
            return True
        head = current.head_bytes()
        digest = current.digest(head)
        if digest == before and not current.members_changed():
            return False
        self._store_record(batch, partition, key, current, head=head, digest=digest)
        return True

    def _local_for_read(self, key: bytes, partition: int) -> Record | None:
        """This node's record of ``key`` (its own, or the hint it holds): not to be changed."""
        if partition in self.trees:
            return self._load(key)
        hint = self.store.hint(key)
        return None if hint is None else Record.from_bytes(hint.record)

    def _other_replicas(self, partition: int) -> frozenset[str]:
        """The partition's replicas on the current ring, this node left out."""
        replicas = self.ring.preference_list(partition, self.config.n)
        return frozenset(node for node in replicas if node != self.id)

    def _owe_while_handing_off(
        self, batch: Batch, key: bytes, incoming: Record, partition: int
    ) -> None:
        """A write (or hint) merged into a partition this node still holds only to hand it
        off: a new replica the handoff has already synced would never get it, so it is
        owed to every replica of the partition, new and old, as a hint too (delivered by
        hinted handoff, dropped once each has acknowledged it)."""
        if partition not in self.handing_off:
            return
        n = self.config.n
        replicas = self.ring.preference_list(partition, n) + self.future.preference_list(
            partition, n
        )
        owed = frozenset(node for node in replicas if node != self.id)
        if owed:
            self._merge_hint(batch, key, incoming, owed)

    def _merge_hint(
        self, batch: Batch, key: bytes, incoming: Record, target: str | frozenset[str]
    ) -> None:
        """Keep ``incoming`` in the hint of ``key``, owed to ``target`` (one or several)."""
        owed = frozenset({target}) if isinstance(target, str) else target
        # A hint this batch already holds comes first: a write that timed out at two
        # replicas keeps a hint for each, in one batch, and the store does not hold the
        # first until the batch is applied (read from the store, the second replaced it).
        hint = batch.hints[key] if key in batch.hints else self.store.hint(key)
        if hint is None:
            record, targets = incoming, owed
        else:
            record = Record.from_bytes(hint.record)
            record.merge(incoming)
            targets = hint.targets | owed
        batch.hints[key] = Hint(key, self.ring.partition_of(key), record.to_bytes(), targets)

    def _requirement(
        self,
        effects: Effects,
        origin: Origin,
        request: Request,
        primaries: list[str],
        count: int | None,
    ) -> Requirement | None:
        """What the request's level (or r/w ``count``) needs; None after answering an error."""
        # Levels that count replicas whatever their regions need only how many there are.
        # (By the level's name: an Enum member hashes in Python code, its str in C; and read
        # as ``_value_``, the member's own attribute, since ``value`` is a Python property.)
        level: str = request.level._value_
        regional = level in _REGIONAL
        cache_key = (level, tuple(primaries) if regional else len(primaries), count)
        need = self.requirements.get(cache_key)
        if need is not None:
            return need
        try:
            need = requirement(request.level, primaries, self.region_of, self.region, count)
        except ValueError as error:
            self._finish(effects, origin, Result(False, error=f"ERR {error}"))
            return None
        if len(self.requirements) >= REQUIREMENTS_CACHED_MAX:
            self.requirements.clear()
        self.requirements[cache_key] = need
        return need

    def _finish(self, effects: Effects, origin: Origin, result: Result) -> None:
        peer, request_id = origin
        if peer == CLIENT:
            effects.reply(request_id, result)
        else:
            effects.send(peer, ForwardReply(request_id, result))

    @staticmethod
    def _answered(result: Result, acks: set[str]) -> Result:
        """``result`` (built once per request, answered once), saying how many answered."""
        result.answered = len(acks)
        return result

    def _fail(
        self,
        effects: Effects,
        pending: _PendingWrite | _PendingRead,
        answered: int,
        what: str,
        note: str,
    ) -> None:
        pending.replied = True
        error = (
            f"not enough replicas: {answered} answered, the {what} needs "
            f"{pending.need.describe()}{note}"
        )
        self._finish(effects, pending.origin, Result(False, error=error, answered=answered))

    def _event(self, name: str, **fields: object) -> None:
        self.events.append((name, fields))

    def _visible(self, replica: str, delay_ms: int | None) -> None:
        """Count ``replica``'s copy of an acknowledged write as visible ``delay_ms`` after the
        acknowledgement (None: not within the request timeout)."""
        buckets = self.visibility.get(replica)
        if buckets is None:
            buckets = self.visibility[replica] = [0] * (VISIBILITY_NEVER + 1)
        if delay_ms is None:
            buckets[VISIBILITY_NEVER] += 1
        elif delay_ms <= 0:
            buckets[0] += 1
        else:
            buckets[bisect_left(VISIBILITY_BOUNDS_MS, delay_ms)] += 1
            self.visibility_ms[replica] = self.visibility_ms.get(replica, 0) + delay_ms

    def _digest(self, key: bytes) -> int | None:
        """The anti-entropy digest of this node's own record of ``key`` (None: no record)."""
        return self.records.digest(key)

    def record(self, key: bytes) -> Record | None:
        """A copy of this node's own record of ``key`` (tests and checkers)."""
        record = self._load(key)
        return None if record is None else record.copy()
