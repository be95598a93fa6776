"""A replica node as a state machine (DESIGN.md §3-4): no sockets, no clock, no randomness.

The driver (the simulator, or the server's asyncio runtime) calls ``request``, ``receive``
and ``timer`` with the current time and carries out the returned ``Effects``: messages to
send, replies to clients, timers to set. Everything the node must not lose is in its
``Store`` before it answers; everything else (pending requests, the failure detector, the
Merkle trees) is volatile and rebuilt from the store after a crash.

Theory of operation
-------------------
One role, one module (``core/base.py`` holds what they share): ``route.py`` routes client
requests; this one runs timers, failure detection and membership; ``put.py`` coordinates
writes, ``get.py`` reads, ``replica.py`` answers coordinators, ``anti_entropy.py`` repairs,
``handoff.py`` hands hints and partitions over, ``reaper.py`` reaps tombstones. The records
a node serves are decoded in memory (``records.py``) and stored as a head plus member cells
(``record.py``, ``store.py``), so an operation on one member of a collection costs the same
at any size.

*Placement.* A key hashes to one of Q partitions; its N primaries come from ``Ring``.

*Writes* (``put.py``). A mutation is coordinated by a primary of its key, because the dots and
entries it creates are named after the coordinator and must continue that coordinator's own
history of the key. Any other node forwards the request to a primary it believes up; if none
is, it coordinates as a *fallback* under an actor name of its own (``node~epoch``) from the
hint record it holds for the key. The coordinator applies the operation to its record, stores
it, and sends the delta to the other primaries, or, for a primary it believes down, to the
next live node on the ring with ``hint_for`` set (sloppy quorum). It answers once the
consistency level is met, or with an error saying how many replicas answered when the
request times out; replicas that never acknowledged get a hint kept by the coordinator.

*Reads* (``get.py``) go to the primaries (fallbacks for down ones), answer once R replies
agree to be merged, and send the merged record back to primaries that answered with
something else (read repair). A read this node's own replica satisfies (R = 1) and that
finds the key here asks no one else, but for about one in ``READ_REPAIR_EVERY``, which asks
all and repairs. A read of a few members or of a size reads projections.

*Hints* are records a node holds for a primary that was unreachable; a periodic handoff
sends them once the primary is up again, and drops each after the primary acknowledged the
exact bytes.

*Anti-entropy* (``anti_entropy.py``). Each primary keeps a Merkle tree per partition;
periodically it compares one partition with one peer (root, groups, leaves, keys) and the two
exchange only the records that differ; a big collection, only the members that differ.

*Failure detection.* SWIM (``core.swim``): a peer is down once it is declared dead (probed
without answer, directly and through others, then suspected for the suspicion timeout) and
up again once it refutes. Suspects still count as up: a slow node is not a dead one.

*Membership* (``core/membership.py``, ``docs/membership.md``). The cluster state is a
gossiped CRDT; the *current* ring (ACTIVE and LEAVING members) serves, the *future* ring
(JOINING and ACTIVE) is where partitions are going. Pending replicas get writes and pull
their partitions by anti-entropy; old replicas hand theirs off; the transition completes when
every live future member is ready for the same future ring.

*Tombstones.* A deleted record (logically absent, no TTL, first incarnation) that has stayed
so for ``reap_grace_ms`` is reaped when the partition's first primary finds the same digest
at every primary; the reaping nodes then take a new actor epoch, so no dot of the reaped
history is ever issued again. Hard-reset records (bounded counters, HyperLogLogs, type
changes) are never reaped: a recreated record could not outrank their incarnation.

*Actors.* Primaries write as ``node`` (or ``node.epoch`` after a reap), fallbacks as
``node~epoch``; bounded counters always as ``node``, since rights belong to it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import deque
from typing import cast

from eventual.clocks import HybridLogicalClock
from eventual.codec import DecodeError
from eventual.core.anti_entropy import AntiEntropy
from eventual.core.base import (
    EVENTS_MAX,
    FLIP_GRACE_MS,
    FORWARDS_REMEMBERED_MAX,
    SYNC_TICK_MS,
    NodeConfig,
    _PendingForward,
    _PendingKeys,
    _PendingRead,
    _PendingReap,
    _PendingWrite,
)
from eventual.core.consistency import Requirement
from eventual.core.get import GetCoordinator
from eventual.core.handoff import Handoff
from eventual.core.keyspace import KeyspaceReader
from eventual.core.membership import (
    ClusterState,
    MemberEntry,
    MemberStatus,
    rings,
)
from eventual.core.merkle import MerkleTree
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
    KeysRead,
    KeysReply,
    Message,
    Probe,
    ProbeReply,
    Publish,
    ReadReply,
    ReapAck,
    ReapCheck,
    ReapCommit,
    ReplicaRead,
    ReplicaWrite,
    Result,
    Timer,
    WriteAck,
)
from eventual.core.put import PutCoordinator
from eventual.core.reaper import Reaper
from eventual.core.records import Records
from eventual.core.replica import Replica
from eventual.core.ring import Ring, key_hash
from eventual.core.route import Router
from eventual.core.store import Batch, Store
from eventual.core.swim import Swim, SwimAck, SwimMessage, SwimPing, SwimPingReq

__all__ = ["Node", "NodeConfig"]


def _handler_name(message_type: type) -> str:
    return "_on_" + "".join(
        "_" + c.lower() if c.isupper() else c for c in message_type.__name__
    ).lstrip("_")


class Node(
    Router, GetCoordinator, PutCoordinator, Replica, AntiEntropy, Handoff, Reaper, KeyspaceReader
):
    """A replica node: routing, timers and membership here; each other role in its module."""

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
        self.previous: Ring | None = None  # the ring before the last flip, until ...
        self.previous_until = 0  # ... this time (ms)
        self.region_of = {e.node: e.region for e in self.cluster.entries.values()}
        self.peers = self._live_members()
        # Seeded from the name: two nodes probe in different orders, and a run replays.
        self.swim = Swim(
            self.id, [self.id, *self.peers], config.swim, key_hash(self.id.encode()), now_ms
        )
        self.synced: set[tuple[int, str]] = set()  # (partition, peer) in sync for self.target
        self.target = 0  # digest of the future ring the sync is for
        self.all_aware = False  # every live member sends writes to the target's replicas
        self.pulls_started: set[tuple[int, str]] = set()  # pulls begun since all_aware
        self.gossip_cursor = 0
        self.membership_version = 0
        epoch = store.meta("epoch")
        self.epoch = int(epoch) if epoch else 0
        self.epoch_stale = False  # a record or hint was dropped since the epoch was taken
        self.pending: dict[
            int, _PendingWrite | _PendingRead | _PendingForward | _PendingReap | _PendingKeys
        ] = {}
        self.next_id = 1
        self.forwards_seen: dict[tuple[str, int], None] = {}  # insertion-ordered: oldest first
        self.ae_cursor = 0
        self.my_partitions: list[int] = []
        self.trees: dict[int, MerkleTree] = {}
        self.handing_off: dict[int, set[str]] = {}  # partition -> new replicas not yet synced
        self.tombstones: dict[bytes, int] = {}  # key -> when it was first seen deleted
        self.requirements: dict[tuple[object, ...], Requirement] = {}  # see _requirement
        self.read_repair_state = 0x9E3779B9  # any nonzero seed
        self.keys_ranked = None
        self._own_partitions()
        for partition in range(config.partitions):  # a handoff a crash interrupted: again
            if partition not in self.trees and next(store.keys(partition), None):
                self._build_tree(partition)
                self.handing_off[partition] = self._new_replicas(partition)
        self.stats = {
            "refused_drift": 0,
            "refused_generation": 0,  # cluster-state entries a generation too far ahead
            "reaped": 0,
            "peer_alive": 0,  # transitions seen by the failure detector
            "peer_suspect": 0,
            "peer_dead": 0,
            "transitions": 0,  # ring changes this node has seen complete
            # Writes a replica dropped on arrival for a later timestamp of the same string
            # (a concurrent write lost to last-writer-wins, or a late copy of an overwritten
            # one: a string carries no causal context to tell them apart).
            "lww_losses": 0,
            "read_repairs": 0,  # stale replicas a read sent the merged record to
            # Ranked reads of a big sorted set whose replicas disagreed, answered by one of
            # them (core/get.py, RANKED_WHOLE_MAX).
            "ranked_unmerged": 0,
            "ae_repairs": 0,  # records anti-entropy changed here
        }
        self.visibility = {}
        self.visibility_ms = {}
        self.events = deque(maxlen=EVENTS_MAX)
        self._incarnation_logged = 0
        self._members_logged = {e.node: e.status for e in self.cluster.entries.values()}

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

    def receive(self, sender: str, message: Message, now_ms: int) -> Effects:
        self.now = now_ms
        effects = Effects()
        # The messages of every request, dispatched by direct calls (the compiled build
        # calls them natively); the rest by name.
        kind = type(message)
        if kind is ReplicaWrite:
            self._on_replica_write(effects, sender, cast(ReplicaWrite, message))
        elif kind is WriteAck:
            self._on_write_ack(effects, sender, cast(WriteAck, message))
        elif kind is ReplicaRead:
            self._on_replica_read(effects, sender, cast(ReplicaRead, message))
        elif kind is ReadReply:
            self._on_read_reply(effects, sender, cast(ReadReply, message))
        else:
            getattr(self, _HANDLERS[kind])(effects, sender, message)
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

    def _note_membership(self) -> None:
        for change in self.swim.take_changes():
            status = change.status.name.lower()
            self.stats[f"peer_{status}"] += 1
            self._event(f"peer_{status}", peer=change.node, incarnation=change.incarnation)
        if self.swim.incarnation != self._incarnation_logged:
            # Told it was suspect or dead, this node said it is alive, a step higher.
            self._incarnation_logged = self.swim.incarnation
            self._event("refuted", incarnation=self.swim.incarnation)

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
                    if pending.acknowledged_ms >= 0 and target not in pending.extra:
                        self._visible(hint_for or target, None)
            if batch:
                self.store.apply(batch)
        elif isinstance(pending, _PendingRead):
            if not pending.replied:
                self._fail_read(effects, pending)
            self._read_repair(effects, pending)
        elif isinstance(pending, _PendingKeys):
            self._answer_keys(effects, pending)  # with the pages that came
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

    # One method per message type, as the dispatch table names them (no aliases in a class
    # body: the compiled build does not support them).
    def _on_swim_ping(self, effects: Effects, sender: str, message: SwimPing) -> None:
        self._on_swim(effects, sender, message)

    def _on_swim_ack(self, effects: Effects, sender: str, message: SwimAck) -> None:
        self._on_swim(effects, sender, message)

    def _on_swim_ping_req(self, effects: Effects, sender: str, message: SwimPingReq) -> None:
        self._on_swim(effects, sender, message)

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

    def _membership_changed(self) -> None:
        self.membership_version += 1  # the driver watches this to dial new members
        for entry in self.cluster.entries.values():
            if self._members_logged.get(entry.node) is not entry.status:
                self._members_logged[entry.node] = entry.status
                # member_joining, member_active, member_leaving, member_left
                self._event(
                    f"member_{entry.status.name.lower()}",
                    member=entry.node,
                    region=entry.region,
                    address=entry.address,
                )
        self.store.apply(Batch(meta={"cluster": self.cluster.encode()}))
        self.region_of = {e.node: e.region for e in self.cluster.entries.values()}
        self.requirements.clear()
        before = (self.ring.order, self.future.order)
        old_ring = self.ring
        self.ring, self.future = rings(self.cluster, self.config.partitions, self.me)
        if self.ring.order != old_ring.order and self.peers:
            # The ring flipped: members that have not heard yet still read from the old
            # replicas, so writes keep meeting their level there for a while (put.py).
            self.previous, self.previous_until = old_ring, self.now + FLIP_GRACE_MS
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
        target = self.cluster.future_digest()
        if target != self.target:
            self.target, self.synced = target, set()
            self.all_aware, self.pulls_started = False, set()
        if not self.cluster.in_transition() or not self.cluster.current():
            return  # settled, or a joining node that has not heard from the cluster yet
        entries = self.cluster.entries
        mine = entries[self.id]
        changed = False
        if mine.aware_of != target:  # from now on, writes coordinated here reach it
            self.cluster.update(self.id, aware_of=target)
            mine = entries[self.id]
            changed = True
        if not self.all_aware and all(
            entry.aware_of == target
            for entry in entries.values()
            if entry.status is not MemberStatus.LEFT
            and (self.up(entry.node) or entry.status is MemberStatus.JOINING)
        ):
            # Every coordinator now sends writes to the pending replicas: pull from here on
            # (pulls that started before may have missed a write; see core/membership.py).
            self.all_aware, self.synced, self.pulls_started = True, set(), set()
        if (
            mine.status in (MemberStatus.JOINING, MemberStatus.ACTIVE)
            and mine.ready_for != target
            and self.all_aware
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
            self._event("ring_changed", members=len(self.ring.order))
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
        refused = self.cluster.refused
        changed = self.cluster.merge(message.entries)
        self.stats["refused_generation"] += self.cluster.refused - refused
        if changed:
            self._membership_changed()
            self._advance()
        if theirs.encode() != self.cluster.encode():
            effects.send(sender, ClusterGossip(self.cluster.sorted_entries()))

    def _on_probe(self, effects: Effects, sender: str, message: Probe) -> None:
        """Probes are the runtime's to answer (``server/console.py``); a driver without one
        (the simulator) has nothing to say."""

    def _on_probe_reply(self, effects: Effects, sender: str, message: ProbeReply) -> None:
        """See ``_on_probe``."""

    def _on_publish(self, effects: Effects, sender: str, message: Publish) -> None:
        """Pub/sub is the runtime's (``server/pubsub.py``): nothing for the core to do."""


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
        Probe,
        ProbeReply,
        KeysRead,
        KeysReply,
        Publish,
    )
}
