"""In-process cost of one request through ``Node.request``: no sockets, no event loop.

One node, N = 1, the default store (SQLite, durability ``os``; the runtime's per-turn commit
is done every ``--batch`` requests, as a busy event loop would), and the memory store for
comparison. Prints the median of ``--rounds`` rounds of µs per request for SET, GET,
SADD, SISMEMBER, HSET and HGET on small keys, for each build side by side: the compiled
build of this checkout (if installed), its pure-Python build (``EVENTUAL_PURE=1``), and with
``--before`` the sources of an older checkout, each in a process of its own.

    python benchmarks/node_bench.py                         # this checkout, both builds
    git worktree add /tmp/before 2ca447b                    # the commit before the data path
    python benchmarks/node_bench.py --before /tmp/before/src

A checkout from before member reads existed cannot read one member: its SISMEMBER and HGET
read the whole (small) key instead, marked ``*``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import eventual
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


# A checkout from before member reads has no ``Get.members``: it reads the whole key. Decided
# once, not per request (an exception per read would be timed with it).
MEMBER_READS = "members" in {f.name for f in dataclasses.fields(O.Get)}


def _member_read(key: bytes, member: bytes) -> Any:
    return O.Get(key, (member,)) if MEMBER_READS else O.Get(key)


def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    """The figures of the build this process runs: op -> [sqlite, memory]."""
    keys = [b"key:%d" % i for i in range(args.keys)]
    value = b"x" * 100
    workloads: list[tuple[str, Callable[[int], Any]]] = [
        ("SET", lambda i: O.StringSet(keys[i % args.keys], value)),
        ("GET", lambda i: O.Get(keys[i % args.keys])),
        ("SADD", lambda i: O.SetAdd(b"s:" + keys[i % args.keys], (b"m%d" % (i % 7),))),
        ("SISMEMBER", lambda i: _member_read(b"s:" + keys[i % args.keys], b"m%d" % (i % 7))),
        ("HSET", lambda i: O.HashSet(b"h:" + keys[i % args.keys], ((b"f%d" % (i % 7), value),))),
        ("HGET", lambda i: _member_read(b"h:" + keys[i % args.keys], b"f%d" % (i % 7))),
    ]
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SQLiteStore(Path(tmp) / "bench.db", durability="os")
        memory = MemoryStore()
        stores: list[tuple[Node, Callable[[], object]]] = [
            (_node(sqlite), sqlite.commit),
            (_node(memory), lambda: None),
        ]
        for name, make in workloads:
            figures[name] = [_rounds(node, commit, make, args) for node, commit in stores]
        sqlite.close()
    return figures


def _in_process_of_its_own(
    args: argparse.Namespace, env: dict[str, str]
) -> tuple[str, dict[str, list[float]]]:
    command = [sys.executable, __file__, "--json"]
    for option in ("requests", "rounds", "keys", "batch"):
        command += [f"--{option}", str(getattr(args, option))]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    build = str(result["build"])
    if not result.get("member_reads", True):
        build += "; SISMEMBER and HGET* read the whole key"
    return build, result["figures"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keys", type=int, default=10_000, help="distinct keys written")
    parser.add_argument("--batch", type=int, default=20, help="requests per commit (one turn)")
    parser.add_argument("--before", metavar="SRC", help="an older checkout's src/ to compare")
    parser.add_argument("--json", action="store_true", help="this process's build only, as JSON")
    args = parser.parse_args()
    if args.json:
        build = getattr(eventual, "BUILD", "pure (before the compiled build)")
        figures = measure(args)
        print(json.dumps({"build": build, "figures": figures, "member_reads": MEMBER_READS}))
        return
    runs: list[tuple[str, str, dict[str, list[float]]]] = []  # (column, build, figures)
    if args.before:
        env = dict(os.environ, PYTHONPATH=os.path.abspath(args.before), EVENTUAL_PURE="1")
        runs.append(("before", *_in_process_of_its_own(args, env)))
    runs.append(("pure", *_in_process_of_its_own(args, dict(os.environ, EVENTUAL_PURE="1"))))
    if eventual.COMPILED:
        runs.append(("compiled", *_in_process_of_its_own(args, dict(os.environ))))
    print(f"µs per request through Node.request (median of {args.rounds} rounds)")
    for column, build, _ in runs:
        print(f"  {column}: {build}")
    for store, index in (("SQLite, durability os", 0), ("memory store", 1)):
        header = f"{store:<22}" + "".join(f"{column:>11}" for column, _, _ in runs)
        if len(runs) > 1:
            header += f"{'ratio':>8}"
        print(header)
        for op in runs[0][2]:
            row = [figures[op][index] for _, _, figures in runs]
            whole = any("whole key" in build for _, build, _ in runs)
            mark = "*" if whole and op in ("SISMEMBER", "HGET") else ""
            line = f"{op + mark:<22}" + "".join(f"{figure:>11.1f}" for figure in row)
            if len(runs) > 1:
                line += f"{row[0] / row[-1]:>7.1f}x"
            print(line, flush=True)
    if len(runs) > 1:
        print(f"ratio: {runs[0][0]} / {runs[-1][0]}")


if __name__ == "__main__":
    main()
