"""Dots and causal contexts: the kernel shared by the dot-based CRDTs (ORSet, EWFlag,
MVRegister, ORMap), after Almeida, Shoker, Baquero, "Delta state replicated data types",
J. Parallel Distrib. Comput. 2018, §5 ("causal CRDTs").

A *dot* ``(actor, n)`` names the n-th event of an actor. A causal CRDT's state is a *dot
store* (which dots are live, and what they carry) plus a *causal context* (every dot the
replica has ever seen). A dot seen but no longer live was removed, and stays removed: that is
how these types forget removed elements without keeping tombstones. Joining two states keeps a
dot if both sides hold it, or if one side holds it and the other has never seen it.

The context is kept compact: a version vector of contiguous prefixes plus a *dot cloud* of the
dots seen out of order (deltas may arrive with gaps). Compaction is deterministic, so equal
sets of seen dots always have the same representation and the same encoding.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from sortedcontainers import SortedKeyList

from eventual.codec import DecodeError, expect_int, expect_list, expect_str, pack
from eventual.lattice import merge_max

__all__ = [
    "ActorTable",
    "CausalContext",
    "Dot",
    "KeyedDots",
    "check_dots_seen",
    "decode_dot",
    "dot_digest",
    "join_dot_maps",
    "scan_hash",
]

Dot = tuple[str, int]
K = TypeVar("K")
V = TypeVar("V")


class CausalContext:
    __slots__ = ("_cloud", "_vector")

    def __init__(self) -> None:
        self._vector: dict[str, int] = {}  # every dot (a, 1..n) has been seen
        self._cloud: set[Dot] = set()  # dots seen beyond the contiguous prefix

    def __contains__(self, dot: Dot) -> bool:
        return dot[1] <= self._vector.get(dot[0], 0) or dot in self._cloud

    def __bool__(self) -> bool:
        return bool(self._vector) or bool(self._cloud)

    def size(self) -> int:
        """How many dots this context has seen."""
        return sum(self._vector.values()) + len(self._cloud)

    def dots(self) -> Iterator[Dot]:
        for actor, n in self._vector.items():
            for counter in range(1, n + 1):
                yield (actor, counter)
        yield from self._cloud

    def dots_not_in(self, other: CausalContext) -> Iterator[Dot]:
        """The dots this context has seen and ``other`` has not, in time proportional to
        how many there are (plus this context's actors and cloud)."""
        their_vector = other._vector
        for actor, n in self._vector.items():
            for counter in range(their_vector.get(actor, 0) + 1, n + 1):
                if (actor, counter) not in other._cloud:
                    yield (actor, counter)
        for dot in self._cloud:
            if dot not in other:
                yield dot

    def next_dot(self, actor: str) -> Dot:
        """The next fresh dot of ``actor``: one past every dot of it seen so far."""
        highest = self._vector.get(actor, 0)
        for cloud_actor, n in self._cloud:
            if cloud_actor == actor and n > highest:
                highest = n
        return (actor, highest + 1)

    # Invariant (the canonical form): no cloud dot is covered by the vector, and no actor's
    # next dot (vector + 1) is in the cloud. Each change keeps it in time proportional to
    # what it adds, not to the size of the cloud: a delta accumulating a thousand dots of a
    # batch would otherwise re-sort its cloud a thousand times.

    def add(self, dot: Dot) -> None:
        actor, n = dot
        have = self._vector.get(actor, 0)
        if n <= have:
            return
        if n == have + 1:
            self._advance(actor, n)
        else:
            self._cloud.add(dot)

    def add_all(self, dots: Iterable[Dot]) -> None:
        for dot in dots:
            self.add(dot)

    def merge(self, other: CausalContext) -> None:
        vector, cloud = self._vector, self._cloud
        raised = [actor for actor, n in other._vector.items() if n > vector.get(actor, 0)]
        merge_max(vector, other._vector)
        if raised and cloud:
            # Cloud dots the raised vector now covers go; the vector may run on through it.
            covered = {d for d in cloud if d[1] <= vector.get(d[0], 0)}
            cloud -= covered
            for actor in raised:
                self._advance(actor, vector[actor])
        for dot in other._cloud:
            self.add(dot)

    def _advance(self, actor: str, n: int) -> None:
        """Set ``actor``'s contiguous prefix to ``n``, then run on through the cloud."""
        cloud = self._cloud
        while (actor, n + 1) in cloud:
            n += 1
            cloud.discard((actor, n))
        self._vector[actor] = n

    def _compact(self) -> None:
        """Bring an arbitrary vector and cloud (a decoded payload) to the canonical form."""
        if not self._cloud:
            return
        vector = self._vector
        remaining: set[Dot] = set()
        for actor, n in sorted(self._cloud):
            have = vector.get(actor, 0)
            if n == have + 1:
                vector[actor] = n
            elif n > have:
                remaining.add((actor, n))
        self._cloud = remaining

    def copy(self) -> CausalContext:
        clone = CausalContext()
        clone._vector = dict(self._vector)
        clone._cloud = set(self._cloud)
        return clone

    @classmethod
    def of(cls, dots: Iterable[Dot]) -> CausalContext:
        context = cls()
        context.add_all(dots)
        return context

    def payload(self) -> list[Any]:
        return [
            [[actor, n] for actor, n in sorted(self._vector.items())],
            [[actor, n] for actor, n in sorted(self._cloud)],
        ]

    @classmethod
    def from_payload(cls, payload: Any) -> CausalContext:
        vector, cloud = expect_list(payload, "causal context", 2)
        context = cls()
        for item in expect_list(vector, "context vector"):
            actor, n = expect_list(item, "context vector entry", 2)
            context._vector[expect_str(actor, "actor")] = expect_int(n, "counter", low=1)
        context._cloud = {decode_dot(item) for item in expect_list(cloud, "context cloud")}
        context._compact()  # a non-compact input re-encodes differently and is refused
        return context


class ActorTable:
    """Live dots are encoded as ``(actor index, counter)`` into a sorted table of the actors
    they name: a set of 10,000 elements written by five nodes names five actors, not 10,000."""

    __slots__ = ("actors", "index")

    def __init__(self, actors: Iterable[str]) -> None:
        self.actors = sorted(set(actors))
        self.index = {actor: i for i, actor in enumerate(self.actors)}

    def flat(self, dots: Mapping[Dot, Any]) -> list[int]:
        """``[i0, n0, i1, n1, ...]`` for dots in canonical order."""
        if len(dots) == 1:  # the common case: one live dot per element
            ((actor, n),) = dots
            return [self.index[actor], n]
        out: list[int] = []
        for actor, n in sorted(dots):
            out += (self.index[actor], n)
        return out

    @classmethod
    def decode(cls, payload: Any) -> ActorTable:
        return cls(expect_str(actor, "actor table") for actor in expect_list(payload, "actors"))

    def dot(self, index: object, n: object) -> Dot:
        # Fast path for the common, valid case (msgpack never yields an int above 2**64 - 1).
        if type(index) is int and type(n) is int and 0 <= index < len(self.actors) and n >= 1:
            return (self.actors[index], n)
        i = expect_int(index, "actor index", 0, len(self.actors) - 1)
        return (self.actors[i], expect_int(n, "dot counter", low=1))


def decode_dot(obj: object) -> Dot:
    actor, n = expect_list(obj, "dot", 2)
    return (expect_str(actor, "dot actor"), expect_int(n, "dot counter", low=1))


def check_dots_seen(dots: Iterable[Dot], context: CausalContext, what: str) -> None:
    """A live dot the context has not seen cannot come from any real history."""
    for dot in dots:
        if dot not in context:
            raise DecodeError(f"{what}: live dot {dot} is missing from the causal context")


def join_dot_maps(
    mine: Mapping[Dot, V],
    my_context: CausalContext,
    theirs: Mapping[Dot, V],
    their_context: CausalContext,
) -> dict[Dot, V]:
    """Join two dot stores: a dot survives if both hold it or the other side never saw it."""
    joined = {dot: v for dot, v in mine.items() if dot in theirs or dot not in their_context}
    for dot, v in theirs.items():
        if dot not in mine and dot not in my_context:
            joined[dot] = v
    return joined


def dot_digest(key: object, dot: Dot) -> int:
    """The 64-bit share of one live ``(key, dot)`` in a dot store's digest.

    A dot names one event, so it determines the value it carries: hashing the key and the
    dot is enough to tell two dot stores apart, and costs the same whatever the value."""
    packed = pack((key, dot[0], dot[1]))
    return int.from_bytes(hashlib.blake2b(packed, digest_size=8).digest(), "big")


def scan_hash(key: object) -> int:
    """A key's place in scan order: a 62-bit hash of its msgpack encoding, from 1 up (0 is
    the cursor that starts and ends a scan). The same on every replica, so a coordinator can
    merge the pages several replicas return for one cursor; BLAKE2b, so no client can pick
    many members that share a place (a page takes every member of the place it ends at)."""
    packed = pack(key)
    return (int.from_bytes(hashlib.blake2b(packed, digest_size=8).digest(), "big") >> 2) + 1


# A dot store with more keys than this keeps them sorted in scan order (``KeyedDots.scan``);
# a smaller one sorts them when asked, which costs less than keeping them sorted.
SCAN_ORDER_FROM = 256


class KeyedDots(Generic[K, V]):
    """A dot store keyed by element or map key: ``key -> {dot: value}``, with an index from
    each live dot to its key.

    The index is what keeps merging a small delta cheap in a large set or map: the dots the
    other side has seen but no longer holds (the ones it removed) are found by walking its
    context when that is smaller than ours, instead of scanning every key we hold.

    Two things are kept up to date on every change, in O(1) per dot changed, so that a big
    set or map never has to be walked or re-encoded whole after a small change:

    - ``digest``: the XOR of ``dot_digest(key, dot)`` over every live dot. Equal dot stores
      have equal digests, whatever order their dots arrived in (anti-entropy's leaf hash).
    - ``touched``: the keys whose live dots changed since the owner last took them
      (``take_touched``): what a store must write again, member by member.
    """

    __slots__ = ("_digest", "entries", "order", "owner", "touched")

    def __init__(self) -> None:
        self.entries: dict[K, dict[Dot, V]] = {}
        self.owner: dict[Dot, K] = {}
        # Computed on first use (a decoded state that is only read never pays for it), then
        # kept up to date dot by dot.
        self._digest: int | None = 0
        self.touched: set[K] = set()
        # The keys in scan order (``scan_hash``), built by the first scan of more than
        # SCAN_ORDER_FROM keys and kept from then on: a scan page then costs O(log n +
        # page), and each key that comes or goes O(log n). None: not kept (small, or never
        # scanned since it was decoded or made): a set that is only written and read member
        # by member never pays a hash per member for it.
        self.order: Any = None  # SortedKeyList[K] (the library has no type hints)

    def _arrived(self, key: K) -> None:
        """``key`` has just become live."""
        if self.order is not None:
            self.order.add(key)

    def _left(self, key: K) -> None:
        """``key`` has just lost its last live dot."""
        if self.order is not None:
            self.order.remove(key)

    def scan(self, cursor: int, count: int) -> tuple[list[K], int]:
        """About ``count`` keys from ``cursor`` on in scan order, and the cursor that
        follows them (0: none left). Every key whose ``scan_hash`` is the last one taken
        comes in the same page, so pages never split a place and never repeat a key."""
        entries = self.entries
        if cursor <= 1 and len(entries) <= count:
            return list(entries), 0  # all of it: no order needed
        order = self.order
        if order is None:
            if len(entries) > SCAN_ORDER_FROM:
                order = self.order = SortedKeyList(entries, key=scan_hash)
            else:  # small: sorting it now costs less than keeping it sorted
                ranked = sorted((scan_hash(key), key) for key in entries)
                places = [place for place, _ in ranked]
                start = bisect_left(places, cursor)
                end = min(start + count, len(ranked))
                while end < len(ranked) and places[end] == places[end - 1]:
                    end += 1
                taken = [key for _, key in ranked[start:end]]
                return taken, places[end] if end < len(ranked) else 0
        start = order.bisect_key_left(cursor)
        end = min(start + count, len(order))
        last = scan_hash(order[end - 1]) if end > start else 0
        while end < len(order) and scan_hash(order[end]) == last:
            end += 1
        taken = list(order.islice(start, end))
        return taken, scan_hash(order[end]) if end < len(order) else 0

    @property
    def digest(self) -> int:
        if self._digest is None:
            digest = 0
            for dot, key in self.owner.items():
                digest ^= dot_digest(key, dot)
            self._digest = digest
        return self._digest

    def _flip(self, key: K, dot: Dot) -> None:
        if self._digest is not None:
            self._digest ^= dot_digest(key, dot)

    def replace(self, key: K, dot: Dot, value: V) -> dict[Dot, V]:
        """Make ``dot`` the one live dot of ``key``; return the dots it replaced."""
        old = self.entries.pop(key, None)
        if old:
            for stale in old:
                del self.owner[stale]
                self._flip(key, stale)
        self.entries[key] = {dot: value}
        self.owner[dot] = key
        self._flip(key, dot)
        self.touched.add(key)
        if old is None:
            self._arrived(key)
        return old or {}

    def pop(self, key: K) -> dict[Dot, V]:
        old = self.entries.pop(key, {})
        if old:
            for dot in old:
                del self.owner[dot]
                self._flip(key, dot)
            self.touched.add(key)
            self._left(key)
        return old

    def clear(self) -> dict[Dot, K]:
        """Drop every live dot; return them (a DEL's delta context)."""
        owner = self.owner
        self.touched.update(self.entries)
        self.entries, self.owner, self._digest, self.order = {}, {}, 0, None
        return owner

    def take_touched(self) -> set[K]:
        touched, self.touched = self.touched, set()
        return touched

    def merge(
        self,
        other: KeyedDots[K, V],
        my_context: CausalContext,
        their_context: CausalContext,
        adopt: Callable[[V], V],
    ) -> None:
        """Join ``other`` in (the contexts are joined by the caller, afterwards).

        A dot survives if both sides hold it, or one side holds it and the other never saw
        it. ``adopt`` copies a value taken from ``other`` so no mutable state is shared.
        """
        owner, entries, touched = self.owner, self.entries, self.touched
        their_owner = other.owner
        flip = self._flip
        # 1. Our live dots that the other side has seen but does not hold: it removed them.
        # (A dot lives under one key only, so "they hold it" is a lookup in their index.)
        if their_context.size() < len(owner):
            removed = [d for d in their_context.dots() if d in owner and d not in their_owner]
        else:
            removed = [d for d in owner if d not in their_owner and d in their_context]
        for dot in removed:
            key = owner.pop(dot)
            live = entries[key]
            del live[dot]
            if not live:
                del entries[key]
                self._left(key)
            flip(key, dot)
            touched.add(key)
        # 2. Their live dots that we have never seen: new to us.
        for dot, key in their_owner.items():
            if dot not in owner and dot not in my_context:
                held = entries.get(key)
                if held is None:
                    held = entries[key] = {}
                    self._arrived(key)
                held[dot] = adopt(other.entries[key][dot])
                owner[dot] = key
                flip(key, dot)
                touched.add(key)

    def copy(self, copy_value: Callable[[V], V]) -> KeyedDots[K, V]:
        clone: KeyedDots[K, V] = KeyedDots()
        clone.entries = {
            key: {dot: copy_value(value) for dot, value in live.items()}
            for key, live in self.entries.items()
        }
        clone.owner = dict(self.owner)
        clone._digest = self._digest
        return clone

    def add_decoded(self, key: K, live: dict[Dot, V], what: str) -> None:
        """Add a decoded entry; a dot live under two keys cannot come from a real history."""
        if key in self.entries:
            raise DecodeError(f"{what}: key {key!r} is stored twice")
        for dot in live:
            if dot in self.owner:
                raise DecodeError(f"{what}: dot {dot} is live under two keys")
            self.owner[dot] = key
            self._flip(key, dot)
        self.entries[key] = live
        self._arrived(key)
