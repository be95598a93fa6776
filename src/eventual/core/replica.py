"""A replica's answers to a coordinator: merge a write (a delta, or a state: read repair),
read a record whole or projected.
"""

from __future__ import annotations

from typing import cast

from mypy_extensions import trait

from eventual.clocks import ClockDriftError
from eventual.codec import DecodeError
from eventual.core.base import (
    NodeBase,
)
from eventual.core.messages import (
    Effects,
    ReadReply,
    ReplicaRead,
    ReplicaWrite,
    WriteAck,
)
from eventual.core.ops import scan_count
from eventual.core.record import RANKED, Kind, Record
from eventual.core.store import Batch
from eventual.crdt import LWWRegister
from eventual.crdt.ranked import Ranked


@trait
class Replica(NodeBase):
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
        except DecodeError as bad:  # a name of its own: the compiled build types it once
            if message.id:
                effects.send(sender, WriteAck(message.id, error=f"bad record: {bad}"))
            return
        batch = Batch()
        partition = self.ring.partition_of(message.key)
        if message.hint_for is not None and message.hint_for != self.id:
            self._merge_hint(batch, message.key, incoming, message.hint_for)
        elif partition not in self.trees:
            # Not a partition this node replicates now or will: a replica of the ring before
            # a flip (put.py), or a coordinator with an older view. Kept as a hint for the
            # key's replicas, it reaches them by handoff, and a reader with the older view
            # still finds it here (_local_for_read reads hints of such partitions).
            self._merge_hint(batch, message.key, incoming, self._other_replicas(partition))
        else:
            current = self._load(message.key)
            if current is not None and incoming.kind is Kind.STRING and message.id:
                self._count_lww_loss(current, incoming)
            self._merge_local(batch, message.key, incoming, current)
            self._owe_while_handing_off(batch, message.key, incoming, partition)
        if batch:
            self.store.apply(batch)
        if message.id:
            effects.send(sender, WriteAck(message.id))

    def _count_lww_loss(self, current: Record, incoming: Record) -> None:
        """A coordinator's string write that this replica's value outranks: it is lost."""
        if current.kind is Kind.STRING and current.incarnation == incoming.incarnation:
            mine = cast(LWWRegister, current.data).timestamp
            theirs = cast(LWWRegister, incoming.data).timestamp
            if mine is not None and theirs is not None and theirs < mine:
                self.stats["lww_losses"] += 1

    def _on_replica_read(self, effects: Effects, sender: str, message: ReplicaRead) -> None:
        partition = self.ring.partition_of(message.key)
        record = self._local_for_read(message.key, partition)
        if record is None:
            effects.send(sender, ReadReply(message.id, None))
        elif message.cursor is not None:
            page, following = record.scan_page(message.cursor, scan_count(message.count))
            effects.send(sender, ReadReply(message.id, page.to_bytes(), cursor=following))
        elif message.members is None:
            effects.send(sender, ReadReply(message.id, record.to_bytes()))
        else:
            digest = self.records.digest(message.key) if partition in self.trees else None
            position = 0
            if message.ranked is not None and record.kind in RANKED:
                try:
                    query = Ranked.from_bytes(message.ranked)
                except DecodeError:
                    return  # a coordinator that sends garbage gets no answer
                answer, _, position = record.select(query)
            else:
                answer = record.project(message.members)
            effects.send(
                sender,
                ReadReply(
                    message.id,
                    answer.to_bytes(),
                    record.size(),
                    record.digest() if digest is None else digest,
                    position=position,
                ),
            )
