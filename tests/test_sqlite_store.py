"""The SQLite store: the storage contract, durability across reopening, schema versions, and
what the runtime keeps in it about how the node last stopped."""

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from eventual.core import NodeConfig, Request, Result
from eventual.core.consistency import Level
from eventual.core.ops import StringSet
from eventual.core.ring import Member
from eventual.core.store import Batch, Hint, RecordWrite
from eventual.server.runtime import Address, NodeRuntime
from eventual.server.sqlite_store import SCHEMA_VERSION, SQLiteStore, StoreError


def put(
    key: bytes,
    partition: int,
    head: bytes | None,
    cells: dict[bytes, bytes | None] | None = None,
    reset: bool = False,
) -> Batch:
    batch = Batch()
    batch.write(key, RecordWrite(partition, head, dict(cells or {}), reset))
    return batch


def drop(key: bytes, partition: int) -> Batch:
    batch = Batch()
    batch.drop(key, partition)
    return batch


def scan(store: SQLiteStore, partition: int) -> list[tuple[bytes, bytes | None]]:
    return [(key, store.head(key)) for key in store.keys(partition)]


def test_records_hints_and_meta_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    store = SQLiteStore(path, "fsync")
    batch = put(b"a", 3, b"record-a")
    batch.write(b"b", RecordWrite(3, b"record-b"))
    batch.write(b"c", RecordWrite(5, b"record-c"))
    batch.hints[b"h"] = Hint(b"h", 1, b"hinted", frozenset({"n2", "n3"}))
    batch.meta["epoch"] = b"7"
    store.apply(batch)
    assert store.head(b"a") == b"record-a"  # visible in the same turn, before the commit
    assert store.commit() and not store.commit()
    store.apply(drop(b"b", 3))
    store.close()

    reopened = SQLiteStore(path, "os")
    assert reopened.head(b"a") == b"record-a" and reopened.head(b"b") is None
    assert scan(reopened, 3) == [(b"a", b"record-a")]
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
            store.apply(put(b"k%d" % i, i % 4, b"v%d-%d" % (version, i)))
        store.commit()
    assert store.count() == 100 and store.dead_rows == 200 and log_rows(path) == 300
    assert store.compact() == 0  # below COMPACT_DEAD_MIN: not worth a pass yet
    assert store.compact(limit=150, force=True) == 150 and store.commit()
    assert store.dead_rows == 50 and log_rows(path) == 150
    store.close()
    reopened = SQLiteStore(path, "none")  # newest row per key wins; the rest is dead again
    assert reopened.count() == 100 and reopened.dead_rows == 50
    assert list(reopened.keys(1)) == sorted(b"k%d" % i for i in range(1, 100, 4))
    assert all(reopened.head(b"k%d" % i) == b"v2-%d" % i for i in range(100))
    reopened.close()


def test_a_dropped_key_never_comes_back_whatever_compaction_has_done(tmp_path: Path) -> None:
    """The deletion marker outlives every older row of its key: ascending compaction."""
    path = tmp_path / "node.db"
    store = SQLiteStore(path, "none")
    store.apply(put(b"gone", 0, b"old", {b"m": b"cell"}))
    store.apply(put(b"kept", 0, b"x"))
    store.apply(put(b"gone", 0, b"newer"))
    store.apply(drop(b"gone", 0))
    store.commit()
    # two versions of the head, the cell, and the marker
    assert store.head(b"gone") is None and store.dead_rows == 4
    for step in range(5):  # reopen after each single-row compaction: never resurrected
        store.close()
        store = SQLiteStore(path, "none")
        assert store.head(b"gone") is None and store.head(b"kept") == b"x", step
        assert list(store.cells(b"gone")) == [], step
        assert scan(store, 0) == [(b"kept", b"x")]
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
    assert store.head(b"a") == b"\x01\x02" and scan(store, 9) == [(b"b", b"\x03")]
    assert store.meta("epoch") == b"3" and store.count() == 2
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_member_cells_are_written_one_by_one_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    store = SQLiteStore(path, "none")
    store.apply(put(b"s", 2, b"head-1", {b"a": b"A1", b"b": b"B1", b"c": b"C1"}))
    store.commit()
    rows = log_rows(path)
    store.apply(put(b"s", 2, b"head-2", {b"b": b"B2", b"c": None}))  # one changed, one gone
    store.commit()
    assert log_rows(path) == rows + 3  # the head, one cell, one member's deletion marker
    assert dict(store.cells(b"s")) == {b"a": b"A1", b"b": b"B2"}
    store.close()
    reopened = SQLiteStore(path, "none")
    assert reopened.head(b"s") == b"head-2"
    assert dict(reopened.cells(b"s")) == {b"a": b"A1", b"b": b"B2"}
    # A reset forgets every cell stored before it, in the same batch as the new state.
    reopened.apply(put(b"s", 2, b"head-3", {b"z": b"Z"}, reset=True))
    assert dict(reopened.cells(b"s")) == {b"z": b"Z"}
    reopened.close()
    again = SQLiteStore(path, "none")
    assert again.head(b"s") == b"head-3" and dict(again.cells(b"s")) == {b"z": b"Z"}
    again.compact(force=True, limit=1000)
    again.close()
    assert dict(SQLiteStore(path, "none").cells(b"s")) == {b"z": b"Z"}


