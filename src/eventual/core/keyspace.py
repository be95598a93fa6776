"""The keyspace of the whole cluster, page by page (Redis's SCAN, KEYS, DBSIZE, RANDOMKEY
through any node).

Keys are listed in the order of their 64-bit hash, the ring's own order: a partition is a
range of that order (``Ring.partition_of``), so a position in it says which partition to
read and where in it, and one 64-bit integer is a cursor any node understands (as
redis-cli's ``--scan`` needs). A page is read from every live primary of its partition, as
a read at ALL would be, and the replies are merged: a key any of them holds live is listed,
once. Each replica's page is exact up to where it stopped (``KeysReply.upto``), so the
merged page stops at the first of those and the next page starts there: a key present for
the whole scan is listed exactly once, whichever replicas answer, as SSCAN's pages are. A
replica that does not answer within the request timeout is left out (the page is what the
others hold); none answering is an error.

A replica tells a live key from a tombstone or an expired one by its head, which it reads
from the records it holds decoded or from the store, without loading a collection's
members: a collection is live while it has a member cell. A page is bounded in keys
(``KEYS_PAGE_MAX``) and in bytes (``KEYS_PAGE_BYTES_MAX``), so no message and no reply grows
with the data. A replica keeps the last partition it listed in hash order (``_ranked``)
until that partition gains a key, so a scan's pages cost what they list, not a pass over
their partition each.
"""

from __future__ import annotations

from bisect import bisect_left

from mypy_extensions import trait

from eventual.core.base import CLIENT, NodeBase, _PendingKeys
from eventual.core.get import KIND_NAMES
from eventual.core.messages import Effects, KeysRead, KeysReply, Result, Timer
from eventual.core.record import COLLECTIONS, Record
from eventual.core.ring import key_hash

__all__ = ["KEYS_PAGE_BYTES_MAX", "KEYS_PAGE_MAX", "KeyspaceReader", "partition_start"]

KEYS_PAGE_MAX = 1_000  # keys in one page, from one replica
KEYS_PAGE_BYTES_MAX = 1024 * 1024  # ...and their bytes (keys are up to 8 KiB)
_SPACE = 1 << 64


