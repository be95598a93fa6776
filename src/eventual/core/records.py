"""A node's own records, decoded in memory: the hot state (DESIGN.md §3).

The store holds each record as a head and member cells (``core/record.py``); this layer
keeps the records a node serves *decoded*, so a read of a cached key decodes nothing and a
write changes the decoded record in place and stores only what changed (``stage``): the
head and the cells of the members it touched. Nothing here is the only copy of anything:
every change is staged into the batch the node applies before it answers, so dropping a
record from memory (eviction, a crash) loses nothing, and the next use loads it again.

Bound. ``RECORDS_WEIGHT_MAX`` counts records plus their members (``Record.weight``); past
it, records not used lately are dropped from memory until the total is back under it. The
order is second chance (CLOCK), as operating systems evict pages: a use marks the record
(``cached_recent``) instead of moving it to the end of the order, which would be a second
lookup of the key on every read and write; eviction takes the oldest record, and one marked
since it was last passed over goes back to the end, unmarked. A node whose data is larger
than that serves the rest from disk: a miss costs one load of that record (its head and all
its cells, one ``SELECT`` per 500 cells on SQLite), as a cache miss does in Riak's and
Cassandra's row caches. The one record being used is never dropped, so a single collection
larger than the bound is still served, from memory, and goes once other keys are used; how
much memory one member costs is measured by ``benchmarks/collections_bench.py``.

Reads hand out the cached object itself: callers must not change it except through the
write path that stages it (``stage``) in the same event.
"""

from __future__ import annotations

from collections import OrderedDict

from eventual.core.record import NOT_CACHED, Record
from eventual.core.store import Batch, RecordWrite, Store

__all__ = ["RECORDS_WEIGHT_MAX", "Records", "load_record", "stored_bytes"]

# Records plus members held decoded. A member of a set costs a few hundred bytes decoded, so
# 4 million is on the order of a GiB: what a node of a few GiB can spare for its hot set.
RECORDS_WEIGHT_MAX = 4_000_000


def load_record(store: Store, key: bytes) -> Record | None:
    """Decode ``key``'s record from ``store`` (no cache): checkers and tests."""
    head = store.head(key)
    return None if head is None else Record.from_cells(head, store.cells(key))


def stored_bytes(store: Store, key: bytes) -> bytes | None:
    """``key``'s record as ``store`` holds it, encoded whole (checkers compare these)."""
    record = load_record(store, key)
    return None if record is None else record.to_bytes()


class Records:
    __slots__ = ("_hot", "store", "weight", "weight_max")

    def __init__(self, store: Store, weight_max: int = RECORDS_WEIGHT_MAX) -> None:
        self.store = store
        self.weight_max = weight_max
        # Each cached record carries its own bookkeeping (``Record.cached_digest``: as last
        # staged; ``Record.cached_weight``: as counted in ``weight``), so a write looks its
        # key up in one dictionary here, not three: over many keys, each lookup is a miss
        # of the CPU's cache.
        self._hot: OrderedDict[bytes, Record] = OrderedDict()
        self.weight = 0

    def get(self, key: bytes) -> Record | None:
        """The decoded record of ``key`` (the cached object itself), or None."""
        record = self._hot.get(key)
        if record is not None:
            record.cached_recent = True
            return record
        record = load_record(self.store, key)
        if record is not None:
            self._keep(key, record)
        return record

    def cached(self, key: bytes) -> Record | None:
        """The record of ``key`` if it is held decoded (not marked used, not loaded)."""
        return self._hot.get(key)

    def digest(self, key: bytes) -> int | None:
        """The anti-entropy digest of ``key``'s record as stored (None: no record)."""
        record = self._hot.get(key)  # not made recent: anti-entropy reads digests in bulk
        if record is None:
            record = self.get(key)
            if record is None:
                return None
        digest = record.cached_digest
        if digest is None:
            digest = record.cached_digest = record.digest()
        return digest

    def encoded(self, key: bytes) -> bytes | None:
        """The whole record, encoded (anti-entropy, handoff, reads of a whole record)."""
        record = self.get(key)
        return None if record is None else record.to_bytes()

    def stage(
        self,
        batch: Batch,
        partition: int,
        key: bytes,
        record: Record,
        *,
        whole: bool = False,
        head: bytes | None = None,
        digest: int | None = None,
    ) -> int:
        """Stage what changed in ``record`` (everything, and forget what was stored before,
        if ``whole``), make it the cached record of ``key``, and return its digest.
        ``head``, ``digest``: ``record.head_bytes()`` and ``record.digest()``, if the caller
        has them already (the digest only with its head)."""
        if whole:
            record.touch_all()
        if head is None:
            head = record.head_bytes()
            digest = None
        batch.write(key, RecordWrite(partition, head, record.take_changed_members(), whole))
        self._keep(key, record)
        if digest is None:
            digest = record.digest(head)
        record.cached_digest = digest
        return digest

    def drop(self, batch: Batch, partition: int, key: bytes) -> None:
        batch.drop(key, partition)
        self._forget(key)

    def _keep(self, key: bytes, record: Record) -> None:
        hot = self._hot
        weight = record.weight()
        if record.cached_weight != NOT_CACHED:
            # The cached object, changed in place: the common write. The dictionary is not
            # touched (over many keys, each lookup is a miss of the CPU's cache).
            self.weight += weight - record.cached_weight
            record.cached_recent = True
        else:
            kept = hot.get(key)
            if kept is not None:
                self.weight -= kept.cached_weight
                kept.cached_weight = NOT_CACHED
            self.weight += weight
            hot[key] = record
            hot.move_to_end(key)
            record.cached_recent = False  # new at the end: its first pass is its chance
        record.cached_weight = weight
        while self.weight > self.weight_max and len(hot) > 1:
            old_key, old = hot.popitem(last=False)
            if old is record or old.cached_recent:
                # Used since it was last passed over, or the one in use (which stays, even
                # when it is larger than the bound on its own): to the end, unmarked. Each
                # record comes back at most once a pass, so the loop ends.
                old.cached_recent = False
                hot[old_key] = old
                continue
            self.weight -= old.cached_weight
            old.cached_weight = NOT_CACHED

    def _forget(self, key: bytes) -> None:
        kept = self._hot.pop(key, None)
        if kept is not None:
            self.weight -= kept.cached_weight
            kept.cached_weight = NOT_CACHED
