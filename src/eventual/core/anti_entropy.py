"""Anti-entropy (Dynamo §4.7, Riak's active anti-entropy): each primary keeps a Merkle
tree per partition (``core/merkle.py``) and periodically compares one partition with one
peer: root, groups, leaves, keys; then only the records that differ travel.

A big collection that differs is repaired member by member (``AeKeySync``): each side sends
its head (what it has seen) and gets back the members whose dots it has not seen, so the
traffic grows with the difference, not with the collection. Pending replicas pull their
partitions the same way, a few sessions a tick.
"""

from __future__ import annotations

from mypy_extensions import trait

from eventual.codec import DecodeError
from eventual.core.base import (
    AE_BYTES_MAX,
    AE_KEYS_MAX,
    AE_MEMBERS_WHOLE_MAX,
    SYNC_SESSIONS_PER_TICK_MAX,
    NodeBase,
)
from eventual.core.merkle import LEAVES, LEAVES_PER_GROUP, MerkleTree
from eventual.core.messages import (
    AeGroups,
    AeKeySync,
    AeLeaves,
    AePush,
    AeRecords,
    AeRoot,
    Effects,
)
from eventual.core.record import COLLECTIONS, Record
from eventual.core.store import Batch


@trait
class AntiEntropy(NodeBase):
    def _anti_entropy(self, effects: Effects) -> bool:
        """One tick; True while partitions are still being pulled or handed off."""
        # A pending replica first pulls what it will serve, a few partitions a tick: handoff
        # is bounded in rate, and clients keep being served meanwhile.
        pulls = self._unsynced()
        unsynced = pulls + [
            (partition, peer)
            for partition, targets in sorted(self.handing_off.items())
            for peer in sorted(targets)
            if self.up(peer)
        ]
        for partition, peer in unsynced[:SYNC_SESSIONS_PER_TICK_MAX]:
            effects.send(peer, AeRoot(partition, tuple(self.trees[partition].groups())))
        if self.all_aware:  # only these count toward readiness (see core/membership.py)
            self.pulls_started.update(pulls[:SYNC_SESSIONS_PER_TICK_MAX])
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
            if (message.partition, sender) in self.pulls_started:  # not one begun too early
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
            if (
                self.ring.partition_of(key) == partition
                and partition in self.trees
                and self._merge_local(batch, key, incoming)
            ):
                self.stats["ae_repairs"] += 1
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

    def _build_tree(self, partition: int) -> None:
        tree = self.trees[partition] = MerkleTree(self.config.partitions)
        for key in self.store.keys(partition):
            record = self._load(key)
            assert record is not None, "the store listed a key it does not hold"
            tree.update(key, self.records.digest(key) or 0)
            self._track_tombstone(key, record)
