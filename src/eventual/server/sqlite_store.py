"""The embedded default storage: SQLite in WAL mode, one transaction per event-loop turn.

Implements ``core.store.Store``. ``apply`` writes into an open transaction; the runtime calls
``commit`` once per event-loop turn, *before* it releases the replies and acknowledgements
that depend on those writes (group commit: many writes, one fsync).

Durability (``durability``):

| setting | SQLite | an acknowledged write survives |
|---|---|---|
| ``fsync`` (default) | ``synchronous=FULL``: the WAL is fsynced at every commit | power loss |
| ``os`` | ``synchronous=NORMAL``: to the OS at commit, fsynced at checkpoints | SIGKILL |
| ``none`` | ``synchronous=OFF`` | a process crash, most of the time |

The schema carries a version (``PRAGMA user_version``); opening a store written by a newer
version is refused with a clear error rather than guessed at.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from eventual.core.store import Batch, Hint

__all__ = ["DURABILITY", "SCHEMA_VERSION", "SQLiteStore", "StoreError"]

SCHEMA_VERSION = 1
DURABILITY = {"fsync": "FULL", "os": "NORMAL", "none": "OFF"}
# Checkpoint the WAL into the database once it holds this many pages (~16 MiB of 4 KiB
# pages): large enough to batch, small enough that recovery after a crash stays quick.
WAL_AUTOCHECKPOINT_PAGES = 4096
# Records kept in memory, most recently used first out last: hot keys are read without a
# SELECT. 50,000 records of a few hundred bytes is tens of MiB at most.
RECORD_CACHE_ENTRIES_MAX = 50_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    key BLOB PRIMARY KEY, partition INTEGER NOT NULL, data BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_by_partition ON records (partition, key);
CREATE TABLE IF NOT EXISTS hints (
    key BLOB PRIMARY KEY, partition INTEGER NOT NULL, record BLOB NOT NULL, targets TEXT NOT NULL
) WITHOUT ROWID;
"""


class StoreError(RuntimeError):
    """The data directory cannot be used (unreadable, newer schema, ...)."""


class SQLiteStore:
    def __init__(self, path: Path, durability: str = "fsync") -> None:
        if durability not in DURABILITY:
            raise ValueError(
                f"durability must be one of {', '.join(DURABILITY)}, not {durability!r}"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as error:
            raise StoreError(f"cannot open the store at {path}: {error}") from None
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store at {path} has schema version {version}; this Eventual reads up to "
                f"{SCHEMA_VERSION}: upgrade Eventual or use another --data-dir"
            )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={DURABILITY[durability]}")
        self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self.path = path
        self.durability = durability
        self._in_transaction = False
        self.commits = 0
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()

    # --- reading (sees this turn's uncommitted writes: same connection) ---

    def get(self, key: bytes) -> bytes | None:
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        row = self._db.execute("SELECT data FROM records WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        data = bytes(row[0])
        self._remember(key, data)
        return data

    def _remember(self, key: bytes, data: bytes) -> None:
        self._cache[key] = data
        self._cache.move_to_end(key)
        if len(self._cache) > RECORD_CACHE_ENTRIES_MAX:
            self._cache.popitem(last=False)

    def scan(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        rows = self._db.execute(
            "SELECT key, data FROM records WHERE partition = ? ORDER BY key", (partition,)
        ).fetchall()
        for key, data in rows:
            yield bytes(key), bytes(data)

    def hint(self, key: bytes) -> Hint | None:
        row = self._db.execute(
            "SELECT key, partition, record, targets FROM hints WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else _hint(row)

    def hints(self) -> Iterator[Hint]:
        rows = self._db.execute(
            "SELECT key, partition, record, targets FROM hints ORDER BY key"
        ).fetchall()
        for row in rows:
            yield _hint(row)

    def meta(self, name: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM records").fetchone()[0])

    # --- writing ---

    def apply(self, batch: Batch) -> None:
        """Write a batch into the current transaction (atomic with the rest of the turn)."""
        if not self._in_transaction:
            self._db.execute("BEGIN")
            self._in_transaction = True
        db = self._db
        for key, (partition, data) in batch.records.items():
            if data is None:
                db.execute("DELETE FROM records WHERE key = ?", (key,))
                self._cache.pop(key, None)
            else:
                db.execute(
                    "INSERT OR REPLACE INTO records (key, partition, data) VALUES (?, ?, ?)",
                    (key, partition, data),
                )
                self._remember(key, data)
        for key, hint in batch.hints.items():
            if hint is None:
                db.execute("DELETE FROM hints WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO hints (key, partition, record, targets) "
                    "VALUES (?, ?, ?, ?)",
                    (key, hint.partition, hint.record, ",".join(sorted(hint.targets))),
                )
        for name, value in batch.meta.items():
            db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def commit(self) -> bool:
        """Make this turn's writes durable; True if there was anything to commit."""
        if not self._in_transaction:
            return False
        self._db.execute("COMMIT")
        self._in_transaction = False
        self.commits += 1
        return True

    def close(self) -> None:
        self.commit()
        self._db.close()


def _hint(row: tuple[bytes, int, bytes, str]) -> Hint:
    key, partition, record, targets = row
    return Hint(bytes(key), partition, bytes(record), frozenset(filter(None, targets.split(","))))
