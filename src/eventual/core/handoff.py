"""Handoff: hinted handoff (records a node kept for a primary that was down go to it once it
is back, and are dropped once it acknowledged the exact bytes) and ownership handoff (a
node that stops replicating a partition keeps its tree until every new replica has it).
"""

from __future__ import annotations

from mypy_extensions import trait

from eventual.codec import DecodeError
from eventual.core.base import (
    HANDOFF_BYTES_PER_TICK_MAX,
    HANDOFF_PER_TICK_MAX,
    NodeBase,
)
from eventual.core.merkle import record_hash
from eventual.core.messages import (
    Effects,
    HintAck,
    HintHandoff,
)
from eventual.core.record import Record
from eventual.core.store import Batch, Hint


@trait
class Handoff(NodeBase):
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
        partition = self.ring.partition_of(message.key)
        if partition in self.trees:
            self._merge_local(batch, message.key, incoming)
            self._owe_while_handing_off(batch, message.key, incoming, partition)
        else:
            # The ring moved while the hint waited: this node no longer replicates the key.
            # Merged into a record here, it would be stranded (nothing hands off a partition
            # this node does not hold); kept as a hint, it goes on to the key's replicas now,
            # as a replica write with an older view does (replica.py).
            self._merge_hint(batch, message.key, incoming, self._other_replicas(partition))
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

    def _new_replicas(self, partition: int) -> set[str]:
        n = self.config.n
        replicas = self.ring.preference_list(partition, n) + self.future.preference_list(
            partition, n
        )
        return {node for node in replicas if node != self.id}

    def _handed_off(self, partition: int, peer: str) -> None:
        targets = self.handing_off.get(partition)
        if targets is None:
            return
        targets.discard(peer)
        if not targets:
            self._event("handoff_done", partition=partition, to=peer)
            del self.handing_off[partition]
            del self.trees[partition]
            self.tombstones = {
                k: t for k, t in self.tombstones.items() if self.ring.partition_of(k) != partition
            }
