"""A replica node as a state machine (DESIGN.md §3-4): no sockets, no clock, no randomness.

The driver (the simulator, or the server's asyncio runtime) calls ``request``, ``receive``
and ``timer`` with the current time and carries out the returned ``Effects``: messages to
send, replies to clients, timers to set. Everything the node must not lose is in its
``Store`` before it answers; everything else (pending requests, the failure detector, the
Merkle trees) is volatile and rebuilt from the store after a crash.

Theory of operation
-------------------
*Placement.* A key hashes to one of Q partitions; its N primaries come from ``Ring``.

*Writes.* A mutation is coordinated by a primary of its key, because the dots and counter
entries it creates are named after the coordinator and must continue that coordinator's own
history of the key. Any other node forwards the request to a primary it believes up; if none
is, it coordinates as a *fallback* under an actor name of its own (``node~epoch``) from the
hint record it holds for the key. The coordinator applies the operation to its record, stores
it, and sends the delta to the other primaries, or, for a primary it believes down, to the
next live node on the ring with ``hint_for`` set (sloppy quorum). It answers once the
consistency level is met, or with an error saying how many replicas answered when the
request times out; replicas that never acknowledged get a hint kept by the coordinator.

*Reads* go to the primaries (fallbacks for down ones), answer once R replies agree to be
merged, and send the merged record back to primaries that answered with something else
(read repair).

*Hints* are records a node holds for a primary that was unreachable; a periodic handoff
sends them once the primary is up again, and drops each after the primary acknowledged the
exact bytes.

*Anti-entropy.* Each primary keeps a Merkle tree per partition; periodically it compares
one partition with one peer (root, groups, leaves, keys) and the two exchange only the
records that differ.

*Failure detection.* SWIM (``core.swim``): a peer is down once it is declared dead (probed
without answer, directly and through others, then suspected for the suspicion timeout) and
up again once it refutes. Suspects still count as up: a slow node is not a dead one.

*Membership* (``core/membership.py``, ``docs/membership.md``). The cluster state is a
gossiped CRDT; the *current* ring (ACTIVE and LEAVING members) serves, the *future* ring
(JOINING and ACTIVE) is where partitions are going. Pending replicas get writes and pull
their partitions by anti-entropy; old replicas hand theirs off; the transition completes when
every live future member is ready for the same future ring.

*Tombstones.* A deleted record (logically absent, no TTL, first incarnation) that has stayed
so for ``reap_grace_ms`` is reaped when the partition's first primary finds the same bytes
at every primary; the reaping nodes then take a new actor epoch, so no dot of the reaped
history is ever issued again. Hard-reset records (bounded counters, HyperLogLogs, type
changes) are never reaped: a recreated record could not outrank their incarnation.

*Actors.* Primaries write as ``node`` (or ``node.epoch`` after a reap), fallbacks as
``node~epoch``; bounded counters always as ``node``, since rights belong to it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field

from eventual.clocks import DEFAULT_MAX_DRIFT_MS, ClockDriftError, HybridLogicalClock
from eventual.codec import DecodeError
from eventual.core.consistency import Requirement, quorum, requirement
from eventual.core.membership import (
    ClusterState,
    MemberEntry,
    MemberStatus,
    ring_digest,
    rings,
)
from eventual.core.merkle import LEAVES, LEAVES_PER_GROUP, MerkleTree, record_hash
from eventual.core.messages import (
    AeGroups,
    AeKeySync,
    AeLeaves,
    AePush,
    AeRecords,
    AeRoot,
    ClusterGossip,
    Effects,
    Forward,
    ForwardReply,
    HintAck,
    HintHandoff,
    Message,
    ReadReply,
    ReapAck,
    ReapCheck,
    ReapCommit,
    ReplicaRead,
    ReplicaWrite,
    Request,
    Result,
    Timer,
    WriteAck,
)
from eventual.core.ops import (
    BcounterDecr,
    BcounterIncr,
    BcounterTransfer,
    Delete,
    Expire,
    Get,
    Mutation,
    ObjectPut,
    Persist,
    StringSet,
    apply,
)
from eventual.core.record import COLLECTIONS, Kind, Record, WrongTypeError
from eventual.core.records import Records
from eventual.core.ring import DEFAULT_N, DEFAULT_PARTITIONS, Member, key_hash
from eventual.core.store import Batch, Hint, Store
from eventual.core.swim import Swim, SwimAck, SwimConfig, SwimMessage, SwimPing, SwimPingReq
from eventual.crdt import InsufficientRights, LWWRegister
from eventual.crdt.ormap import WrongType

__all__ = ["Node", "NodeConfig"]

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
SYNC_TICK_MS = 200  # ...with ticks this often while it has some: at most 40 sessions a second
# Forwarded mutations remembered to drop duplicates: a mutation is an operation, not a state,
# and must not run twice. A forward's answer comes within seconds, so this many ids (a few
# seconds of a busy node's forwards) is far more than the window a duplicate can arrive in.
FORWARDS_REMEMBERED_MAX = 10_000
# Requirements worked out per (level, preference list, count): partitions x levels is a few
# thousand at most; past this the cache starts over.
REQUIREMENTS_CACHED_MAX = 4096


_WRITE_NOTE = "; the write is applied where it landed and will spread"


def _carried_bytes(op: Mutation) -> int:
    """Roughly how many bytes of value an operation carries."""
    if isinstance(op, ObjectPut | StringSet):
        return len(op.value)
    return 0


def _handler_name(message_type: type) -> str:
    return "_on_" + "".join(
        "_" + c.lower() if c.isupper() else c for c in message_type.__name__
    ).lstrip("_")


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


@dataclass
class _PendingRead:
    origin: Origin
    key: bytes
    partition: int
    need: Requirement
    primaries: list[str]
    targets: list[str]
    members: tuple[bytes, ...] | None = None  # a projected read (ops.Get)
    replies: dict[str, Record | None] = field(default_factory=dict)
    # Projected reads: each replica's (size, digest) of its whole record.
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    replied: bool = False


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


class Node:
    def __init__(self, config: NodeConfig, store: Store, now_ms: int) -> None:
        self.config = config
        self.id = config.node
        self.store = store
        self.records = Records(store)  # this node's own records, decoded (the hot state)
        self.hlc = HybridLogicalClock(config.max_drift_ms)
        self.now = now_ms
        me = next(m for m in config.members if m.node == self.id)
        self.me = me
        self.region = me.region
        self.cluster = self._initial_cluster(config, store)
        self.ring, self.future = rings(self.cluster, config.partitions, me)
        self.region_of = {e.node: e.region for e in self.cluster.entries.values()}
        self.peers = self._live_members()
        # Seeded from the name: two nodes probe in different orders, and a run replays.
        self.swim = Swim(
            self.id, [self.id, *self.peers], config.swim, key_hash(self.id.encode()), now_ms
        )
        self.synced: set[tuple[int, str]] = set()  # (partition, peer) in sync for self.target
        self.target = 0  # digest of the future ring the sync is for
        self.gossip_cursor = 0
        self.membership_version = 0
        epoch = store.meta("epoch")
        self.epoch = int(epoch) if epoch else 0
        self.epoch_stale = False  # a record or hint was dropped since the epoch was taken
        self.pending: dict[int, _PendingWrite | _PendingRead | _PendingForward | _PendingReap] = {}
        self.next_id = 1
        self.forwards_seen: dict[tuple[str, int], None] = {}  # insertion-ordered: oldest first
        self.ae_cursor = 0
        self.my_partitions: list[int] = []
        self.trees: dict[int, MerkleTree] = {}
        self.handing_off: dict[int, set[str]] = {}  # partition -> new replicas not yet synced
        self.tombstones: dict[bytes, int] = {}  # key -> when it was first seen deleted
        self.requirements: dict[tuple[object, ...], Requirement] = {}  # see _requirement
        self._own_partitions()
        for partition in range(config.partitions):  # a handoff a crash interrupted: again
            if partition not in self.trees and next(store.keys(partition), None):
                self._build_tree(partition)
                self.handing_off[partition] = self._new_replicas(partition)
        self.stats = {
            "refused_drift": 0,
            "reaped": 0,
            "peer_alive": 0,  # transitions seen by the failure detector
            "peer_suspect": 0,
            "peer_dead": 0,
            "transitions": 0,  # ring changes this node has seen complete
        }

    # --- the three entry points ---

    def start(self, now_ms: int) -> Effects:
        self.now = now_ms
        effects = Effects()
        effects.after(0, Timer("swim"))
        effects.after(0, Timer("gossip"))
        effects.after(self.config.handoff_ms, Timer("handoff"))
        effects.after(self.config.reap_ms, Timer("reap"))
        if self.config.anti_entropy:
            effects.after(self.config.anti_entropy_ms, Timer("anti_entropy"))
        return effects

    def request(self, request: Request, now_ms: int) -> Effects:
        self.now = now_ms
        effects = Effects()
        error = self._validate(request)
        if error:
            effects.reply(request.id, Result(False, error=error))
        elif len(self.pending) >= PENDING_MAX:
            effects.reply(
                request.id, Result(False, error="overloaded: too many requests in flight")
            )
        else:
            self._route(effects, (CLIENT, request.id), request)
        return effects

    def receive(self, sender: str, message: Message, now_ms: int) -> Effects:
        self.now = now_ms
        effects = Effects()
        getattr(self, _HANDLERS[type(message)])(effects, sender, message)
        return effects

    def timer(self, timer: Timer, now_ms: int) -> Effects:
        self.now = now_ms
        effects = Effects()
        if timer.name == "timeout":
            self._on_timeout(effects, timer.id)
        elif timer.name == "swim":
            for to, message in self.swim.tick(now_ms):
                effects.send(to, message)
            self._note_membership()
            effects.after(max(1, self.swim.next_deadline_ms() - now_ms), timer)
        elif timer.name == "gossip":
            self._gossip(effects)
            self._advance()
            effects.after(self.config.gossip_ms, timer)
        elif timer.name == "handoff":
            self._handoff(effects)
            effects.after(self.config.handoff_ms, timer)
        elif timer.name == "anti_entropy":
            syncing = self._anti_entropy(effects)
            delay = self.config.anti_entropy_ms
            effects.after(min(delay, SYNC_TICK_MS) if syncing else delay, timer)
        elif timer.name == "reap":
            self._reap(effects)
            effects.after(self.config.reap_ms, timer)
        return effects

    # --- helpers ---

    def up(self, node: str) -> bool:
        return node == self.id or (node in self.swim.states and self.swim.alive(node))

    def _note_membership(self) -> None:
        for change in self.swim.take_changes():
            self.stats[f"peer_{change.status.name.lower()}"] += 1

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def _actor(self, op: Mutation, fallback: bool) -> str:
        if isinstance(op, BcounterIncr | BcounterDecr | BcounterTransfer) and not fallback:
            return self.id  # rights belong to the node, whatever its epoch
        if self.epoch_stale:
            self.epoch += 1
            self.epoch_stale = False
            self.store.apply(Batch(meta={"epoch": str(self.epoch).encode()}))
        if fallback:
            return f"{self.id}~{self.epoch}"
        return f"{self.id}.{self.epoch}" if self.epoch else self.id

    def _timeout_ms(self, carried_bytes: int) -> int:
        return self.config.request_timeout_ms + carried_bytes // TIMEOUT_BYTES_PER_MS

    def _n(self, request: Request) -> int:
        return request.n if request.n is not None else self.config.n

    def _validate(self, request: Request) -> str | None:
        key = request.op.key
        if not isinstance(key, bytes) or not key:
            return "ERR keys are non-empty byte strings"
        if len(key) > KEY_BYTES_MAX:
            return f"ERR key is {len(key)} bytes, more than the limit of {KEY_BYTES_MAX}"
        n = self._n(request)
        if not 1 <= n <= len(self.ring.order):
            return f"ERR n must be in [1, {len(self.ring.order)}], got {n}"
        for name, count in (("r", request.r), ("w", request.w)):
            if count is not None and not 1 <= count <= n:
                return f"ERR {name} must be in [1, {n}], got {count}"
        return None

    def _load(self, key: bytes) -> Record | None:
        """This node's own record of ``key``: the cached object, not to be changed but
        through ``_store_record``."""
        return self.records.get(key)

    def _track_tombstone(self, key: bytes, record: Record | None) -> None:
        reapable = (
            record is not None
            and not record.has_data()
            and not record.ttl.has_values()
            and record.incarnation == (0, "")
        )
        if reapable:
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
    ) -> None:
        """Stage what changed in ``record`` (all of it, if ``whole``: new to this store, or
        reset) and index it."""
        digest = self.records.stage(batch, partition, key, record, whole=whole, head=head)
        tree = self.trees.get(partition)
        if tree is not None:
            tree.update(key, digest)
        self._track_tombstone(key, record)

    def _merge_local(self, batch: Batch, key: bytes, incoming: Record) -> bool:
        """Merge into this node's own record of ``key``; True if it changed."""
        partition = self.ring.partition_of(key)
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
        if not current.members_changed() and current.digest(head) == before:
            return False
        self._store_record(batch, partition, key, current, head=head)
        return True

    def _merge_hint(self, batch: Batch, key: bytes, incoming: Record, target: str) -> None:
        hint = self.store.hint(key)
        if hint is None:
            record, targets = incoming, frozenset({target})
        else:
            record = Record.from_bytes(hint.record)
            record.merge(incoming)
            targets = hint.targets | {target}
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
        cache_key = (request.level, tuple(primaries), count)
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

    # --- routing ---

    def _route(self, effects: Effects, origin: Origin, request: Request) -> None:
        op = request.op
        partition = self.ring.partition_of(op.key)
        primaries = self.ring.preference_list(partition, self._n(request))
        if isinstance(op, Get):
            self._read(effects, origin, request, partition, primaries)
        elif self.id in primaries:
            self._coordinate(effects, origin, request, partition, primaries, fallback=False)
        else:
            # A primary in this node's region first: a shorter trip, and a bounded counter
            # spends the rights of the region the request came from.
            live = sorted(
                (p for p in primaries if self.up(p)),
                key=lambda p: self.region_of.get(p) != self.region,
            )
            if live:
                forward_id = self._id()
                self.pending[forward_id] = _PendingForward(origin, live[0])
                effects.send(live[0], Forward(forward_id, request))
                # The primary may itself wait a full request timeout for its replicas.
                timeout = self._timeout_ms(_carried_bytes(op)) * 2
                effects.after(timeout, Timer("timeout", forward_id))
            else:
                self._coordinate(effects, origin, request, partition, primaries, fallback=True)

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
        op = request.op
        assert not isinstance(op, Get)
        hint = self.store.hint(op.key) if fallback else None
        if fallback:
            record = None if hint is None else Record.from_stored(hint.record)
        else:
            record = self._load(op.key)
            if record is not None and record.kind is Kind.OBJECT:
                # Objects are applied to a copy: the siblings limit is known only after.
                record = record.copy()
        if record is None and isinstance(op, Delete | Expire | Persist):
            self._finish(effects, origin, Result(True, 0, answered=1))
            return
        need = self._requirement(effects, origin, request, primaries, request.w)
        if need is None:
            return
        timestamp = self.hlc.now(self.now)
        if record is not None and isinstance(record.data, LWWRegister):
            previous = record.data.timestamp
            if previous is not None and previous >= timestamp:
                # A causally later write must win: move past what this record has seen.
                timestamp = self.hlc.last = previous + 1
        try:
            applied = apply(record, op, self._actor(op, fallback), self.now, timestamp)
        except (WrongTypeError, WrongType) as error:
            self._finish(effects, origin, Result(False, error=str(error)))
            return
        except InsufficientRights as error:
            # Its own word, like Redis's WRONGTYPE: a refusal to retry elsewhere, not a fault.
            self._finish(effects, origin, Result(False, error=f"REFUSED {error}"))
            return
        except (ValueError, TypeError) as error:
            self._finish(effects, origin, Result(False, error=f"ERR {error}"))
            return
        new = applied.record
        if new.kind is Kind.OBJECT and len(new.data.value()) > SIBLINGS_MAX:
            self._finish(
                effects,
                origin,
                Result(
                    False,
                    error=(
                        f"ERR {len(new.data.value())} siblings, more than {SIBLINGS_MAX}: "
                        "read the key and write back with its context to resolve them"
                    ),
                ),
            )
            return
        if new.kind is Kind.OBJECT:
            size = sum(len(v) for v in new.data.value() if isinstance(v, bytes))
            if size > OBJECT_BYTES_MAX:
                self._finish(
                    effects,
                    origin,
                    Result(
                        False,
                        error=(
                            f"ERR the object's siblings would hold {size} bytes, more than "
                            f"{OBJECT_BYTES_MAX}: resolve them (write back with the context)"
                        ),
                    ),
                )
                return
        batch = Batch()
        if fallback:
            # The hint holds our fallback history of the key: we owe it to every primary.
            owed = set(primaries) | (hint.targets if hint is not None else frozenset())
            batch.hints[op.key] = Hint(op.key, partition, new.to_bytes(), frozenset(owed))
        else:
            whole = new is not record  # created, or reset: nothing stored before counts
            self._store_record(batch, partition, op.key, new, whole=whole)
        targets: dict[str, str | None] = {}
        spare: list[str] | None = None  # fallbacks, worked out only if a primary is down
        for primary in primaries:
            if primary == self.id:
                continue
            if self.up(primary) and not fallback:
                targets[primary] = None
                continue
            if spare is None:
                spare = [
                    node
                    for node in self.ring.walk(partition)
                    if node not in primaries and node != self.id and self.up(node)
                ]
            if spare:
                targets[spare.pop(0)] = primary
            elif not fallback:
                self._merge_hint(batch, op.key, applied.delta, primary)
        self.store.apply(batch)
        context = new.context().to_bytes() if new.kind is Kind.OBJECT else None
        result = Result(
            True, applied.result, context=context, dot=applied.dot, supersedes=applied.supersedes
        )
        n = self._n(request)
        pending_replicas = [
            node
            for node in self.future.preference_list(partition, n)
            # Uncounted: what it misses, its pull from the current replicas brings.
            if node not in primaries and node not in targets and node != self.id
            if self.up(node)
        ]
        if not targets and not pending_replicas:  # nobody else to send it to (N = 1, ...)
            acks = {self.id}
            if need.met(acks, self.region_of, self.region):
                self._finish(effects, origin, self._answered(result, acks))
            else:
                self._fail(
                    effects,
                    _PendingWrite(
                        origin, op.key, partition, applied.delta, need, targets, acks, result
                    ),
                    1,
                    "request",
                    _WRITE_NOTE,
                )
            return
        write_id = self._id()
        pending = _PendingWrite(
            origin, op.key, partition, applied.delta, need, targets, {self.id}, result
        )
        self.pending[write_id] = pending
        delta = applied.delta.to_bytes()
        hlc = self.hlc.now(self.now)
        for target, hint_for in targets.items():
            effects.send(target, ReplicaWrite(write_id, op.key, delta, hlc, hint_for))
        for pending_replica in pending_replicas:
            effects.send(pending_replica, ReplicaWrite(0, op.key, delta, hlc))
        self._check_write(effects, write_id, pending)
        if write_id in self.pending:
            effects.after(self._timeout_ms(len(delta)), Timer("timeout", write_id))

    def _check_write(self, effects: Effects, write_id: int, pending: _PendingWrite) -> None:
        if not pending.replied and pending.need.met(pending.acks, self.region_of, self.region):
            pending.replied = True
            self._finish(effects, pending.origin, self._answered(pending.result, pending.acks))
        if len(pending.acks) == len(pending.targets) + 1:
            if not pending.replied:  # everyone it could ask has answered: say so now
                self._fail_write(effects, pending)
            del self.pending[write_id]

    def _read(
        self,
        effects: Effects,
        origin: Origin,
        request: Request,
        partition: int,
        primaries: list[str],
    ) -> None:
        need = self._requirement(effects, origin, request, primaries, request.r)
        if need is None:
            return
        spare = [n for n in self.ring.walk(partition) if n not in primaries and self.up(n)]
        targets = []
        for primary in primaries:
            if self.up(primary):
                targets.append(primary)
            elif spare:
                targets.append(spare.pop(0))
        read_id = self._id()
        op = request.op
        assert isinstance(op, Get)
        pending = _PendingRead(
            origin, op.key, partition, need, primaries, targets, members=op.members
        )
        self.pending[read_id] = pending
        self._ask_replicas(effects, read_id, pending)
        self._check_read(effects, read_id, pending)
        if read_id in self.pending:
            effects.after(self.config.request_timeout_ms, Timer("timeout", read_id))

    def _ask_replicas(self, effects: Effects, read_id: int, pending: _PendingRead) -> None:
        for target in pending.targets:
            if target == self.id:
                local = self._local_for_read(pending.key, pending.partition)
                if local is not None and pending.members is not None:
                    pending.sizes[self.id] = (local.size(), self._local_digest(pending, local))
                    local = local.project(pending.members)
                pending.replies[self.id] = local
            else:
                effects.send(target, ReplicaRead(read_id, pending.key, pending.members))

    def _local_for_read(self, key: bytes, partition: int) -> Record | None:
        """This node's record of ``key`` (its own, or the hint it holds): not to be changed."""
        if partition in self.trees:
            return self._load(key)
        hint = self.store.hint(key)
        return None if hint is None else Record.from_bytes(hint.record)

    def _local_digest(self, pending: _PendingRead, record: Record) -> int:
        if pending.partition in self.trees:
            return self.records.digest(pending.key) or 0
        return record.digest()

    def _merged(self, records: list[Record | None]) -> Record | None:
        """The merge of the records read (one alone is returned as it is: not to be
        changed, it may be this node's own)."""
        present = [record for record in records if record is not None]
        if len(present) <= 1:
            return present[0] if present else None
        merged = present[0].copy()
        for record in present[1:]:
            merged.merge(record)
        return merged

    def _read_result(self, merged: Record | None, answered: int, pending: _PendingRead) -> Result:
        if merged is None:
            return Result(True, None, answered=answered)
        if pending.members is not None and merged.kind in COLLECTIONS:
            return self._projected_result(merged, answered, pending)
        context = merged.context().to_bytes() if merged.kind is Kind.OBJECT else None
        if not merged.present(self.now):
            return Result(True, None, context=context, answered=answered)
        return Result(
            True,
            merged.value(),
            context=context,
            answered=answered,
            kind=merged.kind.name.lower(),
            expire_at=merged.expire_at(),
            # Sketches (PFMERGE) and bounded counters (rights per node) travel whole.
            state=merged.data.to_bytes() if merged.kind in (Kind.HLL, Kind.BCOUNTER) else None,
        )

    def _projected_result(self, merged: Record, answered: int, pending: _PendingRead) -> Result:
        """A read of a few members (or of the size) of a collection."""
        if merged.expired(self.now):
            return Result(True, None, answered=answered, size=0)
        sizes = {size for size, _ in pending.sizes.values()}
        return Result(
            True,
            merged.value(),
            answered=answered,
            kind=merged.kind.name.lower(),
            expire_at=merged.expire_at(),
            size=sizes.pop() if len(sizes) == 1 else None,
        )

    def _sizes_disagree(self, pending: _PendingRead) -> bool:
        """A size read whose replicas hold different records: the size of their merge is
        not known from the parts, so the read is asked again, whole."""
        digests = {digest for _, digest in pending.sizes.values()}
        found = sum(record is not None for record in pending.replies.values())
        return pending.members == () and (len(digests) > 1 or len(pending.sizes) != found)

    def _read_met(self, pending: _PendingRead) -> bool:
        """Found answers count toward R at once; "not found" counts only once a majority of
        those asked said so (Riak's notfound_ok=false with basic_quorum): a replica that has
        not got the key yet (a fallback, a replica being repaired) cannot hide it at ONE."""
        replies = pending.replies
        found = [node for node, record in replies.items() if record is not None]
        if pending.need.met(found, self.region_of, self.region):
            return True
        settled = len(replies) >= quorum(len(pending.targets)) or len(replies) == len(
            pending.targets
        )
        return settled and pending.need.met(replies, self.region_of, self.region)

    def _check_read(self, effects: Effects, read_id: int, pending: _PendingRead) -> None:
        if not pending.replied and self._read_met(pending):
            if self._sizes_disagree(pending):
                # Again under a new id, so a late projected reply is not taken as whole.
                del self.pending[read_id]
                whole = dataclasses.replace(pending, members=None, replies={}, sizes={})
                whole_id = self._id()
                self.pending[whole_id] = whole
                self._ask_replicas(effects, whole_id, whole)
                self._check_read(effects, whole_id, whole)
                if whole_id in self.pending:
                    effects.after(self.config.request_timeout_ms, Timer("timeout", whole_id))
                return
            pending.replied = True
            merged = self._merged(list(pending.replies.values()))
            result = self._read_result(merged, len(pending.replies), pending)
            self._finish(effects, pending.origin, result)
        if len(pending.replies) == len(pending.targets):
            if not pending.replied:
                self._fail_read(effects, pending)
            self._read_repair(effects, pending)
            del self.pending[read_id]

    def _read_repair(self, effects: Effects, pending: _PendingRead) -> None:
        records = list(pending.replies.values())
        if len(records) <= 1:
            return  # one answer: nothing to compare it with
        merged = self._merged(records)
        if merged is None:
            return
        if pending.members is not None and merged.kind in COLLECTIONS:
            self._repair_members(effects, pending, merged)
            return
        data = merged.to_bytes()
        stale = [
            node
            for node, record in pending.replies.items()
            if node in pending.primaries and (record is None or record.to_bytes() != data)
        ]
        if not stale:
            return
        hlc = self.hlc.now(self.now)
        for node in stale:
            if node == self.id:
                batch = Batch()
                self._merge_local(batch, pending.key, merged)
                self.store.apply(batch)
            else:
                effects.send(node, ReplicaWrite(0, pending.key, data, hlc))

    def _repair_members(self, effects: Effects, pending: _PendingRead, merged: Record) -> None:
        """Read repair of a projected read: the members read, and nothing else."""
        members = pending.members
        assert members is not None
        data = merged.to_bytes()
        stale = [
            node
            for node, record in pending.replies.items()
            if node in pending.primaries and (record is None or record.to_bytes() != data)
        ]
        found = [record for record in pending.replies.values() if record is not None]
        delta = merged.member_delta(members, found) if stale else None
        if delta is None:
            return
        hlc = self.hlc.now(self.now)
        encoded = delta.to_bytes()
        for node in stale:
            if node == self.id:
                batch = Batch()
                self._merge_local(batch, pending.key, Record.from_bytes(encoded))
                self.store.apply(batch)
            else:
                effects.send(node, ReplicaWrite(0, pending.key, encoded, hlc))

    @staticmethod
    def _answered(result: Result, acks: set[str]) -> Result:
        return Result(
            True,
            result.value,
            context=result.context,
            dot=result.dot,
            supersedes=result.supersedes,
            answered=len(acks),
        )

    def _fail_write(self, effects: Effects, pending: _PendingWrite) -> None:
        self._fail(effects, pending, len(pending.acks), "request", _WRITE_NOTE)

    def _fail_read(self, effects: Effects, pending: _PendingRead) -> None:
        self._fail(effects, pending, len(pending.replies), "read", "")

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

    def _on_timeout(self, effects: Effects, pending_id: int) -> None:
        pending = self.pending.pop(pending_id, None)
        if isinstance(pending, _PendingWrite):
            if not pending.replied:
                self._fail_write(effects, pending)
            # Whoever did not acknowledge still gets the write, through a hint kept here.
            batch = Batch()
            for target, hint_for in pending.targets.items():
                if target not in pending.acks:
                    self._merge_hint(batch, pending.key, pending.delta, hint_for or target)
            if batch:
                self.store.apply(batch)
        elif isinstance(pending, _PendingRead):
            if not pending.replied:
                self._fail_read(effects, pending)
            self._read_repair(effects, pending)
        elif isinstance(pending, _PendingForward):
            self._finish(
                effects,
                pending.origin,
                Result(
                    False,
                    error=(
                        f"timeout: primary {pending.target} did not answer; "
                        "the write may still be applied"
                    ),
                ),
            )

    # --- peer messages ---

    def _on_swim(self, effects: Effects, sender: str, message: SwimMessage) -> None:
        for to, reply in self.swim.receive(sender, message, self.now):
            effects.send(to, reply)

    _on_swim_ping = _on_swim_ack = _on_swim_ping_req = _on_swim

    def _on_forward(self, effects: Effects, sender: str, message: Forward) -> None:
        origin = (sender, message.id)
        if origin in self.forwards_seen:
            return  # a duplicate delivery: the mutation is already being (or was) applied
        self.forwards_seen[origin] = None
        if len(self.forwards_seen) > FORWARDS_REMEMBERED_MAX:
            del self.forwards_seen[next(iter(self.forwards_seen))]
        self._route(effects, origin, message.request)

    def _on_forward_reply(self, effects: Effects, sender: str, message: ForwardReply) -> None:
        pending = self.pending.pop(message.id, None)
        if isinstance(pending, _PendingForward):
            self._finish(effects, pending.origin, message.result)

    def _on_replica_write(self, effects: Effects, sender: str, message: ReplicaWrite) -> None:
        try:
            self.hlc.update(message.hlc, self.now)
        except ClockDriftError as error:
            self.stats["refused_drift"] += 1
            if message.id:
                effects.send(sender, WriteAck(message.id, error=str(error)))
            return
        try:
            incoming = Record.from_bytes(message.record)
        except DecodeError as error:
            if message.id:
                effects.send(sender, WriteAck(message.id, error=f"bad record: {error}"))
            return
        batch = Batch()
        if message.hint_for is not None and message.hint_for != self.id:
            self._merge_hint(batch, message.key, incoming, message.hint_for)
        else:
            self._merge_local(batch, message.key, incoming)
        if batch:
            self.store.apply(batch)
        if message.id:
            effects.send(sender, WriteAck(message.id))

    def _on_write_ack(self, effects: Effects, sender: str, message: WriteAck) -> None:
        pending = self.pending.get(message.id)
        if (
            isinstance(pending, _PendingWrite)
            and message.error is None
            and sender in pending.targets
        ):
            pending.acks.add(sender)
            self._check_write(effects, message.id, pending)

    def _on_replica_read(self, effects: Effects, sender: str, message: ReplicaRead) -> None:
        partition = self.ring.partition_of(message.key)
        record = self._local_for_read(message.key, partition)
        if record is None:
            effects.send(sender, ReadReply(message.id, None))
        elif message.members is None:
            effects.send(sender, ReadReply(message.id, record.to_bytes()))
        else:
            digest = self.records.digest(message.key) if partition in self.trees else None
            effects.send(
                sender,
                ReadReply(
                    message.id,
                    record.project(message.members).to_bytes(),
                    record.size(),
                    record.digest() if digest is None else digest,
                ),
            )

    def _on_read_reply(self, effects: Effects, sender: str, message: ReadReply) -> None:
        pending = self.pending.get(message.id)
        if not isinstance(pending, _PendingRead) or sender not in pending.targets:
            return
        try:
            record = None if message.record is None else Record.from_bytes(message.record)
        except DecodeError:
            return  # a replica that sends garbage has not answered
        pending.replies[sender] = record
        if record is not None and pending.members is not None:
            pending.sizes[sender] = (message.size, message.digest)
        self._check_read(effects, message.id, pending)

    # --- membership (core/membership.py) ---

    @staticmethod
    def _initial_cluster(config: NodeConfig, store: Store) -> ClusterState:
        state = ClusterState()
        saved = store.meta("cluster")
        if saved:
            with contextlib.suppress(DecodeError):  # unreadable: the peers will tell us again
                state = ClusterState.decode(saved)
        status = MemberStatus.JOINING if config.join else MemberStatus.ACTIVE
        for member in config.members:
            state.learn(MemberEntry(member.node, member.region, "", 0, status, 0, zone=member.zone))
        # A member that left stays out, restarted or not: to come back, it joins afresh
        # (an empty data directory), as in Riak.
        if config.address and state.entries[config.node].address != config.address:
            state.update(config.node, address=config.address)
        return state

    def _live_members(self) -> list[str]:
        return sorted(
            node
            for node, entry in self.cluster.entries.items()
            if entry.status is not MemberStatus.LEFT and node != self.id
        )

    def _own_partitions(self) -> None:
        """Trees for every partition this node replicates now or will (pending), and for
        those it no longer does until it has handed them to their new replicas."""
        n = self.config.n
        wanted = sorted(
            p
            for p in range(self.config.partitions)
            if self.id in self.ring.preference_list(p, n)
            or self.id in self.future.preference_list(p, n)
        )
        for partition in wanted:
            self.handing_off.pop(partition, None)
            if partition not in self.trees:
                self._build_tree(partition)
        for partition in sorted(set(self.trees) - set(wanted)):
            # Ownership handoff (Riak's): writes acknowledged here may not have reached the
            # new replicas, so push the partition to each of them before letting it go.
            # The data stays in the store; it is no longer ours to serve.
            if next(self.store.keys(partition), None) is None:
                del self.trees[partition]  # nothing held: nothing to hand over
            else:
                self.handing_off[partition] = self._new_replicas(partition)
        self.my_partitions = wanted

    def _new_replicas(self, partition: int) -> set[str]:
        n = self.config.n
        replicas = self.ring.preference_list(partition, n) + self.future.preference_list(
            partition, n
        )
        return {node for node in replicas if node != self.id}

    def _build_tree(self, partition: int) -> None:
        tree = self.trees[partition] = MerkleTree(self.config.partitions)
        for key in self.store.keys(partition):
            record = self._load(key)
            assert record is not None, "the store listed a key it does not hold"
            tree.update(key, self.records.digest(key) or 0)
            self._track_tombstone(key, record)

    def _handed_off(self, partition: int, peer: str) -> None:
        targets = self.handing_off.get(partition)
        if targets is None:
            return
        targets.discard(peer)
        if not targets:
            del self.handing_off[partition]
            del self.trees[partition]
            self.tombstones = {
                k: t for k, t in self.tombstones.items() if self.ring.partition_of(k) != partition
            }

    def _membership_changed(self) -> None:
        self.membership_version += 1  # the driver watches this to dial new members
        self.store.apply(Batch(meta={"cluster": self.cluster.encode()}))
        self.region_of = {e.node: e.region for e in self.cluster.entries.values()}
        self.requirements.clear()
        before = (self.ring.order, self.future.order)
        self.ring, self.future = rings(self.cluster, self.config.partitions, self.me)
        if (self.ring.order, self.future.order) != before:
            self._own_partitions()
        live = self._live_members()
        for node in set(self.peers) - set(live):
            self.swim.remove(node)
        for node in live:
            self.swim.add(node)
        self.peers = live

    def _pending_partitions(self) -> list[int]:
        n = self.config.n
        return [
            p
            for p in self.my_partitions
            if self.id not in self.ring.preference_list(p, n)
            and self.id in self.future.preference_list(p, n)
        ]

    def _unsynced(self) -> list[tuple[int, str]]:
        """(partition, current replica) pairs this node must still pull from."""
        return [
            (p, peer)
            for p in self._pending_partitions()
            for peer in self.ring.preference_list(p, self.config.n)
            if peer != self.id and self.up(peer) and (p, peer) not in self.synced
        ]

    def _advance(self) -> None:
        """Report readiness for the future ring; complete the transition when all are."""
        target = ring_digest(self.cluster.future())
        if target != self.target:
            self.target, self.synced = target, set()
        if not self.cluster.in_transition() or not self.cluster.current():
            return  # settled, or a joining node that has not heard from the cluster yet
        entries = self.cluster.entries
        mine = entries[self.id]
        changed = False
        if (
            mine.status in (MemberStatus.JOINING, MemberStatus.ACTIVE)
            and mine.ready_for != target
            and not self._unsynced()
        ):
            self.cluster.update(self.id, ready_for=target)
            changed = True
        future = [entries[m.node] for m in self.cluster.future()]
        complete = all(
            entry.ready_for == target
            for entry in future
            if self.up(entry.node) or entry.status is MemberStatus.JOINING
        )
        if complete:
            self.stats["transitions"] += 1
            for entry in list(entries.values()):
                if entry.node == self.id and entry.status is MemberStatus.JOINING:
                    self.cluster.update(self.id, status=MemberStatus.ACTIVE)
                elif entry.status is MemberStatus.LEAVING and (
                    entry.node == self.id or not self.up(entry.node)
                ):
                    self.cluster.learn(dataclasses.replace(entry, status=MemberStatus.LEFT))
            changed = True
        if changed:
            self._membership_changed()

    def _gossip(self, effects: Effects) -> None:
        if not self.peers:  # a joining node that has not been heard yet: knock again
            for seed in self.config.seeds:
                effects.send(seed, self.join_message())
            return
        peers = [p for p in self.peers if self.up(p)]
        if peers:
            self.gossip_cursor += 1
            peer = peers[self.gossip_cursor % len(peers)]
            effects.send(peer, ClusterGossip(self.cluster.sorted_entries()))

    def join_message(self) -> ClusterGossip:
        """What a joining node sends to a seed (the driver knows the seed's address)."""
        return ClusterGossip(self.cluster.sorted_entries())

    def leave(self, node: str) -> Result:
        """Start moving ``node``'s partitions away (``eventual cluster leave``); it becomes
        LEFT once every new replica has pulled its data (or, if it is dead, from the others)."""
        entry = self.cluster.entries.get(node)
        if entry is None or entry.status is MemberStatus.LEFT:
            return Result(False, error=f"ERR {node} is not a member of the cluster")
        if entry.status is MemberStatus.LEAVING:
            return Result(True, "already leaving")
        staying = [m for m in self.cluster.future() if m.node != node]
        if not staying:
            return Result(False, error="ERR the last member cannot leave")
        self.cluster.learn(dataclasses.replace(entry, status=MemberStatus.LEAVING))
        self._membership_changed()
        return Result(True, "leaving")

    def replace(self, old: str, new: str) -> Result:
        """``eventual cluster replace``: ``new`` (started with ``--join``) takes over from
        ``old``, typically dead: ``old`` leaves, and the claim moves its partitions."""
        entry = self.cluster.entries.get(new)
        if entry is None or entry.status not in (MemberStatus.JOINING, MemberStatus.ACTIVE):
            return Result(False, error=f"ERR {new} has not joined: start it with --join first")
        if old == new:
            return Result(False, error="ERR a node cannot replace itself")
        return self.leave(old)

    def handoff_status(self) -> dict[str, int]:
        """What this node still has to move (for ``eventual status``)."""
        return {
            "pending_partitions": len(self._pending_partitions()),
            "partitions_to_pull": len(self._unsynced()),
            "partitions_to_hand_off": len(self.handing_off),
        }

    def _on_cluster_gossip(self, effects: Effects, sender: str, message: ClusterGossip) -> None:
        theirs = ClusterState(message.entries)
        if self.cluster.merge(message.entries):
            self._membership_changed()
            self._advance()
        if theirs.encode() != self.cluster.encode():
            effects.send(sender, ClusterGossip(self.cluster.sorted_entries()))

    # --- hinted handoff ---

    def _handoff(self, effects: Effects) -> None:
        sent = sent_bytes = 0
        members = {self.id, *self.peers}
        for stored in self.store.hints():
            hint = stored
            if not hint.targets <= members:
                # A primary it was kept for has left: owe it to the key's replicas now.
                replicas = set(self.ring.preference_list(hint.partition, self.config.n))
                targets = (hint.targets & members) | replicas
                hint = Hint(hint.key, hint.partition, hint.record, targets)
                self.store.apply(Batch(hints={hint.key: hint}))
            for target in sorted(hint.targets):
                if (
                    target != self.id
                    and self.up(target)
                    and sent < HANDOFF_PER_TICK_MAX
                    and sent_bytes < HANDOFF_BYTES_PER_TICK_MAX
                ):
                    effects.send(target, HintHandoff(hint.key, hint.record))
                    sent += 1
                    sent_bytes += len(hint.record)
            if self.id in hint.targets:  # a hint for ourselves: we are back in charge
                batch = Batch()
                self._merge_local(batch, hint.key, Record.from_bytes(hint.record))
                self._drop_hint_target(batch, hint, self.id)
                self.store.apply(batch)

    def _drop_hint_target(self, batch: Batch, hint: Hint, target: str) -> None:
        remaining = hint.targets - {target}
        if remaining:
            batch.hints[hint.key] = Hint(hint.key, hint.partition, hint.record, remaining)
        else:
            batch.hints[hint.key] = None
            self.epoch_stale = True  # our fallback dots for this key are no longer held here

    def _on_hint_handoff(self, effects: Effects, sender: str, message: HintHandoff) -> None:
        try:
            incoming = Record.from_bytes(message.record)
        except DecodeError:
            return
        batch = Batch()
        self._merge_local(batch, message.key, incoming)
        if batch:
            self.store.apply(batch)
        effects.send(sender, HintAck(message.key, record_hash(message.record)))

    def _on_hint_ack(self, effects: Effects, sender: str, message: HintAck) -> None:
        hint = self.store.hint(message.key)
        # Drop the target only if it got exactly what we hold (new writes may have merged in).
        if (
            hint is not None
            and sender in hint.targets
            and record_hash(hint.record) == message.record_hash
        ):
            batch = Batch()
            self._drop_hint_target(batch, hint, sender)
            self.store.apply(batch)

    # --- anti-entropy ---

    def _anti_entropy(self, effects: Effects) -> bool:
        """One tick; True while partitions are still being pulled or handed off."""
        # A pending replica first pulls what it will serve, a few partitions a tick: handoff
        # is bounded in rate, and clients keep being served meanwhile.
        unsynced = self._unsynced() + [
            (partition, peer)
            for partition, targets in sorted(self.handing_off.items())
            for peer in sorted(targets)
            if self.up(peer)
        ]
        for partition, peer in unsynced[:SYNC_SESSIONS_PER_TICK_MAX]:
            effects.send(peer, AeRoot(partition, tuple(self.trees[partition].groups())))
        if unsynced:
            return True
        n = self.config.n
        pairs = [
            (partition, peer)
            for partition in self.my_partitions
            for peer in dict.fromkeys(
                self.ring.preference_list(partition, n) + self.future.preference_list(partition, n)
            )
            if peer != self.id
        ]
        for _ in range(len(pairs)):
            partition, peer = pairs[self.ae_cursor % len(pairs)]
            self.ae_cursor += 1
            if self.up(peer):
                effects.send(peer, AeRoot(partition, tuple(self.trees[partition].groups())))
                return False
        return False

    def _on_ae_root(self, effects: Effects, sender: str, message: AeRoot) -> None:
        tree = self.trees.get(message.partition)
        if tree is None or len(message.groups) != len(tree.groups()):
            return
        differing = tuple(
            (g, tuple(tree.group_leaves(g)))
            for g, (mine, theirs) in enumerate(zip(tree.groups(), message.groups, strict=True))
            if mine != theirs
        )
        # Nothing differing is an answer too: "in sync" is what a pending replica waits for.
        effects.send(sender, AeGroups(message.partition, differing))

    def _on_ae_groups(self, effects: Effects, sender: str, message: AeGroups) -> None:
        tree = self.trees.get(message.partition)
        if tree is None:
            return
        if not message.groups:
            self.synced.add((message.partition, sender))
            self._handed_off(message.partition, sender)
            return
        leaves = []
        for group, their_leaves in message.groups:
            mine = tree.group_leaves(group) if 0 <= group < len(tree.groups()) else []
            for offset, (a, b) in enumerate(zip(mine, their_leaves, strict=False)):
                if a != b:
                    leaf = group * LEAVES_PER_GROUP + offset
                    leaves.append((leaf, tuple(sorted(tree.leaf_entries(leaf).items()))))
        if leaves:
            effects.send(sender, AeLeaves(message.partition, tuple(leaves)))

    def _on_ae_leaves(self, effects: Effects, sender: str, message: AeLeaves) -> None:
        tree = self.trees.get(message.partition)
        if tree is None:
            return
        push: list[tuple[bytes, bytes]] = []
        want: list[bytes] = []
        size = 0
        for leaf, entries in message.leaves:
            theirs = dict(entries)
            mine = tree.leaf_entries(leaf) if 0 <= leaf < LEAVES else {}
            for key in sorted(set(mine) | set(theirs)):
                if mine.get(key) == theirs.get(key) or len(push) + len(want) >= AE_KEYS_MAX:
                    continue
                if size >= AE_BYTES_MAX:
                    break
                if key in mine and key in theirs and self._sync_members(effects, sender, key):
                    continue
                data = self.records.encoded(key) if key in mine else None
                if data is not None:
                    push.append((key, data))
                    size += len(data)
                if key in theirs:
                    want.append(key)
        if push or want:
            effects.send(sender, AePush(message.partition, tuple(push), tuple(want)))

    def _sync_members(self, effects: Effects, peer: str, key: bytes) -> bool:
        """Start repairing a big collection member by member; False if it is not one."""
        record = self._load(key)
        if record is None or record.weight() <= AE_MEMBERS_WHOLE_MAX:
            return False
        head = record.head_bytes()
        partition = self.ring.partition_of(key)
        effects.send(peer, AeKeySync(partition, key, head, self.records.digest(key) or 0))
        return True

    def _on_ae_key_sync(self, effects: Effects, sender: str, message: AeKeySync) -> None:
        """Send the members the sender has not seen (``Record.unseen_by``), and ask for
        those this node has not seen. Traffic grows with the difference, not the size."""
        key, partition = message.key, message.partition
        if partition not in self.trees or self.ring.partition_of(key) != partition:
            return
        try:
            theirs = Record.from_bytes(message.head)
        except DecodeError:
            return
        mine = self._load(key)
        if mine is None:
            effects.send(sender, AePush(partition, (), (key,)))  # send it whole
            return
        generation = (mine.incarnation, mine.kind)
        if mine.kind not in COLLECTIONS or generation != (theirs.incarnation, theirs.kind):
            # Reset or retyped on one side: the newer generation wins whole.
            effects.send(sender, AePush(partition, ((key, mine.to_bytes()),), (key,)))
            return
        delta, _ = mine.unseen_by(theirs, AE_BYTES_MAX)  # the rest, next round
        if delta is not None:
            effects.send(sender, AeRecords(partition, ((key, delta.to_bytes()),)))
        digest = self.records.digest(key) or 0
        if not message.answer:
            effects.send(sender, AeKeySync(partition, key, mine.head_bytes(), digest, True))
        elif delta is None and message.digest != digest and mine.same_context(theirs):
            # Both have seen the same dots, yet hold different ones: one side removed
            # members the other still holds (a remove that reached one replica only).
            # Rare; repaired by exchanging the record whole.
            effects.send(sender, AePush(partition, ((key, mine.to_bytes()),), (key,)))

    def _merge_records(self, records: tuple[tuple[bytes, bytes], ...], partition: int) -> None:
        batch = Batch()
        for key, data in records:
            try:
                incoming = Record.from_bytes(data)
            except DecodeError:
                continue
            if self.ring.partition_of(key) == partition and partition in self.trees:
                self._merge_local(batch, key, incoming)
        if batch:
            self.store.apply(batch)

    def _on_ae_push(self, effects: Effects, sender: str, message: AePush) -> None:
        self._merge_records(message.records, message.partition)
        pushed = dict(message.records)
        records = []
        size = 0
        for key in message.want[:AE_KEYS_MAX]:
            if size >= AE_BYTES_MAX:
                break  # the next round asks again
            data = self.records.encoded(key)
            # Send ours back only if it holds something theirs lacked: after the merge above,
            # equal bytes mean their version already covered ours.
            if data is not None and pushed.get(key) != data:
                records.append((key, data))
                size += len(data)
        if records:
            effects.send(sender, AeRecords(message.partition, tuple(records)))

    def _on_ae_records(self, effects: Effects, sender: str, message: AeRecords) -> None:
        self._merge_records(message.records, message.partition)

    # --- tombstone reaping ---

    def _reap(self, effects: Effects) -> None:
        if self.cluster.in_transition():
            return  # a pending replica may hold an older version: reap once it is settled
        checked = 0
        for key, since in sorted(self.tombstones.items()):
            if checked >= REAP_PER_TICK_MAX:
                break
            if self.now - since < self.config.reap_grace_ms:
                continue
            partition = self.ring.partition_of(key)
            primaries = self.ring.preference_list(partition, self.config.n)
            if primaries[0] != self.id or not all(self.up(p) for p in primaries):
                continue
            if any(isinstance(p, _PendingReap) and p.key == key for p in self.pending.values()):
                continue
            digest = self._digest(key)
            if digest is None:
                self.tombstones.pop(key, None)
                continue
            checked += 1
            reap_id = self._id()
            others = {p for p in primaries if p != self.id}
            self.pending[reap_id] = _PendingReap(key, digest, others)
            for peer in sorted(others):
                effects.send(peer, ReapCheck(key, digest))
            effects.after(self.config.request_timeout_ms, Timer("timeout", reap_id))

    def _on_reap_check(self, effects: Effects, sender: str, message: ReapCheck) -> None:
        same = message.key in self.tombstones and self._digest(message.key) == message.record_hash
        effects.send(sender, ReapAck(message.key, message.record_hash, same))

    def _on_reap_ack(self, effects: Effects, sender: str, message: ReapAck) -> None:
        for reap_id, pending in list(self.pending.items()):
            if not (isinstance(pending, _PendingReap) and pending.key == message.key):
                continue
            if not message.same or message.record_hash != pending.record_hash:
                del self.pending[reap_id]
                return
            pending.agreed.add(sender)
            if pending.agreed == pending.others:
                del self.pending[reap_id]
                for peer in sorted(pending.others):
                    effects.send(peer, ReapCommit(message.key, message.record_hash))
                self._drop_record(message.key, message.record_hash)
            return

    def _on_reap_commit(self, effects: Effects, sender: str, message: ReapCommit) -> None:
        self._drop_record(message.key, message.record_hash)

    def _drop_record(self, key: bytes, expected_hash: int) -> None:
        if self._digest(key) != expected_hash:
            return
        partition = self.ring.partition_of(key)
        batch = Batch()
        self.records.drop(batch, partition, key)
        self.store.apply(batch)
        tree = self.trees.get(partition)
        if tree is not None:
            tree.update(key, None)
        self.tombstones.pop(key, None)
        self.epoch_stale = True  # our dots of this key are gone: never issue them again
        self.stats["reaped"] += 1

    # --- for the driver and tests ---

    def _digest(self, key: bytes) -> int | None:
        """The anti-entropy digest of this node's own record of ``key`` (None: no record)."""
        return self.records.digest(key)

    def record(self, key: bytes) -> Record | None:
        """A copy of this node's own record of ``key`` (tests and checkers)."""
        record = self._load(key)
        return None if record is None else record.copy()


_HANDLERS: dict[type, str] = {
    message_type: _handler_name(message_type)
    for message_type in (
        SwimPing,
        SwimAck,
        SwimPingReq,
        Forward,
        ForwardReply,
        ReplicaWrite,
        WriteAck,
        ReplicaRead,
        ReadReply,
        HintHandoff,
        HintAck,
        AeRoot,
        AeGroups,
        AeLeaves,
        AePush,
        AeRecords,
        ReapCheck,
        ReapAck,
        ReapCommit,
        ClusterGossip,
        AeKeySync,
    )
}
