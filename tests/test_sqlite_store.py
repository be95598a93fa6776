"""The SQLite store: the storage contract, durability across reopening, schema versions."""

import sqlite3
from pathlib import Path

import pytest

from eventual.core.store import Batch, Hint
from eventual.server.sqlite_store import SCHEMA_VERSION, SQLiteStore, StoreError


def test_records_hints_and_meta_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    store = SQLiteStore(path, "fsync")
    batch = Batch()
    batch.records[b"a"] = (3, b"record-a")
    batch.records[b"b"] = (3, b"record-b")
    batch.records[b"c"] = (5, b"record-c")
    batch.hints[b"h"] = Hint(b"h", 1, b"hinted", frozenset({"n2", "n3"}))
    batch.meta["epoch"] = b"7"
    store.apply(batch)
    assert store.get(b"a") == b"record-a"  # visible in the same turn, before the commit
    assert store.commit() and not store.commit()
    store.apply(Batch(records={b"b": (3, None)}, hints={}))
    store.close()

    reopened = SQLiteStore(path, "os")
    assert reopened.get(b"a") == b"record-a" and reopened.get(b"b") is None
    assert list(reopened.scan(3)) == [(b"a", b"record-a")]
    assert reopened.hint(b"h") == Hint(b"h", 1, b"hinted", frozenset({"n2", "n3"}))
    assert reopened.meta("epoch") == b"7" and reopened.count() == 2
    reopened.close()


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="schema version"):
        SQLiteStore(path)
    with pytest.raises(ValueError, match="durability"):
        SQLiteStore(tmp_path / "other.db", "sometimes")
