"""Tombstone reaping: a deleted record (logically absent, no TTL, first incarnation) that
stayed so for ``reap_grace_ms`` is dropped when the partition's first primary finds the same
digest at every primary; the reaping nodes then take a new actor epoch, so no dot of the
reaped history is ever issued again.
"""

from __future__ import annotations

from mypy_extensions import trait

from eventual.core.base import (
    REAP_PER_TICK_MAX,
    NodeBase,
    _PendingReap,
)
from eventual.core.messages import (
    Effects,
    ReapAck,
    ReapCheck,
    ReapCommit,
    Timer,
)
from eventual.core.store import Batch


@trait
class Reaper(NodeBase):
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