def partition_start(partition: int, partitions: int) -> int:
    """The first hash position of ``partition`` (the smallest h with h * Q >> 64 equal to
    it); ``_SPACE`` past the last partition."""
    return -((-partition * _SPACE) // partitions)


@trait
class KeyspaceReader(NodeBase):
    def keys_page(self, request_id: int, cursor: int, count: int, now_ms: int) -> Effects:
        """Read a page of the keyspace from ``cursor`` (a hash position; 0: the start):
        the answer's value is a list of ``(key, kind)``, its cursor where the next page
        starts (0: the end), its size the most keys any replica holds in that partition
        (tombstones and expired keys not yet dropped included). ``count`` 0 reads that size
        alone, and the cursor goes to the next partition."""
        self.now = now_ms
        effects = Effects()
        if not 0 <= cursor < _SPACE:
            effects.reply(request_id, Result(False, error="ERR invalid cursor"))
            return effects
        partition = (cursor * self.config.partitions) >> 64
        primaries = self.ring.preference_list(partition, self.config.n)
        targets = [node for node in primaries if node == self.id or self.up(node)]
        if not targets:
            error = f"ERR no replica of partition {partition} is up"
            effects.reply(request_id, Result(False, error=error))
            return effects
        count = min(max(count, 0), KEYS_PAGE_MAX)  # 0: no keys, only how many are held
        keys_id = self._id()
        pending = _PendingKeys((CLIENT, request_id), partition, cursor, targets)
        self.pending[keys_id] = pending
        for target in targets:
            if target == self.id:
                pending.replies[self.id] = self._keys_here(keys_id, partition, cursor, count)
            else:
                effects.send(target, KeysRead(keys_id, partition, cursor, count), early=True)
        if len(pending.replies) == len(targets):
            del self.pending[keys_id]
            self._answer_keys(effects, pending)
        else:
            effects.after(self.config.request_timeout_ms, Timer("timeout", keys_id))
        return effects

    def _keys_here(self, reply_id: int, partition: int, cursor: int, count: int) -> KeysReply:
        """This replica's page: live keys of ``partition`` from ``cursor`` on, by hash."""
        if count <= 0:
            return KeysReply(reply_id, (), 0, sum(1 for _ in self.store.keys(partition)))
        ranked = self._ranked(partition)
        start = bisect_left(ranked, (cursor, b""))
        found: list[tuple[bytes, str]] = []
        size = 0
        upto = 0
        for index in range(start, len(ranked)):
            place, key = ranked[index]
            # Full: stop, between two places (keys that share a place go in one page).
            full = len(found) >= count or size >= KEYS_PAGE_BYTES_MAX
            if full and place != ranked[index - 1][0]:
                upto = place
                break
            kind = self._live_kind(key)
            if kind is not None:
                found.append((key, kind))
                size += len(key)
        return KeysReply(reply_id, tuple(found), upto, len(ranked))

    def _ranked(self, partition: int) -> list[tuple[int, bytes]]:
        """``partition``'s keys with their hashes, in hash order: built once and kept while
        the partition gains no key, so the pages of one scan cost what they list, not a
        pass over the partition each (keys deleted meanwhile are skipped as not live)."""
        added = self.store.keys_added(partition)
        kept = self.keys_ranked
        if kept is not None and kept[0] == partition and kept[1] == added:
            return kept[2]
        ranked = sorted((key_hash(key), key) for key in self.store.keys(partition))
        self.keys_ranked = (partition, added, ranked)
        return ranked

    def _live_kind(self, key: bytes) -> str | None:
        """The kind of ``key``'s record if it is live here (None: absent, deleted, expired),
        from its head: a collection's members are not loaded."""
        record = self.records.cached(key)
        if record is None:
            head = self.store.head(key)
            if head is None:
                return None
            record = Record.from_cells(head, iter(()))
            if record.kind in COLLECTIONS:
                if record.expired(self.now) or next(iter(self.store.cells(key)), None) is None:
                    return None
                return KIND_NAMES[record.kind]
        return KIND_NAMES[record.kind] if record.present(self.now) else None

    def _on_keys_read(self, effects: Effects, sender: str, message: KeysRead) -> None:
        if not 0 <= message.partition < self.config.partitions:
            return
        reply = self._keys_here(message.id, message.partition, message.cursor, message.count)
        effects.send(sender, reply)

    def _on_keys_reply(self, effects: Effects, sender: str, message: KeysReply) -> None:
        pending = self.pending.get(message.id)
        if not isinstance(pending, _PendingKeys) or sender not in pending.targets:
            return
        pending.replies[sender] = message
        if len(pending.replies) == len(pending.targets):
            del self.pending[message.id]
            self._answer_keys(effects, pending)

    def _answer_keys(self, effects: Effects, pending: _PendingKeys) -> None:
        """Merge the pages that came (once all did, or at the timeout), and answer."""
        if not pending.replies:
            error = f"ERR no replica of partition {pending.partition} answered"
            self._finish(effects, pending.origin, Result(False, error=error))
            return
        stops = [reply.upto for reply in pending.replies.values() if reply.upto]
        limit = min(stops) if stops else 0
        merged: dict[bytes, str] = {}
        for reply in pending.replies.values():
            for key, kind in reply.keys:
                if not limit or key_hash(key) < limit:
                    merged.setdefault(key, kind)
        following = limit
        if not following:
            following = partition_start(pending.partition + 1, self.config.partitions)
            if following >= _SPACE:
                following = 0
        keys = sorted(merged.items(), key=lambda item: (key_hash(item[0]), item[0]))
        held = max(reply.held for reply in pending.replies.values())
        result = Result(True, [list(item) for item in keys], cursor=following, size=held)
        self._finish(effects, pending.origin, result)
