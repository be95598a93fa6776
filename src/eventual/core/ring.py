"""Partitioning and placement (DESIGN.md §4; Dynamo §4.2, Riak's ring).

The 64-bit hash space is cut into ``Q`` equal partitions (default 64); a key belongs to the
partition its hash falls in. The *claim* deals partitions to nodes round-robin over a node
order that interleaves regions (a node of each region in turn, and within a region a node of
each zone in turn), so every node owns ``Q/K`` partitions give or take one and neighbouring
partitions sit in different regions.

The *preference list* of a partition is found by walking that order from the partition's
owner: the first N distinct nodes, taking a node of a region not yet used while there is one,
so the N replicas span min(N, regions) regions, then a node of a zone not yet used while there
is one. The nodes after them, in walk order, are the fallbacks that take writes for a replica
that is down (sloppy quorum). The claim is a function of the members alone, so every node that
holds the same cluster state computes the same ring.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_N", "DEFAULT_PARTITIONS", "Member", "Ring", "key_hash"]

DEFAULT_PARTITIONS = 64  # Riak's default ring size: 2-16 nodes get an even spread
DEFAULT_N = 3
PARTITIONS_MAX = 1 << 16  # 65,536: beyond this the per-partition trees cost more than they save


def _round_robin(queues: list[list[str]]) -> list[str]:
    order: list[str] = []
    position = 0
    while any(position < len(queue) for queue in queues):
        order += [queue[position] for queue in queues if position < len(queue)]
        position += 1
    return order


_last: list[Any] = [None, 0]  # the key hashed last, and its hash


def key_hash(key: bytes) -> int:
    """The 64-bit position of a key in the hash space (BLAKE2b: stable across processes,
    unlike Python's ``hash``). A request's key is hashed to route it and again to place it
    in its Merkle tree: the last one is remembered, by identity (bytes are immutable)."""
    if key is _last[0]:
        hashed: int = _last[1]
        return hashed
    hashed = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")
    _last[0], _last[1] = key, hashed
    return hashed


@dataclass(frozen=True, slots=True)
class Member:
    node: str
    region: str = "default"
    zone: str = ""  # a failure domain inside the region (a rack, an availability zone)


class Ring:
    def __init__(self, members: Sequence[Member], partitions: int = DEFAULT_PARTITIONS) -> None:
        if not members:
            raise ValueError("a ring needs at least one node")
        if len({m.node for m in members}) != len(members):
            raise ValueError("node ids must be unique")
        if not 1 <= partitions <= PARTITIONS_MAX:
            raise ValueError(f"partitions must be in [1, {PARTITIONS_MAX}]")
        self.partitions = partitions
        self.members = {m.node: m for m in members}
        self.region_of = {m.node: m.region for m in members}
        self.zone_of = {m.node: (m.region, m.zone) for m in members}
        self.regions = sorted({m.region for m in members})
        self.order = self._interleave(members)
        self._walks = [self._walk(p) for p in range(partitions)]

    @staticmethod
    def _interleave(members: Sequence[Member]) -> list[str]:
        """A node of each region in turn; within a region, a node of each zone in turn."""
        by_zone: dict[str, dict[str, list[str]]] = {}
        for member in sorted(members, key=lambda m: (m.region, m.zone, m.node)):
            by_zone.setdefault(member.region, {}).setdefault(member.zone, []).append(member.node)
        queues = [
            _round_robin([zones[zone] for zone in sorted(zones)])
            for _, zones in sorted(by_zone.items())
        ]
        return _round_robin(queues)

    def _walk(self, partition: int) -> list[str]:
        """Every node, in the order this partition prefers them."""
        start = partition % len(self.order)
        rotated = self.order[start:] + self.order[:start]
        walk: list[str] = []
        used_regions: set[str] = set()
        used_zones: set[tuple[str, str]] = set()
        # First the nodes that add a new region, in walk order; then those that add a new
        # zone of a region; then everyone else.
        for node in rotated:
            if self.region_of[node] not in used_regions:
                walk.append(node)
                used_regions.add(self.region_of[node])
                used_zones.add(self.zone_of[node])
        for node in rotated:
            if node not in walk and self.zone_of[node] not in used_zones:
                walk.append(node)
                used_zones.add(self.zone_of[node])
        walk += [node for node in rotated if node not in walk]
        return walk

    def partition_of(self, key: bytes) -> int:
        return (key_hash(key) * self.partitions) >> 64

    def owner(self, partition: int) -> str:
        return self._walks[partition][0]

    def preference_list(self, partition: int, n: int = DEFAULT_N) -> list[str]:
        return self._walks[partition][: min(n, len(self.order))]

    def walk(self, partition: int) -> list[str]:
        """Primaries first, then fallbacks."""
        return self._walks[partition]

    def partitions_of(self, node: str, n: int = DEFAULT_N) -> list[int]:
        """The partitions ``node`` is a primary replica for."""
        return [p for p in range(self.partitions) if node in self.preference_list(p, n)]
