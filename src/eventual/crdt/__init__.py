"""Conflict-free replicated data types, one module per type, one contract for all
(``eventual.lattice.Lattice``): ``merge``, ``value``, ``copy``, ``to_bytes``/``from_bytes``,
``==``, and mutators that return deltas.

| type | semantics | module |
|---|---|---|
| GCounter | grow-only counter | gcounter |
| PNCounter | counter with increments and decrements | pncounter |
| BoundedCounter | counter that never goes below zero (escrow rights) | bcounter |
| LWWRegister | last writer wins by HLC timestamp, ties by actor | lwwregister |
| MVRegister | keeps every concurrent value | mvregister |
| ORSet | observed-remove set, add wins, no tombstones | orset |
| EWFlag | enable-wins flag | ewflag |
| ORMap | observed-remove map of nested CRDTs, add wins | ormap |
| SortedSet | add-wins members with scores that count, ranked in O(log n) | zset |
| ReplicatedList | a sequence of values at dense positions, indexed in O(log n) | rlist |
| HyperLogLog | distinct-count estimate, about 1.04/sqrt(m) error | hyperloglog |

No I/O here, no wall clock, no randomness: timestamps and actors are passed in.
"""

from eventual.codec import DecodeError
from eventual.crdt.bcounter import BoundedCounter, InsufficientRights
from eventual.crdt.ewflag import EWFlag
from eventual.crdt.gcounter import GCounter
from eventual.crdt.hyperloglog import HyperLogLog
from eventual.crdt.lwwregister import LWWRegister
from eventual.crdt.mvregister import MVRegister
from eventual.crdt.ormap import ORMap, WrongType
from eventual.crdt.orset import ORSet
from eventual.crdt.pncounter import PNCounter
from eventual.crdt.rlist import ReplicatedList
from eventual.crdt.zset import SortedSet

__all__ = [
    "BoundedCounter",
    "DecodeError",
    "EWFlag",
    "GCounter",
    "HyperLogLog",
    "InsufficientRights",
    "LWWRegister",
    "MVRegister",
    "ORMap",
    "ORSet",
    "PNCounter",
    "ReplicatedList",
    "SortedSet",
    "WrongType",
]
