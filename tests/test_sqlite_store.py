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


def log_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM record_log").fetchone()[0])


def test_overwrites_append_and_compaction_reclaims_the_dead_rows(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    store = SQLiteStore(path, "none")
    for version in range(3):
        for i in range(100):
            store.apply(Batch(records={b"k%d" % i: (i % 4, b"v%d-%d" % (version, i))}))
        store.commit()
    assert store.count() == 100 and store.dead_rows == 200 and log_rows(path) == 300
    assert store.compact() == 0  # below COMPACT_DEAD_MIN: not worth a pass yet
    assert store.compact(limit=150, force=True) == 150 and store.commit()
    assert store.dead_rows == 50 and log_rows(path) == 150
    store.close()
    reopened = SQLiteStore(path, "none")  # newest row per key wins; the rest is dead again
    assert reopened.count() == 100 and reopened.dead_rows == 50
    assert [key for key, _ in reopened.scan(1)] == sorted(b"k%d" % i for i in range(1, 100, 4))
    assert all(reopened.get(b"k%d" % i) == b"v2-%d" % i for i in range(100))
    reopened.close()


def test_a_dropped_key_never_comes_back_whatever_compaction_has_done(tmp_path: Path) -> None:
    """The deletion marker outlives every older row of its key: ascending compaction."""
    path = tmp_path / "node.db"
    store = SQLiteStore(path, "none")
    store.apply(Batch(records={b"gone": (0, b"old"), b"kept": (0, b"x")}))
    store.apply(Batch(records={b"gone": (0, b"newer")}))
    store.apply(Batch(records={b"gone": (0, None)}))
    store.commit()
    assert store.get(b"gone") is None and store.dead_rows == 3  # two versions and the marker
    for step in range(4):  # reopen after each single-row compaction: never resurrected
        store.close()
        store = SQLiteStore(path, "none")
        assert store.get(b"gone") is None and store.get(b"kept") == b"x", step
        assert list(store.scan(0)) == [(b"kept", b"x")]
        store.compact(limit=1, force=True)
        store.commit()
    assert store.dead_rows == 0 and log_rows(path) == 1
    store.close()


def test_a_version_1_store_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
            CREATE TABLE records (
                key BLOB PRIMARY KEY, partition INTEGER NOT NULL, data BLOB NOT NULL
            ) WITHOUT ROWID;
            INSERT INTO records VALUES (x'61', 7, x'0102'), (x'62', 9, x'03');
            INSERT INTO meta VALUES ('epoch', x'33');
            PRAGMA user_version=1;
            """
        )
    store = SQLiteStore(path)
    assert store.get(b"a") == b"\x01\x02" and list(store.scan(9)) == [(b"b", b"\x03")]
    assert store.meta("epoch") == b"3" and store.count() == 2
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
