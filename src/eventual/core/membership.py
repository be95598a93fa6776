"""The cluster state: who is in the cluster, where, and in what stage; a CRDT that every
node gossips until all hold the same (DESIGN.md §4, membership).

Each member has one *entry*, and entries merge by taking the greater under a total order:
``(generation, status, seq, ...)``. Status only moves forward within a generation:

    JOINING -> ACTIVE -> LEAVING -> LEFT

so any node may record a later stage (``eventual cluster leave X`` can run anywhere) and
concurrent changes resolve the same way on every node. ``seq`` orders the member's own
updates within a stage (its address, its readiness); ``generation`` lets a name that left
come back as a new member.

Two rings follow from the state, as in Riak's pending ring or Cassandra's pending ranges:

- the *current* ring of ACTIVE and LEAVING members serves reads, coordinates writes, and is
  what W and R count;
- the *future* ring of JOINING and ACTIVE members is where the cluster is going. A node that
  is in a partition's future preference list but not in its current one is a *pending*
  replica: it receives writes, and pulls the partition from every live current replica by
  anti-entropy until their trees agree. A write acknowledged during a transition has met
  its level over the current replicas and over the future ones (``put.py``).

A pending replica pulls only once every live member is *aware* of the future ring
(``aware_of`` holds its digest): from then on every coordinator also sends its writes to the
pending replicas, so a pull that starts after that misses nothing a coordinator acknowledged
before it (a pull that started earlier could: a write coordinated by a member that did not
know of the new replica yet, landing after the pull). When every live future member has
reported itself ready for that future ring (``ready_for`` holds the ring's digest), the
transition completes: each JOINING member makes itself ACTIVE
and each LEAVING member LEFT (a dead one is marked LEFT by whoever sees it first). Readiness
is about one future ring; if another join or leave changes it, everyone syncs again for the
new one.

Pure: no I/O; the node persists ``encode()`` in its store's metadata.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import IntEnum

import msgpack

from eventual.codec import DecodeError, pack
from eventual.core.ring import Member, Ring

__all__ = ["ClusterState", "MemberEntry", "MemberStatus"]

MEMBERS_MAX = 4_096  # a cluster state past this is a bug or an attack, not a cluster


class MemberStatus(IntEnum):
    JOINING = 0
    ACTIVE = 1
    LEAVING = 2
    LEFT = 3


@dataclass(frozen=True, slots=True)
class MemberEntry:
    node: str
    region: str
    address: str  # internode HOST:PORT, opaque to the core ("" while unknown)
    generation: int
    status: MemberStatus
    seq: int
    ready_for: int = 0  # digest of the future ring this member has synced for (0: none)
    zone: str = ""
    aware_of: int = 0  # digest of the future ring this member sends its writes to (0: none)

    def order(self) -> tuple[int, int, int, str, str, str, int, int]:
        return (
            self.generation,
            self.status,
            self.seq,
            self.region,
            self.zone,
            self.address,
            self.ready_for,
            self.aware_of,
        )

    def member(self) -> Member:
        return Member(self.node, self.region, self.zone)


def ring_digest(members: Iterable[Member]) -> int:
    text = ";".join(f"{m.node}@{m.region}/{m.zone}" for m in sorted(members, key=lambda m: m.node))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") or 1


CURRENT = (MemberStatus.ACTIVE, MemberStatus.LEAVING)
FUTURE = (MemberStatus.JOINING, MemberStatus.ACTIVE)


# A name comes back as a new member one generation at a time: an entry further ahead than
# this of the generation known for its name (0 for a name never heard of) is a forgery or a
# corruption, refused (and counted: ``refused``), never merged, since it would win every merge
# after it.
GENERATION_STEP_MAX = 1


class ClusterState:
    def __init__(self, entries: Iterable[MemberEntry] = ()) -> None:
        self.entries: dict[str, MemberEntry] = {}
        self.refused = 0  # entries refused for a generation too far ahead
        # members() by statuses, and the future ring's digest: asked on every gossip round,
        # changed only when an entry is (``learn``, the one place ``entries`` changes).
        self._members: dict[tuple[MemberStatus, ...], list[Member]] = {}
        self._future_digest = 0
        for entry in entries:
            self.learn(entry)

    def learn(self, entry: MemberEntry) -> bool:
        """Merge one entry; True if it changed the state."""
        known = self.entries.get(entry.node)
        if entry.generation > (known.generation if known else 0) + GENERATION_STEP_MAX:
            self.refused += 1
            return False
        if known is not None and entry.order() <= known.order():
            return False
        if known is None and len(self.entries) >= MEMBERS_MAX:
            return False
        self.entries[entry.node] = entry
        self._members = {}
        self._future_digest = 0
        return True

    def merge(self, entries: Iterable[MemberEntry]) -> bool:
        changed = False
        for entry in entries:
            changed |= self.learn(entry)
        return changed

    def update(self, node: str, **changes: object) -> MemberEntry:
        """The member's next entry with ``changes`` (seq + 1), merged in."""
        entry = replace(self.entries[node], seq=self.entries[node].seq + 1, **changes)  # type: ignore[arg-type]
        self.learn(entry)
        return entry

    def members(self, statuses: tuple[MemberStatus, ...]) -> list[Member]:
        known = self._members.get(statuses)
        if known is None:
            known = self._members[statuses] = sorted(
                (e.member() for e in self.entries.values() if e.status in statuses),
                key=lambda m: m.node,
            )
        return list(known)  # a copy: callers may change theirs

    def current(self) -> list[Member]:
        return self.members(CURRENT)

    def future(self) -> list[Member]:
        return self.members(FUTURE)

    def in_transition(self) -> bool:
        return [m.node for m in self.current()] != [m.node for m in self.future()]

    def future_digest(self) -> int:
        """``ring_digest`` of the future ring (never 0)."""
        if not self._future_digest:
            self._future_digest = ring_digest(self.future())
        return self._future_digest

    def digest(self) -> int:
        return int.from_bytes(hashlib.blake2b(self.encode(), digest_size=8).digest(), "big")

    def sorted_entries(self) -> tuple[MemberEntry, ...]:
        return tuple(self.entries[node] for node in sorted(self.entries))

    def encode(self) -> bytes:
        rows = [
            [
                e.node,
                e.region,
                e.address,
                e.generation,
                int(e.status),
                e.seq,
                e.ready_for,
                e.zone,
                e.aware_of,
            ]
            for e in self.sorted_entries()
        ]
        return pack(rows)

    @classmethod
    def decode(cls, data: bytes) -> ClusterState:
        try:
            rows = msgpack.unpackb(data, raw=False)
            entries = []
            for row in rows:
                node, region, address, generation, status, seq, ready, *rest = row
                if len(rest) > 2:
                    raise ValueError(f"an entry of {len(row)} fields")
                zone = str(rest[0]) if rest else ""  # stores from before zones have none
                aware = int(rest[1]) if len(rest) > 1 else 0  # ...nor awareness
                entries.append(
                    MemberEntry(
                        str(node),
                        str(region),
                        str(address),
                        int(generation),
                        MemberStatus(status),
                        int(seq),
                        int(ready),
                        zone,
                        aware,
                    )
                )
        except (ValueError, TypeError, msgpack.UnpackException) as error:
            raise DecodeError(f"cluster state: {error}") from None
        return cls(entries)


def rings(state: ClusterState, partitions: int, me: Member) -> tuple[Ring, Ring]:
    """The current and the future ring; a node not yet in either sees a ring of itself, so
    it can run (and forward nothing) until it hears from the cluster."""
    current = state.current() or [me]
    future = state.future() or current
    ring = Ring(current, partitions)
    # Out of a transition the two are one object: the write path tells them apart by identity.
    return ring, (ring if list(future) == list(current) else Ring(future, partitions))
