"""In-process cost of one request through ``Node.request``: no sockets, no event loop.

One node, N = 1, the default store (SQLite, durability ``os``; the runtime's per-turn commit
is done every ``--batch`` requests, as a busy event loop would), and the memory store for
comparison. Prints the median of ``--rounds`` rounds of µs per request for SET, GET,
SADD, SISMEMBER, HSET and HGET on small keys.

    python benchmarks/node_bench.py            # figures for this checkout

To compare with a checkout from before member reads existed, where SISMEMBER and HGET read
the whole key, copy this file there and replace their ``O.Get(key, (member,))`` by
``O.Get(key)``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eventual.core import Node, NodeConfig, Request
from eventual.core import ops as O  # noqa: N812
from eventual.core.consistency import Level
from eventual.core.ring import Member
from eventual.core.store import MemoryStore
from eventual.server.sqlite_store import SQLiteStore


def _node(store: Any) -> Node:
    config = NodeConfig("n1", (Member("n1"),), n=1, anti_entropy=False)
    return Node(config, store, 1_000)


def _rounds(
    node: Node, commit: Callable[[], object], make: Callable[[int], Any], args: argparse.Namespace
) -> float:
    times = []
    request_id = 0
    for _ in range(args.rounds):
        start = time.perf_counter()
        for i in range(args.requests):
            request_id += 1
            effects = node.request(Request(request_id, make(i), Level.ONE), 1_000 + request_id)
            if not effects.replies or not effects.replies[0].result.ok:
                raise SystemExit(f"request failed: {effects.replies}")
            if i % args.batch == 0:
                commit()
        commit()
        times.append((time.perf_counter() - start) / args.requests * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keys", type=int, default=10_000, help="distinct keys written")
    parser.add_argument("--batch", type=int, default=20, help="requests per commit (one turn)")
    args = parser.parse_args()
    keys = [b"key:%d" % i for i in range(args.keys)]
    value = b"x" * 100
    workloads: list[tuple[str, Callable[[int], Any]]] = [
        ("SET", lambda i: O.StringSet(keys[i % args.keys], value)),
        ("GET", lambda i: O.Get(keys[i % args.keys])),
        ("SADD", lambda i: O.SetAdd(b"s:" + keys[i % args.keys], (b"m%d" % (i % 7),))),
        ("SISMEMBER", lambda i: O.Get(b"s:" + keys[i % args.keys], (b"m%d" % (i % 7),))),
        ("HSET", lambda i: O.HashSet(b"h:" + keys[i % args.keys], ((b"f%d" % (i % 7), value),))),
        ("HGET", lambda i: O.Get(b"h:" + keys[i % args.keys], (b"f%d" % (i % 7),))),
    ]
    print(f"µs per request through Node.request (median of {args.rounds} rounds)")
    print(f"{'op':<10} {'sqlite (os)':>12} {'memory':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SQLiteStore(Path(tmp) / "bench.db", durability="os")
        memory = MemoryStore()
        stores: list[tuple[Node, Callable[[], object]]] = [
            (_node(sqlite), sqlite.commit),
            (_node(memory), lambda: None),
        ]
        for name, make in workloads:
            figures = [_rounds(node, commit, make, args) for node, commit in stores]
            print(f"{name:<10} {figures[0]:>12.1f} {figures[1]:>10.1f}", flush=True)
        sqlite.close()


if __name__ == "__main__":
    main()