def test_a_version_2_store_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
            CREATE TABLE record_log (
                seq INTEGER PRIMARY KEY, partition INTEGER NOT NULL, key BLOB NOT NULL, data BLOB
            );
            INSERT INTO record_log VALUES (1, 4, x'61', x'01'), (2, 4, x'61', x'0102');
            PRAGMA user_version=2;
            """
        )
    store = SQLiteStore(path)
    assert store.head(b"a") == b"\x01\x02" and store.dead_rows == 1
    store.apply(put(b"a", 4, b"h", {b"m": b"c"}))
    store.close()
    reopened = SQLiteStore(path)
    assert reopened.head(b"a") == b"h" and dict(reopened.cells(b"a")) == {b"m": b"c"}
    reopened.close()


def test_a_node_that_did_not_stop_cleanly_writes_under_a_new_epoch(tmp_path: Path) -> None:
    # The runtime sends replica writes before its commit: a node killed in between may have
    # sent dots it never stored, so it must not issue them again after a restart.
    path = tmp_path / "node.db"
    config = NodeConfig("n1", (Member("n1"),), n=1)

    def start() -> NodeRuntime:
        return NodeRuntime(config, SQLiteStore(path, "fsync"), {}, Address("127.0.0.1", 1))

    first = start()
    assert first.node.epoch == 0
    first.store._db.close()  # killed: no stop, the running mark stays
    second = start()
    assert second.node.epoch == 1
    asyncio.run(second.stop())  # a clean stop clears the mark
    third = start()
    assert third.node.epoch == 1, "a clean stop must not cost an epoch"
    asyncio.run(third.stop())


def test_the_wal_is_checkpointed_off_the_event_loop_while_the_store_is_open(
    tmp_path: Path,
) -> None:
    """Commits never checkpoint (that held the commit, and every request behind it, while
    16 MiB were copied and synced); the checkpointer's thread copies the WAL into the
    database file while the store stays open."""
    path = tmp_path / "eventual.db"
    store = SQLiteStore(path, "os")
    try:
        assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        before = path.stat().st_size
        for i in range(200):
            store.apply(put(f"k{i}".encode(), i % 8, b"x" * 4000))
            store.commit()
        deadline = time.monotonic() + 10
        while path.stat().st_size < before + 200 * 4000:
            assert time.monotonic() < deadline, "nothing was checkpointed into the database"
            time.sleep(0.05)
    finally:
        store.close()
    assert not store._checkpointer.thread.is_alive(), "close stops the checkpointer"


def test_a_stopped_node_refuses_requests_instead_of_failing_on_its_closed_store(
    tmp_path: Path,
) -> None:
    """A client connected before the ports closed may send after the store is closed: it
    gets an error it can act on, and the node logs no failure per command."""
    config = NodeConfig("n1", (Member("n1"),), n=1)
    runtime = NodeRuntime(config, SQLiteStore(tmp_path / "node.db"), {}, Address("127.0.0.1", 1))
    asyncio.run(runtime.stop())
    results: list[Result] = []
    runtime.request(Request(0, StringSet(b"k", b"v"), Level.ONE), results.append)
    assert len(results) == 1 and not results[0].ok
    assert results[0].error is not None and "shutting down" in results[0].error
