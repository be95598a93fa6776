"""The records cache (``core/records.py``): its bound, and what an evicted record costs."""

from __future__ import annotations

from eventual.core.record import NOT_CACHED, Kind, Record
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


def test_the_record_in_use_stays_cached_even_when_others_were_used_after_it() -> None:
    store = MemoryStore()
    records = Records(store, weight_max=25)
    _stage(records, store, b"a", _string(b"a", 1))
    _stage(records, store, b"b", _string(b"b", 2))
    big = Record(Kind.SET)
    members = big.data
    assert isinstance(members, ORSet)
    for i in range(20):
        members.add("n1", f"m{i}".encode())
    _stage(records, store, b"big", big)  # 1 + 1 + 21
    assert records.get(b"big") is big
    a = records.get(b"a")  # used after big: big is no longer the newest
    _stage(records, store, b"c", _string(b"c", 3))
    for i in range(20, 25):
        members.add("n1", f"m{i}".encode())
    _stage(records, store, b"big", big)  # in place, now 26: over the bound on its own
    assert list(records._hot) == [b"big"], "the others go; the one being written stays"
    assert records.weight == 26
    assert a is not None and a.cached_weight == NOT_CACHED, "an evicted record says so"
    again = _string(b"a2", 4)
    _stage(records, store, b"a", again)
    assert records.get(b"a") is again
    assert list(records._hot) == [b"a"] and records.weight == 1, "big was the oldest now"
    assert big.cached_weight == NOT_CACHED
    stored = load_record(store, b"big")
    assert stored is not None and stored.to_bytes() == big.to_bytes()


def test_a_record_used_since_it_was_cached_outlives_an_older_unused_one() -> None:
    store = MemoryStore()
    records = Records(store, weight_max=3)
    for i in (1, 2, 3):
        _stage(records, store, f"k{i}".encode(), _string(b"v", i))
    assert records.get(b"k1") is not None  # used: its second chance
    _stage(records, store, b"k4", _string(b"v", 4))
    assert set(records._hot) == {b"k1", b"k3", b"k4"}, "k2, unused, went first"
    _stage(records, store, b"k5", _string(b"v", 5))
    # k1 went back to the end, unmarked: k3 was older.
    assert set(records._hot) == {b"k1", b"k4", b"k5"}
    _stage(records, store, b"k6", _string(b"v", 6))
    _stage(records, store, b"k7", _string(b"v", 7))
    assert b"k1" not in records._hot, "unused since its second chance, it goes"
