"""A Merkle tree per partition per replica, updated as writes land (DESIGN.md §4;
Dynamo §4.7, Riak's active anti-entropy).

Fixed shape: 256 leaves under 16 groups under a root. A key's leaf comes from the hash bits
just below the ones that chose its partition, so keys spread evenly. A leaf's hash is the XOR
of ``mix(h(key), record digest)`` over its keys, each entry kept, so a write updates it in O(1)
(XOR out the old entry, XOR in the new); a group's hash is recomputed when read after one of
its leaves changed, the root when read after any did. A leaf's key table is made at its first
key: a tree costs little until it holds something.
``mix`` is the SplitMix64 finalizer over the two 64-bit hashes: non-linear, so two keys that
swapped their digests do not leave the leaf unchanged, and a few multiplications instead of a
BLAKE2b call on every write.

Two replicas compare roots; where they differ, the 16 group hashes; where those differ, the
16 leaf hashes of each differing group; then the (key, hash) entries of differing leaves;
then only the records that differ travel. Traffic grows with the difference, not the data.
"""

from __future__ import annotations

import hashlib
import struct

from eventual.core.ring import key_hash

__all__ = ["GROUPS", "LEAVES", "LEAVES_PER_GROUP", "MerkleTree", "record_hash"]

GROUPS = 16
LEAVES_PER_GROUP = 16
LEAVES = GROUPS * LEAVES_PER_GROUP
_MASK64 = (1 << 64) - 1
# A group's hash is over its leaves' hashes, the root's over the groups', each as 8 bytes
# big-endian.
_PACK_LEAVES = struct.Struct(f">{LEAVES_PER_GROUP}Q").pack
_PACK_GROUPS = struct.Struct(f">{GROUPS}Q").pack


def _h64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


_EMPTY_GROUP = _h64(_PACK_LEAVES(*[0] * LEAVES_PER_GROUP))


def record_hash(record: bytes) -> int:
    return _h64(record)


def _mix(key_hashed: int, digest: int) -> int:
    z = (key_hashed * 0x9E3779B97F4A7C15 + digest) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class MerkleTree:
    __slots__ = ("_dirty", "_entries", "_groups", "_leaves", "_partitions", "_root")

    def __init__(self, partitions: int) -> None:
        self._partitions = partitions
        self._leaves = [0] * LEAVES
        # Per leaf, key -> entry, once the leaf has a key (a list: indexed, not hashed).
        self._entries: list[dict[bytes, int] | None] = [None] * LEAVES
        self._groups = [_EMPTY_GROUP] * GROUPS
        self._dirty: set[int] = set()  # groups whose hash is out of date
        self._root: int | None = None

    def update(self, key: bytes, hashed: int | None) -> None:
        """Record the new hash of ``key``'s record (None: the key is gone)."""
        key_hashed = key_hash(key)
        # The 8 hash bits right below the ones that chose the partition.
        leaf = (((key_hashed * self._partitions) & _MASK64) >> 56) % LEAVES
        entries = self._entries[leaf]
        if entries is None:
            if hashed is None:
                return
            entries = self._entries[leaf] = {}
        old = entries.get(key)
        if hashed is None:
            if old is None:
                return
            self._leaves[leaf] ^= old
            del entries[key]
        else:
            new = _mix(key_hashed, hashed)
            if old == new:
                return
            # XOR the old entry out and the new one in; the key's slot is overwritten in
            # place (one lookup, not a delete and an insert).
            self._leaves[leaf] ^= new if old is None else old ^ new
            entries[key] = new
        self._dirty.add(leaf // LEAVES_PER_GROUP)
        self._root = None

    def groups(self) -> list[int]:
        if self._dirty:
            for group in self._dirty:
                self._groups[group] = _h64(_PACK_LEAVES(*self.group_leaves(group)))
            self._dirty.clear()
        return self._groups

    def root(self) -> int:
        if self._root is None:
            self._root = _h64(_PACK_GROUPS(*self.groups()))
        return self._root

    def group_leaves(self, group: int) -> list[int]:
        start = group * LEAVES_PER_GROUP
        return self._leaves[start : start + LEAVES_PER_GROUP]

    def leaf_entries(self, leaf: int) -> dict[bytes, int]:
        """Each key of ``leaf`` with its entry, ``mix(h(key), digest)``: kept mixed, so a
        write XORs the old entry out without mixing it again. For one key, equal entries
        are equal digests (``mix`` is a bijection of the digest), so replicas compare
        entries as they would compare digests."""
        entries = self._entries[leaf] if 0 <= leaf < LEAVES else None
        return {} if entries is None else entries

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._entries if entries is not None)
