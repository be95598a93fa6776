"""The records cache (``core/records.py``): its bound, and what an evicted record costs."""

from __future__ import annotations

from eventual.core.record import Kind, Record
from eventual.core.records import Records, load_record
from eventual.core.store import Batch, MemoryStore
from eventual.crdt import LWWRegister, ORSet


def _stage(records: Records, store: MemoryStore, key: bytes, record: Record) -> int:
    batch = Batch()
    digest = records.stage(batch, 0, key, record)
    store.apply(batch)
    return digest


def _string(value: bytes, timestamp: int) -> Record:
    record = Record(Kind.STRING)
    register = record.data
    assert isinstance(register, LWWRegister)
    register.set(value, timestamp, "n1")
    return record


def test_the_cache_stays_under_its_weight_and_an_evicted_record_loads_again() -> None:
    store = MemoryStore()
    records = Records(store, weight_max=10)
    digests = {}
    for i in range(40):
        key = f"k{i}".encode()
        digests[key] = _stage(records, store, key, _string(f"v{i}".encode(), i + 1))
        assert records.weight <= 10
        assert records.weight == sum(r.cached_weight for r in records._hot.values())
    assert len(records._hot) == 10, "the ten most recent records stay"
    for key, digest in digests.items():
        assert records.digest(key) == digest, "an evicted record's digest is its stored one"
        record = records.get(key)
        assert record is not None
        stored = load_record(store, key)
        assert stored is not None and record.to_bytes() == stored.to_bytes()
        assert records.weight <= 10


def test_a_collection_changed_in_place_is_weighed_again() -> None:
    store = MemoryStore()
    records = Records(store, weight_max=1_000)
    record = Record(Kind.SET)
    members = record.data
    assert isinstance(members, ORSet)
    for i in range(5):
        members.add("n1", f"m{i}".encode())
    _stage(records, store, b"s", record)
    assert records.weight == 6  # the record and its five members
    for i in range(5, 20):
        members.add("n1", f"m{i}".encode())
    before = records.digest(b"s")
    digest = _stage(records, store, b"s", record)  # the same object, staged again
    assert records.weight == 21 and digest != before
    replacement = _string(b"x", 1)
    _stage(records, store, b"s", replacement)  # another object for the key
    assert records.weight == 1 and records.get(b"s") is replacement
